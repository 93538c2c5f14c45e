package apitokens

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// Contracts of wal.go that the rest of the suite left unguarded: which WAL entries a settle
// reads and which it keeps, what a failed read or write of the WAL does, and what the periodic
// function and Vault's rollback make of them.

// walFaults is the harness's storage with the WAL's reads broken: listing it fails from the
// failListFrom'th list on (1-based; 0: never), reading an entry fails, or the list names an
// entry that is gone (deleted between the list and the read, as by another node); or reading
// a config fails.
type walFaults struct {
	*flakyStorage
	lists         atomic.Int32
	failListFrom  int32
	failGet       bool
	phantom       string
	failConfigGet bool
}

func (s *walFaults) List(ctx context.Context, prefix string) ([]string, error) {
	if prefix != framework.WALPrefix {
		return s.flakyStorage.List(ctx, prefix)
	}
	if n := s.lists.Add(1); s.failListFrom > 0 && n >= s.failListFrom {
		return nil, errStorageDown
	}
	keys, err := s.flakyStorage.List(ctx, prefix)
	if s.phantom != "" {
		keys = append([]string{s.phantom}, keys...)
	}
	return keys, err
}

func (s *walFaults) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if (s.failGet && strings.HasPrefix(key, framework.WALPrefix)) || (s.failConfigGet && strings.HasPrefix(key, configPrefix)) {
		return nil, errStorageDown
	}
	return s.flakyStorage.Get(ctx, key)
}

