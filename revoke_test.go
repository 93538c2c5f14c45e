package apitokens

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/opsnow"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// revocableDriver is OpsNow (minting against the simulator) under another name, with a
// client that can revoke a token: no provider of this build can, so the test brings one to
// show that the core calls it.
type revocableDriver struct {
	opsnow.Driver
	revoked *revocations
}

type revocations struct {
	mu     sync.Mutex
	tokens []string
	fail   error
}

func (revocableDriver) Name() string    { return "revocable" }
func (revocableDriver) Display() string { return "Revocable" }
func (revocableDriver) Order() int      { return 1000 }

func (d revocableDriver) Client(api *apiclient.Client, now func() time.Time) registry.Client {
	return revocableClient{d.Driver.Client(api, now), d.revoked}
}

type revocableClient struct {
	registry.Client
	revoked *revocations
}

func (c revocableClient) Revoke(_ context.Context, cred registry.Credential, token string) error {
	c.revoked.mu.Lock()
	defer c.revoked.mu.Unlock()
	if cred.Field("api_key") != opsAPIKey {
		return errors.New("revoked with another credential than the config's")
	}
	if c.revoked.fail != nil {
		return c.revoked.fail
	}
	c.revoked.tokens = append(c.revoked.tokens, token)
	return nil
}

// A lease revoke reaches a provider whose client can revoke one token (a registry.Revoker):
// with the config's credential and the lease's own token; its failure is the revoke's error
// (Vault retries); a shared token (token_reuse) is revoked by none of its leases; and a
// provider that cannot revoke keeps no token with the lease.
func TestLeaseRevokeRevokesWhereTheProviderCan(t *testing.T) {
	h := newHarness(t)
	rev := &revocations{}
	registry.Register(revocableDriver{revoked: rev})
	t.Cleanup(func() { registry.Deregister("revocable") })
	ctx := context.Background()
	put := func(name string, reuse bool) {
		c := &accountConfig{configHead: configHead{Provider: "revocable", BaseURL: h.url + simulator.OpsNowPrefix},
			cred: opsnow.Credentials{APIKey: opsAPIKey}, configTail: configTail{RequestTimeout: 30 * time.Second, TokenReuse: reuse}}
		if err := h.b.putConfig(ctx, h.storage, name, c); err != nil {
			t.Fatal(err)
		}
	}
	revoke := func(resp *logical.Response) error {
		req := &logical.Request{Operation: logical.RevokeOperation, Storage: h.storage, Secret: resp.Secret}
		req.Secret.InternalData["secret_type"] = secretTokenType
		_, err := h.b.HandleRequest(ctx, req)
		return err
	}
	put("rv", false)
	resp := h.creds("rv")
	rev.fail = errors.New("provider down")
	if err := revoke(resp); err == nil {
		t.Fatal("a failed revocation upstream was a successful revoke")
	}
	rev.fail = nil
	if err := revoke(resp); err != nil || len(rev.tokens) != 1 || rev.tokens[0] != resp.Data["token"] {
		t.Fatalf("revoke: %v, revoked %d tokens", err, len(rev.tokens))
	}
	put("rv-shared", true)
	if err := revoke(h.creds("rv-shared")); err != nil || len(rev.tokens) != 1 {
		t.Fatalf("a shared token was revoked: %v, %d", err, len(rev.tokens))
	}
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	if tok := h.creds("ops").Secret.InternalData["token"]; tok != nil {
		t.Fatal("a lease of a provider that cannot revoke keeps its token")
	}
	// A token minted to be shared is never kept, though the config says token_reuse=false by
	// the time it is handed out (switched off while the readers waited for it).
	flight, err := h.b.mintShared(ctx, h.storage, "rv", 30*time.Second, 0)
	internal := map[string]any{}
	if keepRevocable(internal, flight); err != nil || !flight.revocable || internal["token"] != nil {
		t.Fatalf("a flight's token: %v, revocable %v, kept %v", err, flight.revocable, internal["token"])
	}
}
