package apitokens

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
)

// While a rotation is unsettled, a config read says so: fallback_credentials counts the held
// credential, fallback_since says when it was first sent, and a warning names it by its
// api_key (never by its secret) and says why it is held; the current pair is still the one
// shown. Once the provider settles, fallback_credentials is 0, and fallback_since and the
// warning are gone.
func TestConfigReadShowsFallbacks(t *testing.T) {
	h := newHarness(t)
	cfg := h.offblocksConfig()
	cfg["request_timeout"] = 2
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
	h.sim.SetOffBlocksLag(time.Hour)
	since := h.clock.Now().UTC().Format(time.RFC3339)
	_, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil)
	wantCoded(t, err, 502, "unsettled")
	pending := h.sim.OffBlocksPendingPairs(h.obID)
	if len(pending) != 1 {
		t.Fatalf("%d pending updates at the provider, want the rotation's", len(pending))
	}
	newKey, newSecret := pending[0][0], pending[0][1]

	resp := h.mustDo(logical.ReadOperation, "config/ob", nil)
	if n, s := resp.Data["fallback_credentials"], resp.Data["fallback_since"]; n != 1 || s != since {
		t.Fatalf("fallback_credentials %v, fallback_since %v; want 1, %s", n, s, since)
	}
	if resp.Data["api_key"] != obKey {
		t.Fatalf("api_key %v: the current pair is not the one shown", resp.Data["api_key"])
	}
	warnings := strings.Join(resp.Warnings, "\n")
	if len(resp.Warnings) != 1 || !strings.Contains(warnings, "fallback credential "+newKey) ||
		!strings.Contains(warnings, "has not applied it yet") {
		t.Fatalf("warnings do not name the fallback and why it is held: %q", warnings)
	}
	assertNoSecrets(t, "config read", warnings+" "+strings.Join(valuesOf(resp.Data), " "), newSecret, obSecret)
	// What an operator needs: since when, which trigger, what it waits for, what to do.
	want := map[string]string{"unsettled_since": since, "unsettled_trigger": "manual", "unsettled_credential": newKey}
	for k, v := range want {
		if resp.Data[k] != v {
			t.Errorf("%s = %v, want %s", k, resp.Data[k], v)
		}
	}
	if w, _ := resp.Data["unsettled_waiting_for"].(string); !strings.Contains(w, newKey) || !strings.Contains(w, "has not applied it yet") {
		t.Errorf("unsettled_waiting_for = %q", w)
	}
	if do, _ := resp.Data["unsettled_what_to_do"].(string); !strings.Contains(do, "force=true") || !strings.HasPrefix(do, "wait") {
		t.Errorf("unsettled_what_to_do = %q", do)
	}

	h.clock.Advance(time.Hour)
	h.creds("ob") // the provider has switched: the read adopts the fallback
	resp = h.mustDo(logical.ReadOperation, "config/ob", nil)
	_, ok := resp.Data["fallback_since"]
	for _, k := range []string{"unsettled_since", "unsettled_trigger", "unsettled_credential", "unsettled_waiting_for", "unsettled_what_to_do"} {
		if _, shown := resp.Data[k]; shown {
			t.Errorf("%s shown after settling", k)
		}
	}
	if resp.Data["fallback_credentials"] != 0 || ok || len(resp.Warnings) != 0 {
		t.Fatalf("after settling: fallback_credentials %v, fallback_since %v, warnings %v",
			resp.Data["fallback_credentials"], resp.Data["fallback_since"], resp.Warnings)
	}
	if resp.Data["api_key"] != newKey {
		t.Fatalf("api_key %v after settling, want %s", resp.Data["api_key"], newKey)
	}
}

// An operator who writes a root credential while a fallback is held is refused, and nothing
// changes, unless the write says force=true: then it gives the fallback up (rule 4 of
// settle.go), its answer warns that it did, and the log names what was given up by
// identifier. A write that changes no credential keeps the fallback.
func TestConfigCredentialWriteGivesFallbacksUp(t *testing.T) {
	h := newHarness(t)
	newKey := h.unsettledRotation()
	given := h.stored("ob").Fallbacks[0]

	if resp := h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"max_ttl": "10m"}); resp != nil && len(resp.Warnings) > 0 {
		t.Fatalf("a write of max_ttl warned: %v", resp.Warnings)
	}
	if n := h.fallbacks("ob"); n != 1 {
		t.Fatalf("a write that changes no credential left %d fallbacks, want 1", n)
	}

	key, secret := h.sim.OffBlocksPair(h.obID) // what the operator finds in the provider's console
	before := h.stored("ob")
	refused, err := h.do(logical.UpdateOperation, "config/ob", map[string]any{"api_key": key, "api_secret": secret})
	if msg, _ := respErr(refused).(string); !errors.Is(err, logical.ErrInvalidRequest) || !strings.Contains(msg, "unsettled") ||
		!strings.Contains(msg, newKey) || !strings.Contains(msg, "force=true") || !strings.Contains(msg, "vault write apitokens/config/ob") {
		t.Fatalf("a credential write during an unsettled rotation, without force: want a 400 naming the rotation, got %v %v", err, msg)
	}
	if after := h.stored("ob"); !reflect.DeepEqual(before, after) {
		t.Fatalf("a refused credential write changed the config:\n%+v\n%+v", before, after)
	}
	resp := h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"api_key": key, "api_secret": secret, "force": true})
	if resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "1 fallback credential(s)") ||
		!strings.Contains(resp.Warnings[0], "given up by this forced write") {
		t.Fatalf("the credential write did not warn that it gave the fallback up: %v", resp)
	}
	if n := h.fallbacks("ob"); n != 0 {
		t.Fatalf("%d fallbacks after a credential write, want none", n)
	}
	if line := h.logLine("forced credential write gives up a fallback credential"); !strings.Contains(line, "[ERROR]") || !strings.Contains(line, newKey) {
		t.Fatalf("the log does not name the fallback given up:\n%s", h.logs.String())
	}
	assertNoSecrets(t, "log and warnings", h.logs.String()+strings.Join(resp.Warnings, " "), given.cred.(offblocks.Credentials).APISecret, obSecret)
	h.sim.ClearFaults()
	h.creds("ob")
}
