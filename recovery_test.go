package apitokens

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// pendingOffBlocks creates config ob holding a fallback pair the provider never received,
// as a rotation that stopped (a crash) between storing it and sending its PUT leaves it, and
// returns that pair.
func (h *harness) pendingOffBlocks() offblocks.Credentials {
	h.t.Helper()
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	next, err := offblocks.GenerateCredentials()
	if err != nil {
		h.t.Fatal(err)
	}
	h.holdFallback("ob", next)
	return next
}

// A fallback the provider does not answer for (a 503 to its mint) is not refused: it is
// kept however the current credential answers, reads get a 502 meanwhile, and it is adopted
// once the provider answers. Bloq, whose refused fallbacks are deleted upstream, does not
// delete it.
func TestSettleUnansweredIsNotARefusal(t *testing.T) {
	t.Run("offblocks", func(t *testing.T) {
		h := newHarness(t)
		next := h.pendingOffBlocks()
		h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1,
			Match: func(body []byte) bool { return bytes.Contains(body, []byte(next.APIKey)) }})
		h.rollback() // the change is sent again and applied, but the new pair cannot be confirmed
		if h.fallbacks("ob") != 1 || h.stored("ob").ob().APIKey != obKey {
			t.Fatalf("settled on an unanswered mint: %d fallbacks, stored %s", h.fallbacks("ob"), h.stored("ob").ob().APIKey)
		}
		h.wantUnsettledRead("ob")
		h.sim.ClearFaults()
		h.rollback()
		h.assertStoredIsProviders("ob")
		if h.stored("ob").ob().APIKey != next.APIKey {
			t.Fatal("the fallback was not adopted once the provider answered")
		}
	})
	t.Run("bloq", func(t *testing.T) {
		h := newHarness(t)
		h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
		next := h.stored("bq").bq()
		next.ClientID, next.ClientSecret = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12", "ab12"
		h.sim.AddBloqKey(h.bqUserID, next.ClientID, next.ClientSecret)
		h.holdFallback("bq", next)
		h.sim.Inject(simulator.RouteBloqToken, simulator.Fault{Status: 503, Times: -1,
			Match: func(body []byte) bool { return bytes.Contains(body, []byte(next.ClientID)) }})
		h.rollback()
		if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 2 || h.fallbacks("bq") != 1 {
			t.Fatalf("keys upstream %v, %d fallbacks: an unanswered key was taken for a refused one", keys, h.fallbacks("bq"))
		}
		h.wantUnsettledRead("bq")
		h.sim.ClearFaults()
		h.rollback() // adopts the new key and deletes the one it replaces
		keys := h.sim.BloqClientIDs(h.bqUserID)
		if len(keys) != 1 || keys[0] != next.ClientID || h.stored("bq").bq().ClientID != next.ClientID {
			t.Fatalf("keys upstream %v, stored %s: the answered fallback was not adopted", keys, h.stored("bq").bq().ClientID)
		}
		h.creds("bq")
	})
}

// When the provider refuses both credentials (401 to every mint), the fallback is kept and
// nothing is sent (the change needs a Bearer of the current pair); once the provider answers
// again, the change is sent, the fallback adopted, and last_rotated set.
func TestSettleBothRefusedKeepsFallback(t *testing.T) {
	h := newHarness(t)
	next := h.pendingOffBlocks()
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 401, Times: -1})
	h.rollback()
	if h.fallbacks("ob") != 1 || h.sim.Calls(simulator.RouteOffBlocksCredentials) != 0 {
		t.Fatalf("%d fallbacks, %d PUTs: gave the fallback up, or sent the change, while the provider refuses both credentials",
			h.fallbacks("ob"), h.sim.Calls(simulator.RouteOffBlocksCredentials))
	}
	h.sim.ClearFaults()
	h.rollback()
	h.assertStoredIsProviders("ob")
	if c := h.stored("ob"); c.ob().APIKey != next.APIKey || !c.LastRotated.Equal(h.clock.Now()) {
		t.Errorf("stored %s, last_rotated %s: the settled rotation was not recorded", c.ob().APIKey, c.LastRotated)
	}
}

