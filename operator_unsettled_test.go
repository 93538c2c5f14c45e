package apitokens

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// Tests of what an operator sees around an unsettled rotation and in error texts (issue 17):
// force, the fields a config read shows, each error said once.

// Errors say each thing once: a rotation that changed nothing upstream, and a creds read
// during an unsettled rotation, quote the provider's answer once (counted as "status NNN":
// a bare "503" may be part of the new credential's random identifier).
func TestErrorsSayItOnce(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 401, Times: 1})
	_, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil)
	if err == nil || !strings.HasPrefix(err.Error(), "rotation failed, nothing changed upstream: offblocks: ") ||
		strings.Count(err.Error(), "changed upstream") != 1 || strings.Count(err.Error(), "status 401") != 1 {
		t.Fatalf("rotation that sent nothing: %v", err)
	}
	h.sim.ClearFaults()

	h2 := newHarness(t)
	h2.unsettledRotation()
	_, err = h2.do(logical.ReadOperation, "creds/ob", nil)
	if err == nil || strings.Count(err.Error(), "status 503") > 1 || strings.Count(err.Error(), "unsettled") != 1 ||
		!strings.Contains(err.Error(), ": the change could not be sent again, which proves nothing about the first sending (") {
		t.Fatalf("creds read during an unsettled rotation: %v", err)
	}
	resp, err := h2.do(logical.DeleteOperation, "config/ob", nil)
	if msg, _ := respErr(resp).(string); !errors.Is(err, logical.ErrInvalidRequest) || strings.Count(msg, "status 503") > 1 ||
		strings.Count(msg, "is unsettled") > 1 {
		t.Fatalf("refused delete: %v %v", err, msg)
	}
}

// The commands that errors suggest use the request's own mount, not a placeholder.
func TestHintsUseTheMount(t *testing.T) {
	h := newHarness(t)
	h.unsettledRotation()
	req := &logical.Request{Operation: logical.DeleteOperation, Path: "config/ob", Storage: h.storage, MountPoint: "team-a/tokens/"}
	resp, err := h.b.HandleRequest(context.Background(), req)
	if msg, _ := respErr(resp).(string); !errors.Is(err, logical.ErrInvalidRequest) ||
		!strings.Contains(msg, "vault delete team-a/tokens/config/ob force=true") || strings.Contains(msg, "<mount>") {
		t.Fatalf("refused delete: %v %v", err, msg)
	}
}

