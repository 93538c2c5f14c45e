package apitokens

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/opsnow"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

const capLogged = "claims a later expiry than the documented lifetime"

// A token claiming an expiry past its documented lifetime is capped; the cap is a warning once
// the claim is more than a minute (capNoticeAfter) past, and up to that, clock skew, logged
// at debug level only.
func TestCapWarnedOnlyPastAMinute(t *testing.T) {
	for past, level := range map[time.Duration]string{5 * time.Second: "[DEBUG]", time.Minute: "[DEBUG]",
		time.Minute + time.Second: "[WARN]", 2 * time.Minute: "[WARN]"} {
		h := newHarness(t)
		h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
		h.sim.SetClaimedExpiry(func(_, _ string, real time.Time) time.Time { return real.Add(past) })
		h.creds("ob")
		if line := h.logLine(capLogged); !strings.Contains(line, level) {
			t.Errorf("a claim %s past the documented lifetime: want it logged at %s, got %q", past, level, line)
		}
	}
}

// The cap is logged once, for the read that minted the token: not again for each read that
// shares it, and never for a token that claims no more than its lifetime.
func TestCapLoggedOnceForTheMintingRead(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.creds("ob")
	if line := h.logLine(capLogged); line != "" {
		t.Fatalf("a token within its lifetime logged as capped: %q", line)
	}
	h.mustDo(logical.CreateOperation, "config/ob-shared", map[string]any{"provider": "offblocks",
		"base_url": h.url + simulator.OffBlocksPrefix, "api_key": obKey, "api_secret": obSecret, "token_reuse": true})
	h.sim.SetClaimedExpiry(func(_, _ string, real time.Time) time.Time { return real.Add(time.Hour) })
	first := h.creds("ob-shared").Data["token"]
	if again := h.creds("ob-shared").Data["token"]; again != first {
		t.Fatal("the second read did not share the token: the test would prove nothing")
	}
	if n := strings.Count(h.logs.String(), capLogged); n != 1 {
		t.Fatalf("the cap of one token logged %d times, want once", n)
	}
}

// A read whose token is too near its expiry for a lease is a failed read: the config is
// listed as failing in the metrics.
func TestLeaseTooShortIsAFailingRead(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.SetLifetimes(simulator.Lifetimes{OffBlocks: time.Second})
	_, err := h.do(logical.ReadOperation, "creds/ob", nil)
	if coded, ok := err.(logical.HTTPCodedError); !ok || coded.Code() != 502 || !strings.Contains(err.Error(), "too soon for a lease") {
		t.Fatalf("a token living a second: %v, want a 502 saying it is too soon for a lease", err)
	}
	if text := h.scrape(); !strings.Contains(text, `apitokens_mint_failing_since_timestamp_seconds{config="ob",provider="offblocks"} `+
		promUnix(h.clock.Now())) {
		t.Fatalf("the failed read is not listed as failing:\n%s", text)
	}
}

// The reuse warnings: a min_ttl equal to the fresh token's life is met (no warning); one
// over it, and a min_token_ttl not under it, are warned of with the life to the second.
func TestReuseWarningsBoundaryAndLife(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", map[string]any{"provider": "offblocks",
		"base_url": h.url + simulator.OffBlocksPrefix, "api_key": obKey, "api_secret": obSecret, "token_reuse": true})
	resp := h.mustDo(logical.ReadOperation, "creds/ob", map[string]any{"min_ttl": "1h"})
	if exp := resp.Data["expires_at"]; exp != h.clock.Now().Add(time.Hour).Format(time.RFC3339) {
		t.Fatalf("expires_at %v: not a fresh token of exactly an hour, the test would prove nothing", exp)
	}
	if len(resp.Warnings) != 0 {
		t.Fatalf("min_ttl equal to the fresh token's life is met, yet warned: %v", resp.Warnings)
	}
	// 0.6 s into a second: the token (whole seconds) has 59m59.4s left.
	h.clock.Advance(time.Hour + 600*time.Millisecond)
	resp = h.mustDo(logical.ReadOperation, "creds/ob", map[string]any{"min_ttl": "2h"})
	if w := strings.Join(resp.Warnings, " "); !strings.Contains(w, "min_ttl (2h) is more than this fresh token's life (59m59s)") {
		t.Fatalf("min_ttl over the token's life: %v", resp.Warnings)
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"min_token_ttl": "2h"})
	h.clock.Advance(time.Second)
	resp = h.mustDo(logical.ReadOperation, "creds/ob", nil)
	if w := strings.Join(resp.Warnings, " "); !strings.Contains(w, "min_token_ttl (2h) is not less than this token's life (59m59s)") {
		t.Fatalf("min_token_ttl over the token's life: %v", resp.Warnings)
	}
}