// A re-sent change that the provider refuses outright (a 400) proves nothing about an
// earlier send, which a lagging provider may still apply. By design the fallback is kept
// (this used to keep the old pair and drop the new one), reads answer 502 meanwhile, and
// once the provider takes the change, a read completes the rotation.
func TestSettleResentChangeRefusedKeepsFallback(t *testing.T) {
	h := newHarness(t)
	next := h.pendingOffBlocks()
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 400, Times: -1})
	h.rollback()
	if h.fallbacks("ob") != 1 || h.stored("ob").ob().APIKey != obKey {
		t.Fatalf("%d fallbacks, stored %s: a refused re-send gave the fallback up", h.fallbacks("ob"), h.stored("ob").ob().APIKey)
	}
	h.wantUnsettledRead("ob")
	h.sim.ClearFaults()
	h.assertOffBlocksConsistent("ob")
	if c := h.stored("ob"); c.ob().APIKey != next.APIKey || len(c.Fallbacks) != 0 {
		t.Fatalf("stored %s with %d fallbacks: the read did not complete the rotation", c.ob().APIKey, len(c.Fallbacks))
	}
}

// Bloq keeps its old key until Vault deletes it: a fallback key the provider refuses (401)
// is deleted upstream and dropped, and the current key kept (rule 3 of settle.go).
func TestSettleBloqNewKeyRefusedIsDeleted(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	next := h.stored("bq").bq()
	next.ClientID, next.ClientSecret = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12", "wrong"
	h.sim.AddBloqKey(h.bqUserID, next.ClientID, "not-the-secret-vault-holds")
	h.holdFallback("bq", next)
	h.rollback()
	if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 1 || keys[0] != bqClient || h.fallbacks("bq") != 0 {
		t.Fatalf("keys upstream %v, %d fallbacks: the refused new key should be deleted and dropped, the old kept",
			keys, h.fallbacks("bq"))
	}
	if h.stored("bq").bq().ClientID != bqClient {
		t.Fatal("the current key was replaced")
	}
	h.creds("bq")
}

// A marker whose orphan cannot be looked for yet (the key list fails) stays, and the next
// rollback names the orphan; keys held by another rotation of the config, and id-only key
// lists, are handled.
func TestOrphanSearchRetriedAndPrecise(t *testing.T) {
	h := newHarness(t)
	h.sim.SetBloqKeyListIDOnly(true)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	cur := h.stored("bq").bq()
	marker := newRotationWAL("bq", "bloq", cur, nil, h.clock.Now())
	marker.Creating, marker.Known = true, []string{bqClient}
	held := cur
	held.ClientID, held.ClientSecret = "4e1d4e1d4e1d4e1d4e1d4e1d4e1d4e1d4e1d4e1d", "4e1d"
	h.sim.AddBloqKey(h.bqUserID, held.ClientID, "4e1d")
	orphan := "0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad"
	h.sim.AddBloqKey(h.bqUserID, orphan, "0bad")
	for _, e := range []rotationWAL{marker, newRotationWAL("bq", "bloq", cur, held, h.clock.Now())} {
		if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation, e); err != nil {
			t.Fatal(err)
		}
	}
	h.sim.Inject(simulator.RouteBloqKeysList, simulator.Fault{Status: 503, Times: 5})
	// The earlier version's rotation entry becomes a fallback, whose key counts as held, not
	// orphaned; the marker stays until the key list answers.
	if _, err := h.b.settleWAL(context.Background(), h.storage, "bq"); err != nil {
		t.Fatal(err)
	}
	if h.walCount() != 1 || len(h.stored("bq").Fallbacks) != 1 {
		t.Fatalf("WAL %d, fallbacks %d: the marker was dropped without its orphan looked for, or the entry not converted",
			h.walCount(), len(h.stored("bq").Fallbacks))
	}
	h.sim.ClearFaults()
	if _, err := h.b.settleWAL(context.Background(), h.storage, "bq"); err != nil || h.walCount() != 0 {
		t.Fatalf("the marker was not settled once the key list answered: %v", err)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "credential "+orphan) || strings.Contains(logs, "credential "+held.ClientID) {
		t.Fatalf("orphan report wrong:\n%s", logs)
	}
}

