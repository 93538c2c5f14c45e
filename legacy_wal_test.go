package apitokens

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
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

// walListFails is storage whose WAL cannot be listed.
type walListFails struct{ logical.Storage }

func (s walListFails) List(ctx context.Context, prefix string) ([]string, error) {
	if strings.HasPrefix(prefix, framework.WALPrefix) {
		return nil, errors.New("storage unavailable")
	}
	return s.Storage.List(ctx, prefix)
}

// A read that cannot learn whether an earlier version's entry is pending hands out nothing
// (fails closed), and the next one, once storage answers, does.
func TestEarlierVersionWALUnlistableFailsClosed(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.startBackend()
	req := &logical.Request{Operation: logical.ReadOperation, Path: "creds/ob", Storage: walListFails{h.storage}, MountPoint: "apitokens/"}
	if resp, err := h.b.HandleRequest(context.Background(), req); err == nil && !resp.IsError() {
		t.Fatalf("a read handed out a token without knowing the WAL: %v", resp.Data)
	}
	h.creds("ob")
}

// Another node's write of an earlier version's entry (a mixed-version cluster while a reload
// runs), seen through Vault's invalidation of its WAL key, makes this node list the WAL
// again: its next read settles the entry instead of handing out the old pair's token.
func TestEarlierVersionWALSeenAfterInvalidation(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.creds("ob") // the WAL is listed: nothing pending
	next, _ := offblocks.GenerateCredentials()
	h.putWALAt("earlier", walKindRotation, newRotationWAL("ob", "offblocks", h.stored("ob").ob(), next, h.clock.Now()))
	h.b.invalidate(context.Background(), framework.WALPrefix+"earlier")
	h.creds("ob")
	if h.walCount() != 0 || !registry.SameRoot(h.stored("ob").cred, next) {
		t.Fatalf("the read did not settle the entry (WAL %d)", h.walCount())
	}
}

// A forced credential write gives an earlier version's entry up with the fallbacks: reads of
// the config then hand out tokens of the written credential at once, on the node that had
// listed the entry.
func TestEarlierVersionWALGivenUpByForcedWrite(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	next, _ := offblocks.GenerateCredentials()
	h.legacyRotationWAL("ob", "offblocks", h.stored("ob").ob(), next)
	h.startBackend()
	h.creds("ops") // this node lists the WAL: ob's entry is pending
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"api_key": obKey, "api_secret": obSecret, "force": true})
	if h.walCount() != 0 {
		t.Fatal("the forced write kept the entry")
	}
	h.creds("ob")
	if key, _ := h.sim.OffBlocksPair(h.obID); key != obKey {
		t.Fatal("the given-up entry's pair was sent")
	}
}

// walCounting is storage that counts the lists of the WAL and can fail its reads.
type walCounting struct {
	logical.Storage
	lists   atomic.Int32
	getFail atomic.Bool
}

func (s *walCounting) List(ctx context.Context, prefix string) ([]string, error) {
	if strings.HasPrefix(prefix, framework.WALPrefix) {
		s.lists.Add(1)
	}
	return s.Storage.List(ctx, prefix)
}

func (s *walCounting) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if strings.HasPrefix(key, framework.WALPrefix) && s.getFail.Load() {
		return nil, errors.New("storage unavailable")
	}
	return s.Storage.Get(ctx, key)
}

// The WAL is listed once per process (reads cost no storage call for it after the first); an
// entry that cannot be read fails the read closed; an entry of another kind listed first
// hides no earlier version's entry after it.
func TestEarlierVersionWALListedOnce(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	h.putWALAt("a-other", "another-kind", map[string]any{"x": 1})
	next, _ := offblocks.GenerateCredentials()
	h.putWALAt("b-earlier", walKindRotation, newRotationWAL("ob", "offblocks", h.stored("ob").ob(), next, h.clock.Now()))
	h.startBackend()
	s := &walCounting{Storage: h.storage}
	read := func(name string) (*logical.Response, error) {
		return h.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation,
			Path: "creds/" + name, Storage: s, MountPoint: "apitokens/"})
	}
	s.getFail.Store(true)
	if resp, err := read("ops"); err == nil && !resp.IsError() {
		t.Fatal("a read handed out a token while the WAL's entries could not be read")
	}
	s.getFail.Store(false)
	for range 3 {
		if resp, err := read("ops"); err != nil || resp.IsError() {
			t.Fatalf("read ops: %v %v", err, respErr(resp))
		}
	}
	if n := s.lists.Load(); n != 2 { // the failed scan, and the one that succeeded
		t.Fatalf("the WAL was listed %d times for four reads", n)
	}
	if _, err := read("ob"); err != nil {
		t.Fatal(err)
	}
	if c := h.stored("ob"); !registry.SameRoot(c.cred, next) {
		t.Fatal("the earlier version's entry behind another kind's was not settled by the read")
	}
}

// staleWALList is storage whose first list of the WAL answers what the WAL held when the list
// began, but only once release is closed: a list that another node's write overtakes.
type staleWALList struct {
	logical.Storage
	began, release chan struct{}
	once           sync.Once
}

func (s *staleWALList) List(ctx context.Context, prefix string) ([]string, error) {
	ids, err := s.Storage.List(ctx, prefix)
	if strings.HasPrefix(prefix, framework.WALPrefix) {
		s.once.Do(func() {
			close(s.began)
			<-s.release
		})
	}
	return ids, err
}

// A list of the WAL that began before another node wrote an earlier version's entry (and
// Vault invalidated its key) is not taken as the WAL: the next read lists it again and
// settles the entry, instead of handing out the old pair's token.
func TestEarlierVersionWALListOvertakenByInvalidation(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	h.startBackend()
	s := &staleWALList{Storage: h.storage, began: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := h.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation,
			Path: "creds/ops", Storage: s, MountPoint: "apitokens/"})
		done <- err
	}()
	<-s.began
	next, _ := offblocks.GenerateCredentials()
	h.putWALAt("earlier", walKindRotation, newRotationWAL("ob", "offblocks", h.stored("ob").ob(), next, h.clock.Now()))
	h.b.invalidate(context.Background(), framework.WALPrefix+"earlier")
	close(s.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.creds("ob")
	if h.walCount() != 0 || !registry.SameRoot(h.stored("ob").cred, next) {
		t.Fatalf("the read after the overtaken list did not settle the entry (WAL %d)", h.walCount())
	}
}