// distinctErrors quotes each error once: nil ones and those another one contains are left out.
func TestDistinctErrors(t *testing.T) {
	a := errors.New(`offblocks: mint token: status 401`)
	b := fmt.Errorf("nothing changed upstream: %w", a)
	for _, tc := range []struct {
		in   []error
		want []string
	}{
		{[]error{a, a}, []string{a.Error()}},
		{[]error{a, b}, []string{b.Error()}},
		{[]error{b, a}, []string{b.Error()}},
		{[]error{nil, a, nil}, []string{a.Error()}},
		{[]error{a, errors.New("other")}, []string{a.Error(), "other"}},
		{nil, nil},
	} {
		if got := distinctErrors(tc.in...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("distinctErrors(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A Bloq client_secret alone is a root credential: writing it while a fallback is held is
// refused without force, like OffBlocks' pair.
func TestBloqSecretWriteWhileUnsettled(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	next := h.stored("bq").bq()
	next.ClientID, next.ClientSecret = "c0ffee1111c0ffee1111c0ffee1111c0ffee1111", "another-secret"
	h.holdFallback("bq", next)
	resp, err := h.do(logical.UpdateOperation, "config/bq", map[string]any{"client_secret": bqSecret})
	if msg, _ := respErr(resp).(string); !errors.Is(err, logical.ErrInvalidRequest) || !strings.Contains(msg, "unsettled") {
		t.Fatalf("client_secret write while unsettled: %v %v", err, msg)
	}
	if h.fallbacks("bq") != 1 {
		t.Fatal("the refused write dropped the fallback")
	}
}

// With several fallbacks, a config read's unsettled_since is the first's, and its trigger
// and credential are the newest's; a config that can no longer rotate still shows what it
// holds.
func TestUnsettledFieldsSeveralFallbacks(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	first := h.clock.Now().UTC().Format(time.RFC3339)
	one, two := h.stored("bq").bq(), h.stored("bq").bq()
	one.ClientID, two.ClientID = "c0ffee1111c0ffee1111c0ffee1111c0ffee1111", "c0ffee2222c0ffee2222c0ffee2222c0ffee2222"
	h.holdFallback("bq", one)
	h.clock.Advance(time.Minute)
	h.holdFallback("bq", two)
	c := h.stored("bq")
	c.Fallbacks[0].Trigger, c.Fallbacks[1].Trigger = triggerManual, triggerScheduled
	if err := h.b.putConfig(context.Background(), h.storage, "bq", c); err != nil {
		t.Fatal(err)
	}
	// Not a credential field: allowed while unsettled; without a login, bq cannot rotate.
	h.mustDo(logical.UpdateOperation, "config/bq", map[string]any{"username": "", "password": ""})
	data := h.mustDo(logical.ReadOperation, "config/bq", nil).Data
	want := map[string]any{"unsettled_since": first, "fallback_since": first, "unsettled_trigger": triggerScheduled,
		"unsettled_credential": two.ClientID, "fallback_credentials": 2}
	for k, v := range want {
		if data[k] != v {
			t.Errorf("%s = %v, want %v", k, data[k], v)
		}
	}
}

// A write naming a credential while an earlier plugin version's interrupted rotation is
// still a WAL entry (not yet a fallback) is refused as well; with force=true the entry's
// credential is given up, and Vault's rollback does not bring it back.
func TestCredentialWriteOverLegacyRotation(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	old := h.stored("ob").ob()
	next := old
	next.APIKey, next.APISecret = "7c9e6679-7425-40de-944b-e07fc1f90ae7", "ffff0000ffff0000ffff0000ffff0000ffff0000"
	h.legacyRotationWAL("ob", "offblocks", old, next)
	write := map[string]any{"api_key": old.APIKey, "api_secret": old.APISecret}
	resp, err := h.do(logical.UpdateOperation, "config/ob", write)
	if msg, _ := respErr(resp).(string); !errors.Is(err, logical.ErrInvalidRequest) || !strings.Contains(msg, "by an earlier plugin version was interrupted") {
		t.Fatalf("credential write over a legacy rotation: %v %v", err, msg)
	}
	write["force"] = true
	resp = h.mustDo(logical.UpdateOperation, "config/ob", write)
	if resp == nil || !strings.Contains(strings.Join(resp.Warnings, " "), "1 fallback credential(s)") {
		t.Fatalf("forced write: %v", resp)
	}
	if line := h.logLine("earlier version's interrupted rotation"); !strings.Contains(line, next.APIKey) {
		t.Fatalf("the log does not name what was given up:\n%s", h.logs.String())
	}
	h.rollback()
	if c := h.stored("ob"); len(c.Fallbacks) != 0 || c.ob().APIKey != old.APIKey {
		t.Fatalf("after the rollback: %d fallbacks, key %s", len(c.Fallbacks), c.ob().APIKey)
	}
}

// force=true that forces nothing says so; a forced delete's answer says what it gave up.
func TestForceWarnings(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	resp := h.mustDo(logical.UpdateOperation, "config/ops", map[string]any{"max_ttl": "5m", "force": true})
	if resp == nil || !strings.Contains(strings.Join(resp.Warnings, " "), "force=true forced nothing") {
		t.Fatalf("a force that forced nothing: %v", resp)
	}
	h.unsettledRotation()
	resp = h.mustDo(logical.DeleteOperation, "config/ob", map[string]any{"force": true})
	if resp == nil || !strings.Contains(strings.Join(resp.Warnings, " "), "1 fallback credential(s)") {
		t.Fatalf("a forced delete: %v", resp)
	}
}
