// Command floor is the smallest external secrets plugin the benchmark compares against:
// reading floor/read returns a constant with a one-hour, non-renewable lease, touching no
// storage and calling nothing upstream. One gRPC hop plus Vault's lease handling is the
// floor any external plugin's leased read stands on.
package main

import (
	"context"
	"os"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	var b *framework.Backend
	b = &framework.Backend{
		BackendType: logical.TypeLogical,
		Secrets: []*framework.Secret{{Type: "floor",
			Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				return nil, nil
			}}},
		Paths: []*framework.Path{{
			Pattern: "read",
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
					resp := b.Secret("floor").Response(map[string]any{"token": "constant"}, nil)
					resp.Secret.TTL, resp.Secret.MaxTTL, resp.Secret.Renewable = time.Hour, time.Hour, false
					return resp, nil
				}},
			},
		}},
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
