package apitokens

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// wantLease is the lease for a token with life left: minus a tenth, at most 60 s.
func wantLease(life time.Duration) time.Duration {
	return (life - min(life/10, time.Minute)).Truncate(time.Second)
}

func checkCreds(t *testing.T, h *harness, name string, life time.Duration) {
	t.Helper()
	resp := h.creds(name)
	if resp.Data["token_type"] != "Bearer" {
		t.Errorf("%s: token_type = %v", name, resp.Data["token_type"])
	}
	wantExp := h.clock.Now().Add(life).UTC().Format(time.RFC3339)
	if resp.Data["expires_at"] != wantExp {
		t.Errorf("%s: expires_at = %v, want %s", name, resp.Data["expires_at"], wantExp)
	}
	if resp.Secret == nil {
		t.Fatalf("%s: no lease", name)
	}
	if resp.Secret.TTL != wantLease(life) || resp.Secret.MaxTTL != resp.Secret.TTL {
		t.Errorf("%s: lease %s (max %s), want %s", name, resp.Secret.TTL, resp.Secret.MaxTTL, wantLease(life))
	}
	if resp.Secret.Renewable {
		t.Errorf("%s: lease is renewable", name)
	}
}

func TestCredsEachProviderAndGrant(t *testing.T) {
	h := newHarness(t)
	// Lifetimes other than the documented ones: the lease must follow the provider.
	h.sim.SetLifetimes(simulator.Lifetimes{OffBlocks: 17 * time.Minute, BloqClient: 43 * time.Minute,
		BloqAccount: 3 * time.Hour, OpsNow: 25 * time.Minute})
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/bq-keys", h.bloqConfig(nil))
	h.mustDo(logical.CreateOperation, "config/bq-login", map[string]any{"provider": "bloq",
		"base_url": h.url + simulator.BloqPrefix, "username": bqUser, "password": bqPass})
	h.mustDo(logical.CreateOperation, "config/bq-refresh", map[string]any{"provider": "bloq",
		"base_url": h.url + simulator.BloqPrefix, "refresh_token": h.sim.BloqRefreshToken(h.bqKeyID)})
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())

	checkCreds(t, h, "ob", 17*time.Minute)
	checkCreds(t, h, "bq-keys", 43*time.Minute)
	checkCreds(t, h, "bq-login", 3*time.Hour)
	checkCreds(t, h, "bq-refresh", 43*time.Minute)
	checkCreds(t, h, "ops", 25*time.Minute)

	// Each read is a fresh token.
	a, b := h.creds("ob").Data["token"], h.creds("ob").Data["token"]
	if a == b {
		t.Error("two reads returned the same token")
	}
}

func TestCredsOpsNowShapes(t *testing.T) {
	cases := []struct {
		shape simulator.OpsNowShape
		life  time.Duration
		want  time.Duration // expected expiry from now
	}{
		{simulator.ShapeWrappedExpiresIn, 20 * time.Minute, 20 * time.Minute},
		{simulator.ShapeTopSnake, 21 * time.Minute, 21 * time.Minute},
		{simulator.ShapeWrappedExpiresAt, 22 * time.Minute, 22 * time.Minute},
		{simulator.ShapeTopExpiresAtString, 23 * time.Minute, 23 * time.Minute},
		{simulator.ShapeJWTOnly, 24 * time.Minute, 24 * time.Minute},
		// No expiry anywhere: the documented 3600 s, although this token lives 90 minutes
		// (so a lifetime taken from anywhere but the documented default fails).
		{simulator.ShapeOpaque, 90 * time.Minute, time.Hour},
	}
	for _, tc := range cases {
		h := newHarness(t)
		h.sim.SetOpsNowShape(tc.shape)
		h.sim.SetLifetimes(simulator.Lifetimes{OpsNow: tc.life})
		h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
		checkCreds(t, h, "ops", tc.want)
	}
}

// The opaque token's lease ends while the token still works: the documented lifetime is
// the one the plugin assumes, and a token living longer is never outlived.
func TestCredsOpaqueTokenOutlivesItsLease(t *testing.T) {
	h := newHarness(t)
	h.sim.SetOpsNowShape(simulator.ShapeOpaque)
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	resp := h.creds("ops")
	h.clock.Advance(resp.Secret.TTL)
	if _, err := h.sim.Validate(resp.Data["token"].(string)); err != nil {
		t.Fatalf("the token died before its lease ended: %v", err)
	}
}