// A standby that must settle a config before a read forwards the read (logical.ErrReadOnly)
// without counting it as a read failed on the provider.
func TestStandbySettleForwardsWithoutCountingAFailure(t *testing.T) {
	h := newHarness(t)
	h.unsettledRotation()
	standby := h.otherNode()
	standby.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	_, err := standby.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation,
		Path: "creds/ob", Storage: h.storage, MountPoint: "apitokens/"})
	if err != logical.ErrReadOnly {
		t.Fatalf("a read the standby cannot settle: %v, want logical.ErrReadOnly", err)
	}
	if n := standby.metrics.reads.n.Load(); n != 0 {
		t.Fatalf("the forwarded read counted as %d config(s) failing on the provider", n)
	}
}

// A read that fails on a provider outage (not a refusal of the credential) does not settle
// the config: it neither retires keys upstream nor mints again.
func TestOutageReadDoesNotSettle(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	id, _ := h.retiringBloqKey()
	h.sim.Inject(simulator.RouteBloqToken, simulator.Fault{Status: 503, Times: -1}) // the login (rotation's) answers
	if _, err := h.do(logical.ReadOperation, "creds/bq", nil); err == nil {
		t.Fatal("the read succeeded through the outage: the test would prove nothing")
	}
	if n := h.sim.Calls(simulator.RouteBloqKeysDelete); n != 0 || len(h.stored("bq").Retiring) != 1 {
		t.Fatalf("the failed read settled the config: %d key deletes, retiring %v", n, h.stored("bq").Retiring)
	}
	if !strings.Contains(strings.Join(h.sim.BloqClientIDs(h.bqUserID), " "), id) {
		t.Fatal("the retiring key was deleted by a failed read")
	}
}

// A stored credential the provider refuses is settled, and when the settle adopts a
// credential that works (here an earlier version's interrupted rotation's), the read mints
// again with it and succeeds.
func TestRefusedCredentialSettledThenMintedAgain(t *testing.T) {
	h := newHarness(t)
	wrong := map[string]any{"provider": "offblocks", "base_url": h.url + simulator.OffBlocksPrefix,
		"api_key": "9b2e4c1a-5d3f-4e6a-8b7c-1d2e3f4a5b6c", "api_secret": strings.Repeat("0", 40), "verify_connection": false}
	h.mustDo(logical.CreateOperation, "config/ob", wrong)
	h.legacyRotationWAL("ob", "offblocks", h.stored("ob").ob(), offblocks.Credentials{APIKey: obKey, APISecret: obSecret})
	h.creds("ob")
	if got := h.stored("ob").ob(); got.APIKey != obKey || len(h.stored("ob").Fallbacks) != 0 {
		t.Fatalf("stored key %s with %d fallbacks, want the working one adopted", got.APIKey, len(h.stored("ob").Fallbacks))
	}
}

// revocableConfig registers the revocable driver (revoke_test.go) and stores config rv of it.
func (h *harness) revocableConfig() *revocations {
	h.t.Helper()
	rev := &revocations{}
	registry.Register(revocableDriver{revoked: rev})
	h.t.Cleanup(func() { registry.Deregister("revocable") })
	c := &accountConfig{configHead: configHead{Provider: "revocable", BaseURL: h.url + simulator.OpsNowPrefix},
		cred: opsnow.Credentials{APIKey: opsAPIKey}, configTail: configTail{RequestTimeout: 30 * time.Second}}
	if err := h.b.putConfig(context.Background(), h.storage, "rv", c); err != nil {
		h.t.Fatal(err)
	}
	return rev
}

// A lease revoke frees the config's lock once done; and when the config cannot be read from
// storage, it fails (Vault retries it) rather than succeed with the token alive upstream.
func TestLeaseRevokeFreesTheLockAndFailsOnStorage(t *testing.T) {
	h := newHarness(t)
	rev := h.revocableConfig()
	ctx := context.Background()
	revoke := func(s logical.Storage, secret *logical.Secret) error {
		req := &logical.Request{Operation: logical.RevokeOperation, Storage: s, Secret: secret}
		req.Secret.InternalData["secret_type"] = secretTokenType
		_, err := h.b.HandleRequest(ctx, req)
		return err
	}
	resp := h.creds("rv")
	if err := revoke(h.storage, resp.Secret); err != nil || len(rev.tokens) != 1 {
		t.Fatalf("revoke: %v, %d revoked", err, len(rev.tokens))
	}
	l, ok := h.b.lock("rv").(interface {
		TryLock() bool
		Unlock()
	})
	if !ok {
		t.Fatal("the config's lock cannot be tried")
	}
	if !l.TryLock() {
		t.Fatal("the revoke kept the config's lock: every later write of it blocks")
	}
	l.Unlock()

	resp = h.creds("rv")
	h.b.memo.forget("rv")
	s := &gatedStorage{Storage: h.storage, failGet: func(key string, _ int) error {
		if key == configKey("rv") {
			return errStorageDown
		}
		return nil
	}}
	if err := revoke(s, resp.Secret); !errors.Is(err, errStorageDown) || len(rev.tokens) != 1 {
		t.Fatalf("a revoke whose config could not be read: %v, %d revoked; want the storage error", err, len(rev.tokens))
	}
}
