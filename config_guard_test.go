package apitokens

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
	"github.com/hashicorp/vault/sdk/logical"
)

// A config read shows min_token_ttl in whole seconds, as written.
func TestConfigReadMinTokenTTLInSeconds(t *testing.T) {
	h := newHarness(t)
	cfg := h.offblocksConfig()
	cfg["token_reuse"], cfg["min_token_ttl"] = true, "90s"
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
	if got := h.mustDo(logical.ReadOperation, "config/ob", nil).Data["min_token_ttl"]; got != int64(90) {
		t.Fatalf("min_token_ttl reads %v, want 90", got)
	}
}

// A config read names a replaced Bloq key that is still to be removed upstream, by its
// identifier (never its secret), until a settle removes it.
func TestConfigReadNamesARetiringKey(t *testing.T) {
	h := newHarness(t)
	down := h.rotateBloqWhileDeletesFail()
	resp := h.mustDo(logical.ReadOperation, "config/bq", nil)
	want := "replaced credential " + bqClient + " is still to be removed upstream"
	if !strings.Contains(strings.Join(resp.Warnings, "\n"), want) {
		t.Fatalf("config read warnings %q do not say %q", resp.Warnings, want)
	}
	assertNoSecrets(t, "config read warnings", strings.Join(resp.Warnings, "\n"), bqSecret, bqPass)
	*down = false
	h.periodic()
	if w := h.mustDo(logical.ReadOperation, "config/bq", nil).Warnings; len(w) != 0 {
		t.Fatalf("warnings after the key was removed: %q", w)
	}
}

// A stored config that is not valid JSON (storage corrupted, or written by hand) is an
// error that names the config, for reads and creds alike; it is never taken for no config.
func TestUndecodableConfigIsAnError(t *testing.T) {
	h := newHarness(t)
	if err := h.storage.Put(context.Background(), &logical.StorageEntry{Key: configKey("ob"), Value: []byte("{not json")}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"config/ob", "creds/ob"} {
		_, err := h.do(logical.ReadOperation, path, nil)
		if err == nil || !strings.Contains(err.Error(), `decode config "ob"`) {
			t.Errorf("read %s of an undecodable config: %v", path, err)
		}
	}
}

// A token with about a second to live gets no lease, and the error says how long it had
// left, to the second (the clocks are what to check).
func TestTooSoonForALeaseSaysTheTimeLeft(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.SetLifetimes(simulator.Lifetimes{OffBlocks: time.Second})
	_, err := h.do(logical.ReadOperation, "creds/ob", nil)
	if err == nil || !strings.Contains(err.Error(), "1s from now by this server's clock: too soon for a lease") {
		t.Fatalf("got %v", err)
	}
}