func TestCredsCaps(t *testing.T) {
	h := newHarness(t)
	h.sim.SetLifetimes(simulator.Lifetimes{BloqAccount: 12 * time.Hour})
	cfg := h.offblocksConfig()
	cfg["max_ttl"] = "5m"
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
	if ttl := h.creds("ob").Secret.TTL; ttl != 5*time.Minute {
		t.Errorf("max_ttl: lease %s, want 5m", ttl)
	}
	// The mount's maximum is Vault's to apply (the acceptance suite checks it): the plugin
	// does not ask Vault for it on every read, and asks for the token's own lease.
	h.mustDo(logical.CreateOperation, "config/bq", map[string]any{"provider": "bloq",
		"base_url": h.url + simulator.BloqPrefix, "username": bqUser, "password": bqPass})
	h.b.System().(*logical.StaticSystemView).MaxLeaseTTLVal = 2 * time.Hour
	if ttl := h.creds("bq").Secret.TTL; ttl != 12*time.Hour-time.Minute {
		t.Errorf("lease %s, want 11h59m (the mount's maximum is applied by Vault)", ttl)
	}
}

func TestCredsRevokeIsANoOp(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	resp := h.creds("ob")
	req := &logical.Request{Operation: logical.RevokeOperation, Storage: h.storage, Secret: resp.Secret}
	req.Secret.InternalData["secret_type"] = secretTokenType
	out, err := h.b.HandleRequest(context.Background(), req)
	if err != nil || (out != nil && out.IsError()) {
		t.Fatalf("revoke: %v %v", err, out)
	}
	// Nothing upstream changed: the token still works, and revoking a lease of a deleted
	// config succeeds too.
	if _, err := h.sim.Validate(resp.Data["token"].(string)); err != nil {
		t.Errorf("token after revoke: %v", err)
	}
	h.mustDo(logical.DeleteOperation, "config/ob", nil)
	if _, err := h.b.HandleRequest(context.Background(), req); err != nil {
		t.Errorf("revoke after config delete: %v", err)
	}
}

func TestCredsBloqRefreshTokenReplaced(t *testing.T) {
	h := newHarness(t)
	h.sim.SetBloqRotateRefresh(true)
	first := h.sim.BloqRefreshToken(h.bqKeyID)
	h.bloqRefreshConfig(first)
	for i := 0; i < 3; i++ {
		h.creds("bq") // each use invalidates the refresh token used: the new one must be stored
	}
	c, _ := getConfig(context.Background(), h.storage, "bq")
	if c.bq().RefreshToken == first || c.bq().RefreshToken == "" {
		t.Error("the new refresh token was not stored")
	}
}

func TestCredsProviderErrors(t *testing.T) {
	h := newHarness(t)
	bad := h.offblocksConfig()
	bad["api_secret"] = "ffffffffffffffffffffffffffffffffffffffff"
	h.mustDo(logical.CreateOperation, "config/bad", bad)
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())

	_, err := h.do(logical.ReadOperation, "creds/bad", nil)
	wantCoded(t, err, http.StatusBadGateway, "offblocks: mint token (POST /auth/token): status 401")
	assertNoSecrets(t, "error", err.Error(), "ffffffffffffffffffffffffffffffffffffffff")

	h.sim.Inject(simulator.RouteOpsNowToken, simulator.Fault{Status: 500, Times: -1})
	_, err = h.do(logical.ReadOperation, "creds/ops", nil)
	wantCoded(t, err, http.StatusBadGateway, "opsnow: mint token (POST /platform/v2/identity/api-keys/token): status 500")
	if n := h.sim.Calls(simulator.RouteOpsNowToken); n != 5 {
		t.Errorf("500 was tried %d times, want 1 + 4 retries", n)
	}
	h.sim.ClearFaults()

	// A token that is already (nearly) dead when issued gets no lease.
	h.sim.SetLifetimes(simulator.Lifetimes{OpsNow: time.Second})
	_, err = h.do(logical.ReadOperation, "creds/ops", nil)
	wantCoded(t, err, http.StatusBadGateway, "too soon for a lease")
}

func wantCoded(t *testing.T, err error, code int, phrase string) {
	t.Helper()
	coded, ok := err.(logical.HTTPCodedError)
	if !ok || coded.Code() != code || !strings.Contains(err.Error(), phrase) {
		t.Fatalf("want a %d containing %q, got %T %v", code, phrase, err, err)
	}
}
