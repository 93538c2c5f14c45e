package apitokens

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// unsettledRotation leaves config ob with a rotation the provider applied while becoming
// unreachable: only the config's fallback holds the pair the provider now accepts. It
// returns that pair's api_key.
func (h *harness) unsettledRotation() string {
	h.t.Helper()
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{AfterApply: true, Status: 500,
		OnHit: func() { h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1}) }})
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		h.t.Fatal("a rotation with an unknown outcome reported success")
	}
	if n := h.fallbacks("ob"); n != 1 {
		h.t.Fatalf("an unknown outcome must keep the new pair as a fallback, have %d fallbacks", n)
	}
	key, _ := h.sim.OffBlocksPair(h.obID)
	return key
}

// A delete while a rotation is unsettled is refused with a 400 that names the unsettled
// rotation's credential and force=true, and changes nothing; once the provider answers, the
// delete settles the rotation (adopting the fallback) and proceeds.
func TestConfigDeleteSettlesPendingRotationFirst(t *testing.T) {
	h := newHarness(t)
	newKey := h.unsettledRotation()

	resp, err := h.do(logical.DeleteOperation, "config/ob", nil)
	if !errors.Is(err, logical.ErrInvalidRequest) {
		t.Fatalf("delete with an unsettled rotation: want a 400, got %v %v", err, respErr(resp))
	}
	msg := respErr(resp).(string)
	for _, want := range []string{"unsettled", newKey, "vault delete apitokens/config/ob force=true"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q lacks %q", msg, want)
		}
	}
	if h.fallbacks("ob") != 1 {
		t.Fatal("the refused delete changed the config")
	}

	h.sim.ClearFaults()
	h.mustDo(logical.DeleteOperation, "config/ob", nil)
	if resp := h.mustDo(logical.ReadOperation, "config/ob", nil); resp != nil {
		t.Fatal("the delete left the config")
	}
	if !strings.Contains(h.logs.String(), "settled: a fallback credential works and is now the stored one") {
		t.Fatal("the delete did not settle the rotation before deleting")
	}
}

// force=true deletes anyway, giving the fallback up, and says loudly in the log what was
// given up (by identifier, never by secret).
func TestConfigDeleteForced(t *testing.T) {
	h := newHarness(t)
	newKey := h.unsettledRotation()
	given := h.stored("ob").Fallbacks[0]

	h.mustDo(logical.DeleteOperation, "config/ob", map[string]any{"force": true})
	if resp := h.mustDo(logical.ReadOperation, "config/ob", nil); resp != nil {
		t.Fatal("the forced delete left the config")
	}
	logs := h.logs.String()
	if line := h.logLine("forced delete"); !strings.Contains(line, "[ERROR]") || !strings.Contains(line, newKey) {
		t.Fatalf("the forced delete did not log what it gave up:\n%s", logs)
	}
	assertNoSecrets(t, "log", logs, given.cred.(offblocks.Credentials).APISecret, obSecret)

}

// Bloq creates the new key before the WAL can hold its secret. A rotation that dies during
// the create call leaves a marker entry; the rollback names the key it finds that nobody
// holds, in a warning, and never deletes it.
func TestRotateBloqOrphanReportedAfterCrash(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	cur := h.stored("bq").bq()
	marker := newRotationWAL("bq", "bloq", cur, nil, h.clock.Now())
	marker.Creating, marker.Known = true, []string{bqClient}
	if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation, marker); err != nil {
		t.Fatal(err)
	}
	orphan := "0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad"
	h.sim.AddBloqKey(h.bqUserID, orphan, "feedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeed")

	h.rollback()
	logs := h.logs.String()
	if !strings.Contains(logs, "[WARN]") || !strings.Contains(logs, orphan) || strings.Contains(logs, "credential "+bqClient) {
		t.Fatalf("the orphaned key was not named (or the live one was):\n%s", logs)
	}
	if h.walCount() != 0 {
		t.Fatal("the marker entry was kept")
	}
	if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 2 {
		t.Fatalf("keys upstream = %v: Vault must not delete a key it cannot prove is its own", keys)
	}
	h.creds("bq")
}

// A lost answer to Bloq's create-key call leaves an unused key upstream but changes nothing
// stored: the old key still works, and the error names the orphaned key.
func TestRotateBloqCreateAnswerLost(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	h.sim.Inject(simulator.RouteBloqKeysCreate, simulator.Fault{AfterApply: true, Status: 502})
	_, err := h.do(logical.UpdateOperation, "rotate-root/bq", nil)
	if err == nil {
		t.Fatal("rotation reported success without the new key's secret")
	}
	if h.sim.Calls(simulator.RouteBloqKeysCreate) != 1 {
		t.Fatal("the create call was retried: it would create a second key")
	}
	keys := h.sim.BloqClientIDs(h.bqUserID)
	if len(keys) != 2 || h.stored("bq").bq().ClientID != bqClient || h.walCount() != 0 {
		t.Fatalf("provider keys %v, stored %s, WAL %d", keys, h.stored("bq").bq().ClientID, h.walCount())
	}
	if orphan := keys[1]; !strings.Contains(err.Error(), orphan) || !strings.Contains(h.logs.String(), orphan) {
		t.Fatalf("the orphaned key %s is not named in the error or the log: %v", orphan, err)
	}
	h.creds("bq")
}

// A read that would have to write (settling a rotation) on storage that cannot be written
// (a performance standby) returns logical.ErrReadOnly, so Vault forwards it to the active
// node; once storage can be written, a read settles it.
func TestCredsSettleOnReadOnlyStorageForwards(t *testing.T) {
	h := newHarness(t)
	h.unsettledRotation()
	h.sim.ClearFaults()
	h.storage.setReadOnly()
	_, err := h.do(logical.ReadOperation, "creds/ob", nil)
	if !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("want logical.ErrReadOnly, got %v", err)
	}
	h.storage.setFailPut(nil)
	h.assertOffBlocksConsistent("ob")
}
