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

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// pendingOffBlocks writes an interrupted OffBlocks rotation of config ob to a pair that the
// provider does not hold, as a crash before the PUT leaves it, and returns that pair.
func (h *harness) pendingOffBlocks(acknowledged bool) credential {
	h.t.Helper()
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	cur := h.stored("ob").credential
	next, _ := offblocksProvider{}.Prepare(context.Background(), cur)
	e := newRotationWAL("ob", "offblocks", cur, next, h.clock.Now())
	e.Acknowledged = acknowledged
	if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation, e); err != nil {
		h.t.Fatal(err)
	}
	return next
}

// A new credential the provider fails to answer for (503) is not a refusal: nothing is
// settled, whatever the old one does.
func TestSettleUnansweredIsNotARefusal(t *testing.T) {
	h := newHarness(t)
	next := h.pendingOffBlocks(false)
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1,
		Match: func(body []byte) bool { return bytes.Contains(body, []byte(next.APIKey)) }})
	h.rollback()
	if h.walCount() != 1 || h.sim.Calls(simulator.RouteOffBlocksCredentials) != 0 {
		t.Fatalf("settled on an unanswered mint: WAL %d, PUTs %d", h.walCount(), h.sim.Calls(simulator.RouteOffBlocksCredentials))
	}
}

// When the provider refuses both credentials, nothing is settled and nothing is sent.
func TestSettleBothRefusedKeepsEntry(t *testing.T) {
	h := newHarness(t)
	h.pendingOffBlocks(false)
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 401, Times: -1})
	h.rollback()
	if h.walCount() != 1 || h.sim.Calls(simulator.RouteOffBlocksCredentials) != 0 {
		t.Fatal("settled, or sent the change, while the provider refuses both credentials")
	}
	h.sim.ClearFaults()
	h.rollback()
	h.assertStoredIsProviders("ob")
	if c := h.stored("ob"); c.LastRotated.IsZero() || !c.LastRotated.Equal(h.clock.Now()) {
		t.Errorf("a settled rotation did not set last_rotated: %s", c.LastRotated)
	}
}

// Sent again after a crash, the change is refused outright (the provider's 400): only then
// is the old pair kept, and the entry cleared.
func TestSettleResentChangeRefusedKeepsOld(t *testing.T) {
	h := newHarness(t)
	h.pendingOffBlocks(false)
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 400})
	h.rollback()
	h.assertStoredIsProviders("ob")
	if h.stored("ob").APIKey != obKey {
		t.Fatal("the refused pair was adopted")
	}
}

// Bloq keeps its old key until Vault deletes it: a new key that does not work is given up
// (and deleted upstream), the old one kept.
func TestSettleBloqNewKeyRefusedIsDeleted(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	cur := h.stored("bq").credential
	next := cur
	next.ClientID, next.ClientSecret = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12", "wrong"
	h.sim.AddBloqKey(h.bqUserID, next.ClientID, "not-the-secret-vault-holds")
	if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation,
		newRotationWAL("bq", "bloq", cur, next, h.clock.Now())); err != nil {
		t.Fatal(err)
	}
	h.rollback()
	if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 1 || keys[0] != bqClient || h.walCount() != 0 {
		t.Fatalf("keys upstream %v, WAL %d: the unusable new key should be deleted, the old kept", keys, h.walCount())
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
	cur := h.stored("bq").credential
	marker := newRotationWAL("bq", "bloq", cur, credential{}, h.clock.Now())
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
	// Settle the marker alone: the rotation entry's key must count as held, not orphaned.
	pending, _ := pendingRotations(context.Background(), h.storage, "bq")
	for _, pr := range pending {
		if pr.entry.Creating {
			if out, _ := h.b.settle(context.Background(), h.storage, pr.id, pr.entry); out != unresolved {
				t.Fatal("a marker was dropped without its orphan looked for")
			}
			h.sim.ClearFaults()
			if out, _ := h.b.settle(context.Background(), h.storage, pr.id, pr.entry); out != dropped {
				t.Fatal("the marker was not settled once the key list answered")
			}
		}
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "credential "+orphan) || strings.Contains(logs, "credential "+held.ClientID) {
		t.Fatalf("orphan report wrong:\n%s", logs)
	}
}

// If the rotation's WAL write fails after Bloq created the key, the key is deleted again
// and the marker cleared; nothing is left upstream.
func TestRotateBloqWALWriteFailsDeletesNewKey(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	puts := 0
	h.storage.setFailPut(func(k string) bool {
		if strings.HasPrefix(k, "wal/") {
			puts++
			return puts == 2 // the marker lands; the rotation's entry does not
		}
		return false
	})
	if _, err := h.do(logical.UpdateOperation, "rotate-root/bq", nil); err == nil {
		t.Fatal("the rotation succeeded without its WAL entry")
	}
	if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 1 || keys[0] != bqClient || h.walCount() != 0 {
		t.Fatalf("keys upstream %v, WAL %d", keys, h.walCount())
	}
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
// text survives) still makes reads that must write, deletes and rotations return
// logical.ErrReadOnly; and on a performance standby a read does not even try.
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
	if h.sim.Calls(simulator.RouteOffBlocksToken) != calls+1 {
		t.Error("the standby went on to settle after its first mint was refused")
	}
}
