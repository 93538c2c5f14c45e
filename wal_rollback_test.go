package apitokens

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// Vault's rollback of one WAL entry answers for that entry alone (matched by its nonce): an
// entry that settleWAL removed is done (nil), even while another entry of the same config,
// a create marker whose orphan cannot be looked for yet, is kept (an error, so Vault retries).
func TestWALRollbackAnswersForItsOwnEntry(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	cur := h.stored("bq").bq()
	waiting := newRotationWAL("bq", "bloq", cur, nil, h.clock.Now())
	waiting.Creating, waiting.Known = true, []string{bqClient}
	// An entry for another provider under the same name: settleWAL drops it without a call.
	stale := newRotationWAL("bq", "opsnow", cur, nil, h.clock.Now())
	for _, e := range []rotationWAL{waiting, stale} {
		if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation, e); err != nil {
			t.Fatal(err)
		}
	}
	h.sim.Inject(simulator.RouteBloqKeysList, simulator.Fault{Status: 503, Times: 1000})
	req := &logical.Request{Storage: h.storage}
	if err := h.b.walRollback(context.Background(), req, walKindRotation, stale); err != nil {
		t.Fatalf("the rollback of an entry that is settled failed because another entry of its config waits: %v", err)
	}
	if err := h.b.walRollback(context.Background(), req, walKindRotation, waiting); err == nil {
		t.Fatal("the rollback of a create marker whose orphan could not be looked for succeeded")
	}
	h.sim.ClearFaults()
	if err := h.b.walRollback(context.Background(), req, walKindRotation, waiting); err != nil || h.walCount() != 0 {
		t.Fatalf("the marker was not settled once the key list answered: %v (WAL %d)", err, h.walCount())
	}
}

// An OffBlocks entry of an earlier version whose new pair is stored already leaves nothing to
// retire: the PUT killed the old pair, so the old secret is not kept (as retiring) anywhere.
func TestLegacyOffBlocksEntryAlreadyAdoptedRetiresNothing(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	old := h.stored("ob").ob()
	next, err := offblocks.GenerateCredentials()
	if err != nil {
		t.Fatal(err)
	}
	c := h.stored("ob")
	c.cred = registry.AdoptRoot(c.cred, next)
	if err := h.b.putConfig(context.Background(), h.storage, "ob", c); err != nil {
		t.Fatal(err)
	}
	h.legacyRotationWAL("ob", "offblocks", old, next)
	if _, err := h.b.settleWAL(context.Background(), h.storage, "ob"); err != nil {
		t.Fatal(err)
	}
	if c := h.stored("ob"); len(c.Retiring) != 0 || h.walCount() != 0 {
		t.Fatalf("retiring %d, WAL %d: an OffBlocks pair the PUT killed was kept", len(c.Retiring), h.walCount())
	}
}