// putWALAt writes a WAL entry under a chosen id, as framework.PutWAL does under a random one,
// so that a test fixes the order in which the WAL lists its entries.
func (h *harness) putWALAt(id, kind string, data any) {
	h.t.Helper()
	v, _ := json.Marshal(&framework.WALEntry{Kind: kind, Data: data, CreatedAt: h.clock.Now().Unix()})
	if err := h.storage.Put(context.Background(), &logical.StorageEntry{Key: framework.WALPrefix + id, Value: v}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) walIDs() []string {
	ids, _ := framework.ListWAL(context.Background(), h.storage)
	return ids
}

// withoutField is e's stored form with one member left out.
func withoutField(e rotationWAL, field string) map[string]any {
	raw, _ := json.Marshal(e)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	delete(m, field)
	return m
}

// legacyOffBlocks writes config ob and returns its pair and a new one an earlier version's
// rotation may have sent.
func (h *harness) legacyOffBlocks() (old, next offblocks.Credentials) {
	h.t.Helper()
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	next, _ = offblocks.GenerateCredentials() // fails only when crypto/rand does
	return h.stored("ob").ob(), next
}

// An entry that lacks its config's name or its nonce cannot be read: Vault's rollback keeps
// it (an error), and a settle neither uses nor deletes it, even when its provider no longer
// matches the config's (which drops a readable entry).
func TestWALEntryLackingNameOrNonceIsKept(t *testing.T) {
	h := newHarness(t)
	old, _ := h.legacyOffBlocks()
	e := newRotationWAL("ob", "opsnow", nil, nil, h.clock.Now())
	req := &logical.Request{Storage: h.storage}
	for _, field := range []string{"nonce", "name"} {
		if err := h.b.walRollback(context.Background(), req, walKindRotation, withoutField(e, field)); err == nil {
			t.Errorf("the rollback of an entry without its %s succeeded: Vault would delete it", field)
		}
	}
	if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation, withoutField(e, "nonce")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.b.settleWAL(context.Background(), h.storage, "ob"); err != nil {
		t.Fatal(err)
	}
	if n := h.walCount(); n != 1 {
		t.Fatalf("an entry without a nonce was settled (WAL %d)", n)
	}
	if c := h.stored("ob"); c.ob() != old || len(c.Fallbacks) != 0 {
		t.Fatal("an unreadable entry changed the config")
	}
}

// A WAL that cannot be listed or read is an error, never taken for an empty one: a settle
// that skipped an entry could hand out tokens of a credential an earlier version's rotation
// replaced, and a rollback that answered nil would have Vault delete its entry. A config
// that cannot be read keeps its entries. An entry listed but gone by the time it is read
// (another node settled it) is skipped.
func TestWALReadFailuresAreErrors(t *testing.T) {
	h := newHarness(t)
	old, next := h.legacyOffBlocks()
	h.legacyRotationWAL("ob", "offblocks", old, next)
	ctx := context.Background()

	s := &walFaults{flakyStorage: h.storage, failListFrom: 1}
	if _, err := h.b.settleWAL(ctx, s, "ob"); err == nil {
		t.Error("settleWAL: a failed list of the WAL is no error")
	}
	if _, err := walConfigNames(ctx, s); err == nil {
		t.Error("walConfigNames: a failed list of the WAL is no error")
	}

	s = &walFaults{flakyStorage: h.storage, failGet: true}
	if _, err := h.b.settleWAL(ctx, s, "ob"); err == nil {
		t.Error("settleWAL: a failed read of a WAL entry is no error")
	}

	// A config that cannot be read is not a config that is gone: its entry is kept.
	s = &walFaults{flakyStorage: h.storage, failConfigGet: true}
	if _, err := h.b.settleWAL(ctx, s, "ob"); err == nil || h.walCount() != 1 {
		t.Errorf("settleWAL with its config unreadable: %v, WAL %d", err, h.walCount())
	}

	s = &walFaults{flakyStorage: h.storage, phantom: "00000000-gone"}
	if names, err := walConfigNames(ctx, s); err != nil || !names["ob"] || len(names) != 1 {
		t.Errorf("walConfigNames with an entry gone since the list: %v %v", names, err)
	}
	if pending, err := pendingRotations(ctx, s, "ob"); err != nil || len(pending) != 1 {
		t.Errorf("pendingRotations with an entry gone since the list: %d %v", len(pending), err)
	}
	if h.walCount() != 1 || h.fallbacks("ob") != 0 {
		t.Fatal("a failed read changed storage")
	}

	// The rollback settles the entry, then cannot tell whether it is gone: it keeps it.
	s = &walFaults{flakyStorage: h.storage, failListFrom: 2}
	data, _ := framework.GetWAL(ctx, h.storage, h.walIDs()[0])
	if err := h.b.walRollback(ctx, &logical.Request{Storage: s}, walKindRotation, data.Data); err == nil {
		t.Error("the rollback answered nil for an entry it could not look for")
	}
}

// A settle reads every entry of its config, whatever comes before it in the WAL: an entry of
// another config, and one of a provider this version does not know, are kept; one of another
// provider than the config's (a config deleted and written again) is dropped, and one of an
// earlier version becomes a fallback. It reports that it changed something. An entry of a
// config that is gone is dropped.
func TestSettleWALGoesOnPastEntriesItSkips(t *testing.T) {
	h := newHarness(t)
	old, next := h.legacyOffBlocks()
	now := h.clock.Now()
	h.putWALAt("01", walKindRotation, newRotationWAL("other", "offblocks", old, next, now))
	h.putWALAt("02", walKindRotation, newRotationWAL("ob", "newer-provider", nil, nil, now))
	h.putWALAt("03", walKindRotation, newRotationWAL("ob", "opsnow", nil, nil, now))
	h.putWALAt("04", walKindRotation, newRotationWAL("ob", "offblocks", old, next, now))
	changed, err := h.b.settleWAL(context.Background(), h.storage, "ob")
	if err != nil {
		t.Fatal(err)
	}
	if ids := h.walIDs(); !slices.Equal(ids, []string{"01", "02"}) {
		t.Errorf("WAL after the settle: %v, want the other config's and the unknown provider's", ids)
	}
	c := h.stored("ob")
	if len(c.Fallbacks) != 1 || !registry.SameRoot(c.Fallbacks[0].cred, next) {
		t.Fatalf("%d fallbacks: the earlier version's entry after skipped ones was not converted", len(c.Fallbacks))
	}
	if !changed {
		t.Error("settleWAL converted an entry and reported no change")
	}

	h.putWALAt("05", walKindRotation, newRotationWAL("gone", "offblocks", old, next, now))
	if _, err := h.b.settleWAL(context.Background(), h.storage, "gone"); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(h.walIDs(), "05") {
		t.Error("the entry of a config that is gone was kept")
	}
}

// An entry of an earlier version whose new credential the config already holds, as its
// current credential or as a fallback, adds no fallback: a config must not be left unsettled
// (no tokens) by a credential it uses already, nor hold one twice.
func TestLegacyEntryAddsNoFallbackItHolds(t *testing.T) {
	for _, held := range []bool{false, true} {
		h := newHarness(t)
		old, next := h.legacyOffBlocks()
		c, want := h.stored("ob"), 1
		if held {
			c.Fallbacks = []fallback{{cred: next}}
		} else {
			c.cred, want = registry.AdoptRoot(c.cred, next), 0
		}
		if err := h.b.putConfig(context.Background(), h.storage, "ob", c); err != nil {
			t.Fatal(err)
		}
		h.legacyRotationWAL("ob", "offblocks", old, next)
		if _, err := h.b.settleWAL(context.Background(), h.storage, "ob"); err != nil {
			t.Fatal(err)
		}
		if n := h.fallbacks("ob"); n != want || h.walCount() != 0 {
			t.Fatalf("held as a fallback: %v; %d fallbacks, WAL %d: the config holds the new pair twice", held, n, h.walCount())
		}
	}
}

// An entry of an earlier version is deleted only once what it holds is stored: when the
// config's write fails, the settle fails and the entry stays (for OffBlocks the new pair may
// be the only copy of the live credential; for Bloq the old key would live on upstream).
func TestLegacyEntryKeptWhenItsConversionIsNotStored(t *testing.T) {
	for _, name := range []string{"ob", "bq"} {
		h := newHarness(t)
		old, next, provider := credential(nil), credential(nil), "bloq"
		if name == "ob" {
			o, n := h.legacyOffBlocks()
			old, next, provider = o, n, "offblocks"
		} else {
			old, next = h.adoptedBloqKey()
		}
		h.legacyRotationWAL(name, provider, old, next)
		h.failConfigPutsAfter(0)
		if _, err := h.b.settleWAL(context.Background(), h.storage, name); err == nil {
			t.Errorf("%s: a conversion that could not be stored reported success", provider)
		}
		if n := h.walCount(); n != 1 {
			t.Fatalf("%s: WAL %d: the entry was deleted before what it holds was stored", provider, n)
		}
	}
}

// adoptedBloqKey writes config bq, then a second key of the account as its current one (as an
// earlier version's rotation left it after storing the new key), and returns both.
func (h *harness) adoptedBloqKey() (old, next credential) {
	h.t.Helper()
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	c := h.stored("bq")
	old = c.cred
	n := c.bq()
	n.ClientID, n.ClientSecret = "a11a11a11a11a11a11a11a11a11a11a11a11a11a", "a11a5ec2e7"
	h.sim.AddBloqKey(h.bqUserID, n.ClientID, n.ClientSecret)
	c.cred = registry.AdoptRoot(c.cred, n)
	if err := h.b.putConfig(context.Background(), h.storage, "bq", c); err != nil {
		h.t.Fatal(err)
	}
	return old, n
}

// An entry of an earlier version whose new Bloq key is stored already makes the old key a
// retiring one, stored, and the next settle deletes it upstream: it is not left alive.
func TestLegacyBloqEntryRetiresTheOldKey(t *testing.T) {
	h := newHarness(t)
	old, next := h.adoptedBloqKey()
	h.legacyRotationWAL("bq", "bloq", old, next)
	if _, err := h.b.settleWAL(context.Background(), h.storage, "bq"); err != nil {
		t.Fatal(err)
	}
	c := h.stored("bq")
	if len(c.Retiring) != 1 || !sameKey(c.Retiring[0], old) || h.walCount() != 0 {
		t.Fatalf("retiring %d, WAL %d: the old key is not held as retiring", len(c.Retiring), h.walCount())
	}
	h.tick()
	if keys := h.sim.BloqClientIDs(h.bqUserID); slices.Contains(keys, bqClient) {
		t.Fatalf("keys upstream %v: the replaced key lives on", keys)
	}
	h.creds("bq")
}

// On a node that cannot write (a performance standby), a settle with WAL entries to settle
// answers logical.ErrReadOnly, so that Vault forwards the request, and changes nothing; with
// none it is no error (there is nothing to forward for).
func TestWALSettleOnAStandby(t *testing.T) {
	h := newHarness(t)
	old, next := h.legacyOffBlocks()
	h.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	ctx := context.Background()
	if changed, err := h.b.settleWAL(ctx, h.storage, "ob"); err != nil || changed {
		t.Errorf("settleWAL with no entry on a standby: %v %v", changed, err)
	}
	if _, _, err := h.b.settle(ctx, h.storage, "ob"); err != nil {
		t.Errorf("a settle of a settled config with no entry on a standby: %v", err)
	}
	h.legacyRotationWAL("ob", "offblocks", old, next)
	if _, err := h.b.settleWAL(ctx, h.storage, "ob"); !errors.Is(err, logical.ErrReadOnly) {
		t.Errorf("settleWAL with an entry on a standby: %v", err)
	}
	if _, _, err := h.b.settle(ctx, h.storage, "ob"); !errors.Is(err, logical.ErrReadOnly) {
		t.Errorf("a settle with an entry on a standby: %v", err)
	}
	data, _ := framework.GetWAL(ctx, h.storage, h.walIDs()[0])
	if err := h.b.walRollback(ctx, &logical.Request{Storage: h.storage}, walKindRotation, data.Data); !errors.Is(err, logical.ErrReadOnly) {
		t.Errorf("the rollback of an entry on a standby: %v", err)
	}
	if h.walCount() != 1 || h.fallbacks("ob") != 0 {
		t.Fatal("the standby settled the entry")
	}
}

// Vault's rollback keeps (an error that says to upgrade the plugin) an entry of a kind this
// version does not know, however its data reads, and an entry of a provider it does not know;
// a settle leaves an entry of another kind alone.
func TestWALRollbackKeepsWhatItCannotRead(t *testing.T) {
	h := newHarness(t)
	h.legacyOffBlocks()
	stale := newRotationWAL("ob", "opsnow", nil, nil, h.clock.Now())
	req := &logical.Request{Storage: h.storage}
	err := h.b.walRollback(context.Background(), req, "rotate-root-v9", stale)
	if err == nil || !strings.Contains(err.Error(), "upgrade the plugin") {
		t.Errorf("the rollback of an entry of an unknown kind: %v", err)
	}
	h.putWALAt("01", "rotate-root-v9", stale)
	if _, err := h.b.settleWAL(context.Background(), h.storage, "ob"); err != nil || h.walCount() != 1 {
		t.Fatalf("a settle took an entry of another kind (%v, WAL %d)", err, h.walCount())
	}

	future := newRotationWAL("ob", "newer-provider", nil, nil, h.clock.Now())
	h.putWALAt("02", walKindRotation, future)
	err = h.b.walRollback(context.Background(), req, walKindRotation, future)
	if err == nil || !strings.Contains(err.Error(), "upgrade the plugin") || !strings.Contains(err.Error(), "newer-provider") {
		t.Errorf("the rollback of an entry of an unknown provider: %v", err)
	}
}

// The periodic function settles a config whose only trace of an interrupted rotation is a WAL
// entry of an earlier version at once, without waiting for Vault's rollback: here the new pair
// was never sent, and the settle sends it and adopts it.
func TestPeriodicSettlesAConfigWithAWALEntry(t *testing.T) {
	h := newHarness(t)
	old, next := h.legacyOffBlocks()
	h.legacyRotationWAL("ob", "offblocks", old, next)
	h.periodic()
	if h.walCount() != 0 {
		t.Fatal("the periodic function left the WAL entry")
	}
	h.assertStoredIsProviders("ob")
	if h.stored("ob").ob().APIKey != next.APIKey {
		t.Fatal("the entry's new pair was not adopted")
	}
}

// A key the config holds as retiring is not named as an orphan of an interrupted create call:
// Vault deletes it itself, and an operator told to delete it in the console is misled. A key
// nobody holds is named.
func TestOrphanReportSparesRetiringKeys(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	retiring, _ := h.retiringBloqKey()
	orphan := "0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad"
	h.sim.AddBloqKey(h.bqUserID, orphan, "0bad")
	marker := newRotationWAL("bq", "bloq", h.stored("bq").cred, nil, h.clock.Now())
	marker.Creating, marker.Known = true, []string{bqClient}
	if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation, marker); err != nil {
		t.Fatal(err)
	}
	if _, err := h.b.settleWAL(context.Background(), h.storage, "bq"); err != nil || h.walCount() != 0 {
		t.Fatalf("the marker was not settled: %v", err)
	}
	if h.logLine("credential "+orphan) == "" {
		t.Error("the orphan was not named")
	}
	if line := h.logLine("credential " + retiring); line != "" {
		t.Errorf("a retiring key was named as an orphan: %s", line)
	}
}