// If storing the new key as a fallback fails after Bloq created it, nothing was sent and
// nobody can hold the key: it is deleted upstream again, the create marker cleared, and the
// stored key still works.
func TestRotateBloqFallbackWriteFailsDeletesNewKey(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	h.failConfigPutsAfter(0)
	if _, err := h.do(logical.UpdateOperation, "rotate-root/bq", nil); err == nil {
		t.Fatal("the rotation succeeded without storing its new key")
	}
	h.storage.setFailPut(nil)
	if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 1 || keys[0] != bqClient || h.walCount() != 0 {
		t.Fatalf("keys upstream %v, WAL %d: the new key or its marker was left", keys, h.walCount())
	}
	if c := h.stored("bq"); c.bq().ClientID != bqClient || len(c.Fallbacks) != 0 {
		t.Fatalf("stored %s with %d fallbacks", c.bq().ClientID, len(c.Fallbacks))
	}
	h.creds("bq")
}

// A confirmation that needs 20 s of a 30 s request_timeout succeeds, and never waits past
// request_timeout in all.
func TestRotateConfirmBackoffWithinBudget(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.SetOffBlocksLag(20 * time.Second)
	h.mustDo(logical.UpdateOperation, "rotate-root/ob", nil)
	h.assertStoredIsProviders("ob")

	h.sim.SetOffBlocksLag(time.Hour)
	start := h.clock.Now()
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("unsettled rotation reported success")
	}
	if waited := h.clock.Now().Sub(start); waited > 30*time.Second {
		t.Fatalf("confirmation waited %s past a 30s request_timeout", waited)
	}
}

// Storage that cannot be written the way the real plugin sees it (over gRPC only the error's
// text survives) makes reads that must settle, deletes, rotations and config writes return
// logical.ErrReadOnly, so that Vault forwards them; and on a performance standby a read of a
// config holding a fallback neither settles it nor mints with the current credential.
func TestReadOnlyStorageForwardsEveryWrite(t *testing.T) {
	h := newHarness(t)
	h.unsettledRotation()
	h.sim.ClearFaults()
	h.storage.mu.Lock()
	h.storage.failPut, h.storage.putErr = func(string) bool { return true }, errors.New(logical.ErrReadOnly.Error())
	h.storage.mu.Unlock()
	for _, op := range []struct {
		op   logical.Operation
		path string
	}{{logical.ReadOperation, "creds/ob"}, {logical.DeleteOperation, "config/ob"}, {logical.UpdateOperation, "rotate-root/ob"},
		{logical.UpdateOperation, "config/ob"}} {
		if _, err := h.do(op.op, op.path, map[string]any{"max_ttl": "1h"}); err != logical.ErrReadOnly {
			t.Errorf("%s %s on read-only storage: %v", op.op, op.path, err)
		}
	}
	h.storage.setFailPut(nil)
	h.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	calls := h.sim.Calls(simulator.RouteOffBlocksToken)
	if _, err := h.do(logical.ReadOperation, "creds/ob", nil); err != logical.ErrReadOnly {
		t.Errorf("a read that must settle on a performance standby: %v", err)
	}
	if n := h.sim.Calls(simulator.RouteOffBlocksToken) - calls; n != 0 {
		t.Errorf("the standby made %d mints for a config holding a fallback", n)
	}
	if h.fallbacks("ob") != 1 {
		t.Error("the standby settled the config")
	}
}
