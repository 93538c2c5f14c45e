// Command floor is the smallest external secrets plugin the benchmark compares against:
// reading floor/read returns a constant with a one-hour, non-renewable lease, touching no
// storage and calling nothing upstream. One gRPC hop plus Vault's lease handling is the
// floor any external plugin's leased read stands on. floor/shaped returns a response of the
// shape and size of a creds read (a reference: Vault stores each lease with its data).
package main

import (
	"context"
	"os"
	"strings"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

// shapedToken stands for a provider's token: a JWT of the size the simulator issues.
var shapedToken = strings.Repeat("x", 330)

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	var b *framework.Backend
	leased := func(data, internal map[string]any) framework.OperationFunc {
		return func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
			resp := b.Secret("floor").Response(data, internal)
			resp.Secret.TTL, resp.Secret.MaxTTL, resp.Secret.Renewable = time.Hour, time.Hour, false
			return resp, nil
		}
	}
	read := func(f framework.OperationFunc) map[logical.Operation]framework.OperationHandler {
		return map[logical.Operation]framework.OperationHandler{logical.ReadOperation: &framework.PathOperation{Callback: f}}
	}
	b = &framework.Backend{
		BackendType: logical.TypeLogical,
		Secrets: []*framework.Secret{{Type: "floor",
			Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				return nil, nil
			}}},
		Paths: []*framework.Path{
			// read: the floor itself, a constant.
			{Pattern: "read", Operations: read(leased(map[string]any{"token": "constant"}, nil))},
			// shaped: the same, but with a creds response's shape and size (a reference only:
			// what Vault's own handling of such a response costs).
			{Pattern: "shaped", Operations: read(leased(
				map[string]any{"token": shapedToken, "token_type": "Bearer", "expires_at": "2026-11-25T19:00:00Z"},
				map[string]any{"config": "shared"}))},
		},
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func main() {
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{BackendFactoryFunc: factory}); err != nil {
		hclog.Default().Error("floor plugin", "error", err)
		os.Exit(1)
	}
}
