package apitokens

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A Bloq refresh grant may replace the refresh token: on a performance standby it is not
// even sent, since the new refresh token could not be stored there. The read returns
// logical.ErrReadOnly, and Vault forwards it to the active node.
func TestCredsRefreshGrantOnPerformanceStandbyForwards(t *testing.T) {
	h := newHarness(t)
	h.sim.SetBloqRotateRefresh(true)
	h.bloqRefreshConfig(h.sim.BloqRefreshToken(h.bqKeyID))
	h.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	_, err := h.do(logical.ReadOperation, "creds/bq", nil)
	if !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("want logical.ErrReadOnly, got %v", err)
	}
	if n := h.sim.Calls(simulator.RouteBloqToken); n != 0 {
		t.Fatalf("the standby spent the refresh token (%d calls)", n)
	}
}

// A new refresh token that cannot be stored is never lost: the read returns the access token
// with a warning, the node holds the new refresh token (the stored one is dead now), the
// config read says so, and the next read uses it and stores it.
func TestCredsBloqRefreshTokenStoreFails(t *testing.T) {
	h := newHarness(t)
	h.sim.SetBloqRotateRefresh(true)
	first := h.sim.BloqRefreshToken(h.bqKeyID)
	h.bloqRefreshConfig(first)
	h.storage.setFailPut(func(k string) bool { return strings.HasPrefix(k, "config/") })

	resp := h.creds("bq")
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "could not be stored") {
		t.Fatalf("warnings = %v", resp.Warnings)
	}
	if h.stored("bq").bq().RefreshToken != first {
		t.Fatal("the store was meant to fail")
	}
	if w := h.mustDo(logical.ReadOperation, "config/bq", nil).Warnings; len(w) == 0 || !strings.Contains(w[0], "in memory") {
		t.Fatalf("the config read does not show the unstored refresh token: %v", w)
	}
	h.creds("bq") // still failing to store: the held token is used, and replaced by the next
	h.storage.setFailPut(nil)
	resp = h.creds("bq")
	if len(resp.Warnings) != 0 {
		t.Fatalf("warnings once storage works: %v", resp.Warnings)
	}
	stored := h.stored("bq").bq().RefreshToken
	if stored == first || h.b.refreshTokens.held("bq") {
		t.Fatal("the newest refresh token was not stored, or is still held")
	}
	h.creds("bq")
	assertNoSecrets(t, "log", h.logs.String(), first, stored)
}

// A store of a new refresh token that fails once is retried within the read.
func TestCredsBloqRefreshTokenStoreRetried(t *testing.T) {
	h := newHarness(t)
	h.sim.SetBloqRotateRefresh(true)
	first := h.sim.BloqRefreshToken(h.bqKeyID)
	h.bloqRefreshConfig(first)
	failures := 1
	h.storage.setFailPut(func(k string) bool {
		failures--
		return strings.HasPrefix(k, "config/") && failures >= 0
	})
	if resp := h.creds("bq"); len(resp.Warnings) != 0 {
		t.Fatalf("one failed store was not retried: %v", resp.Warnings)
	}
	if h.stored("bq").bq().RefreshToken == first || h.b.refreshTokens.held("bq") {
		t.Fatal("the new refresh token was not stored")
	}
}

// A config write that does not set refresh_token stores the held one (the stored one is
// dead); one that sets it drops the held one.
func TestConfigWriteKeepsHeldRefreshToken(t *testing.T) {
	h := newHarness(t)
	h.holdRefreshToken()
	h.mustDo(logical.UpdateOperation, "config/bq", map[string]any{"max_ttl": "10m"})
	if h.b.refreshTokens.held("bq") {
		t.Fatal("the write did not store the held refresh token")
	}
	h.creds("bq") // fails with the provider's 401 if the held token was dropped
	fresh := h.sim.BloqRefreshToken(h.bqKeyID)
	h.storage.setFailPut(func(k string) bool { return strings.HasPrefix(k, "config/") })
	h.creds("bq")
	h.storage.setFailPut(nil)
	h.mustDo(logical.UpdateOperation, "config/bq", map[string]any{"refresh_token": fresh})
	if h.b.refreshTokens.held("bq") || h.stored("bq").bq().RefreshToken != fresh {
		t.Fatal("an operator's refresh_token did not win over the held one")
	}
	h.creds("bq")
}

// An answer whose access token is malformed, or missing, but which carries a new refresh
// token: the read fails (502), and the new refresh token is stored all the same.
func TestRefreshTokenKeptFromMalformedAnswer(t *testing.T) {
	bad := "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOiJzb29uIn0.c2ln" // exp "soon": unreadable
	for _, access := range []string{`"accessToken":"` + bad + `",`, ""} {
		h := newHarness(t)
		first := h.sim.BloqRefreshToken(h.bqKeyID)
		h.bloqRefreshConfig(first)
		next := h.sim.BloqRefreshToken(h.bqKeyID)
		h.sim.Inject(simulator.RouteBloqToken, simulator.Fault{Status: 200,
			Body: `{` + access + `"refreshToken":"` + next + `"}`})
		_, err := h.do(logical.ReadOperation, "creds/bq", nil)
		wantCoded(t, err, 502, "malformed response")
		if h.stored("bq").bq().RefreshToken != next {
			t.Fatalf("the new refresh token of an answer with %q was lost", access)
		}
		assertNoSecrets(t, "error", err.Error(), next, first)
	}
}

// A held refresh token goes into a write only while the config still mints with it: a write
// that switches the config to client keys leaves the stored refresh token as it was.
func TestHeldRefreshTokenNotWrittenIntoAnotherGrant(t *testing.T) {
	h := newHarness(t)
	first := h.holdRefreshToken()
	if !h.b.refreshTokens.held("bq") {
		t.Fatal("no refresh token is held")
	}
	h.mustDo(logical.UpdateOperation, "config/bq", map[string]any{"grant_type": "client_credentials",
		"client_id": bqClient, "client_secret": bqSecret})
	if got := h.stored("bq").bq(); got.RefreshToken != first || got.GrantType != "client_credentials" {
		t.Fatalf("stored grant %s with refresh token changed: %v", got.GrantType, got.RefreshToken != first)
	}
}

// holdRefreshToken writes config/bq with a refresh token the provider renews on every use, and
// reads it once while config stores fail: the node holds the new refresh token. It returns the
// one written (now stale).
func (h *harness) holdRefreshToken() string {
	h.t.Helper()
	h.sim.SetBloqRotateRefresh(true)
	first := h.sim.BloqRefreshToken(h.bqKeyID)
	h.bloqRefreshConfig(first)
	h.storage.setFailPut(func(k string) bool { return strings.HasPrefix(k, "config/") })
	h.creds("bq")
	h.storage.setFailPut(nil)
	return first
}
