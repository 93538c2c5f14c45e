package apitokens

import (
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// After an upgrade from a version that wrote a WAL entry for a whole rotation (v0.1.0), a
// config whose entry holds a new credential is unsettled from the first request on, exactly
// as one holding a fallback: the provider may adopt that credential at any moment, and every
// token of the stored one dies then. The first read settles it (the entry becomes a fallback,
// sent again and adopted here) and hands out a token of the credential that stays; before
// the fix it handed out the old pair's token, which the settle killed (issue 27, item 2).
func TestEarlierVersionWALEntryUnsettledFromFirstRead(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	next, _ := offblocks.GenerateCredentials()
	h.legacyRotationWAL("ob", "offblocks", h.stored("ob").ob(), next)
	h.startBackend() // the upgraded version starts on storage that holds the entry

	tok, _ := h.creds("ob").Data["token"].(string)
	h.rollback()
	h.rollback()
	if _, err := h.sim.Validate(tok); err != nil {
		t.Fatalf("the first read after the upgrade handed out a token that the entry's settle killed: %v", err)
	}
	if c := h.stored("ob"); !registry.SameRoot(c.cred, next) || h.walCount() != 0 {
		t.Fatalf("the entry's credential was not adopted (WAL %d)", h.walCount())
	}
}

// A create marker holds no credential: it blocks no read, even while the orphan search it
// asks for cannot run.
func TestEarlierVersionCreateMarkerBlocksNothing(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	marker := newRotationWAL("bq", "bloq", nil, nil, h.clock.Now())
	marker.Creating = true
	h.putWALAt("marker", walKindRotation, marker)
	h.startBackend()
	h.sim.Inject(simulator.RouteBloqKeysList, simulator.Fault{Status: 503, Times: -1})
	h.creds("bq")
	if h.walCount() != 1 {
		t.Fatal("the marker was settled without its orphan search")
	}
}
