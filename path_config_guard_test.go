package apitokens

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// gatedStorage is the harness's storage with chosen reads, lists and deletes failing, as
// Vault's storage answers while its backend is unreachable. Each gate gets the key (the
// prefix, for a list) and how many times the same call was made before, and returns the
// error to answer (nil: answered normally). A failed delete deletes nothing.
type gatedStorage struct {
	logical.Storage
	mu                            sync.Mutex
	seen                          map[string]int
	failGet, failList, failDelete func(key string, n int) error
}

func (s *gatedStorage) gate(op, key string, f func(string, int) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]int{}
	}
	n := s.seen[op+key]
	s.seen[op+key]++
	if f == nil {
		return nil
	}
	return f(key, n)
}

func (s *gatedStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if err := s.gate("get ", key, s.failGet); err != nil {
		return nil, err
	}
	return s.Storage.Get(ctx, key)
}

func (s *gatedStorage) List(ctx context.Context, prefix string) ([]string, error) {
	if err := s.gate("list ", prefix, s.failList); err != nil {
		return nil, err
	}
	return s.Storage.List(ctx, prefix)
}

func (s *gatedStorage) Delete(ctx context.Context, key string) error {
	if err := s.gate("delete ", key, s.failDelete); err != nil {
		return err
	}
	return s.Storage.Delete(ctx, key)
}

// doOn runs one request against the backend on storage s, as h.do does on the harness's.
func (h *harness) doOn(s logical.Storage, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	h.t.Helper()
	req := &logical.Request{Operation: op, Path: path, Data: data, Storage: s, MountPoint: "apitokens/"}
	return h.b.HandleRequest(context.Background(), req)
}

// unreadableEntryOf stores the WAL entry of an interrupted rotation of config name that a
// newer plugin version wrote (a provider this version does not know): it may hold a credential.
func (h *harness) unreadableEntryOf(name string) {
	h.t.Helper()
	if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation, map[string]any{"name": name,
		"nonce": "n1", "provider": "oauth2", "new": map[string]any{"client_secret": "n3xt"}}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) configStored(name string) bool {
	h.t.Helper()
	e, err := h.storage.Get(context.Background(), configKey(name))
	if err != nil {
		h.t.Fatal(err)
	}
	return e != nil
}

// The rotation fields are described as the plugin runs them (on Community Edition too), not
// with the SDK's text about Vault's Enterprise rotation manager.
func TestConfigRotationFieldsHaveThePluginsDescriptions(t *testing.T) {
	h := newHarness(t)
	fields := h.b.Route("config/x").Fields
	for f, want := range map[string]string{"rotation_period": rotationPeriodDesc, "rotation_schedule": rotationScheduleDesc,
		"rotation_window": rotationWindowDesc, "disable_automated_rotation": disableRotationDesc,
		"rotation_policy": rotationPolicyDesc} {
		if got := fields[f].Description; got != want {
			t.Errorf("config's %s is described as %q, want %q", f, got, want)
		}
	}
}

// Vault's existence check decides whether a write needs create or update capability: a
// config that does not exist is created, one that exists is updated.
func TestConfigExistenceCheckDecidesCreateOrUpdate(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	exists := func() bool {
		t.Helper()
		req := &logical.Request{Operation: logical.UpdateOperation, Path: "config/ops", Storage: h.storage,
			Data: map[string]any{"max_ttl": "5m"}}
		found, exists, err := h.b.HandleExistenceCheck(ctx, req)
		if !found || err != nil {
			t.Fatalf("existence check: found %v, %v", found, err)
		}
		return exists
	}
	if exists() {
		t.Fatal("a config never written exists: a write would need update capability, not create")
	}
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	if !exists() {
		t.Fatal("a stored config does not exist: a write would need create capability, not update")
	}
}

// A forced credential write gives up an earlier version's interrupted rotation and deletes its
// WAL entry. An entry whose delete fails is named in the log at error level (Vault's rollback
// may turn it into a fallback again); one deleted says nothing of the kind.
func TestForcedWriteDeletesTheLegacyEntryOrSaysItCouldNot(t *testing.T) {
	const couldNot = "could not delete an earlier version's rotation entry"
	for _, deleteFails := range []bool{false, true} {
		h := newHarness(t)
		h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
		old := h.stored("ob").ob()
		next := old
		next.APIKey, next.APISecret = "7c9e6679-7425-40de-944b-e07fc1f90ae7", "ffff0000ffff0000ffff0000ffff0000ffff0000"
		h.legacyRotationWAL("ob", "offblocks", old, next)
		s := &gatedStorage{Storage: h.storage}
		if deleteFails {
			s.failDelete = func(key string, _ int) error {
				if strings.HasPrefix(key, framework.WALPrefix) {
					return errStorageDown
				}
				return nil
			}
		}
		resp, err := h.doOn(s, logical.UpdateOperation, "config/ob",
			map[string]any{"api_key": old.APIKey, "api_secret": old.APISecret, "force": true})
		if err != nil || resp == nil || resp.IsError() {
			t.Fatalf("forced write (delete fails: %v): %v %v", deleteFails, err, respErr(resp))
		}
		line := h.logLine(couldNot)
		switch {
		case !deleteFails && (line != "" || h.walCount() != 0):
			t.Fatalf("the entry was deleted (%d left), yet the log says: %q", h.walCount(), line)
		case deleteFails && (!strings.Contains(line, "[ERROR]") || !strings.Contains(line, "config=ob") || h.walCount() != 1):
			t.Fatalf("an entry whose delete failed (%d left) is not named at error level: %q", h.walCount(), line)
		}
	}
}

// A config read warns of a newer refresh token held in memory only when there is one: not for
// a refresh-token config whose token is stored, nor for client keys.
func TestConfigReadWarnsOfAHeldRefreshTokenOnlyWhenHeld(t *testing.T) {
	const held = "that could not be stored yet"
	h := newHarness(t)
	h.bloqRefreshConfig(h.sim.BloqRefreshToken(h.bqKeyID))
	h.mustDo(logical.CreateOperation, "config/bq-keys", h.bloqConfig(nil))
	h.creds("bq")
	for _, name := range []string{"bq", "bq-keys"} {
		if resp := h.mustDo(logical.ReadOperation, "config/"+name, nil); strings.Contains(strings.Join(resp.Warnings, " "), held) {
			t.Errorf("config/%s warns of a held refresh token though none is: %v", name, resp.Warnings)
		}
	}
	h2 := newHarness(t)
	h2.holdRefreshToken()
	if resp := h2.mustDo(logical.ReadOperation, "config/bq", nil); !strings.Contains(strings.Join(resp.Warnings, " "), held) {
		t.Fatalf("config/bq does not warn of the refresh token this node holds: %v", resp.Warnings)
	}
}

// On a performance standby a delete of an unsettled config is forwarded (logical.ErrReadOnly),
// force=true or not: the standby neither deletes it nor logs a fallback as given up.
func TestDeleteOfUnsettledConfigOnStandbyForwards(t *testing.T) {
	for _, force := range []bool{false, true} {
		h := newHarness(t)
		h.unsettledRotation()
		h.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
		h.storage.setReadOnly()
		if _, err := h.do(logical.DeleteOperation, "config/ob", map[string]any{"force": force}); err != logical.ErrReadOnly {
			t.Fatalf("delete force=%v on a standby: %v, want logical.ErrReadOnly", force, err)
		}
		if !h.configStored("ob") || h.fallbacks("ob") != 1 {
			t.Fatalf("delete force=%v on a standby changed storage", force)
		}
		if line := h.logLine("forced delete"); line != "" {
			t.Fatalf("the standby logged a forced delete it did not do: %q", line)
		}
	}
}

// A forced delete of a config whose provider this version does not know says at error level
// what it gives up; when storage cannot be read for the delete, it fails and keeps the config.
func TestForcedDeleteOfUnknownProviderConfig(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, name := range []string{"new", "new2"} {
		if err := h.storage.Put(ctx, &logical.StorageEntry{Key: configKey(name),
			Value: []byte(`{"provider":"oauth2","base_url":"https://auth.example","client_secret":"s"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	h.mustDo(logical.DeleteOperation, "config/new", map[string]any{"force": true})
	if line := h.logLine("forced delete of a config whose provider this version does not know"); !strings.Contains(line, "[ERROR]") ||
		!strings.Contains(line, "provider=oauth2") {
		t.Fatalf("the forced delete did not say at error level what it gave up: %q", line)
	}
	// The second read of the config (after the settle's) fails.
	s := &gatedStorage{Storage: h.storage, failGet: func(key string, n int) error {
		if key == configKey("new2") && n >= 1 {
			return errStorageDown
		}
		return nil
	}}
	if resp, err := h.doOn(s, logical.DeleteOperation, "config/new2", map[string]any{"force": true}); err == nil && !resp.IsError() {
		t.Fatalf("a delete whose config could not be read succeeded: %v", resp)
	}
	if !h.configStored("new2") {
		t.Fatal("the failed delete removed the config")
	}
	h.mustDo(logical.DeleteOperation, "config/new2", map[string]any{"force": true})
	if h.configStored("new2") {
		t.Fatal("the delete, retried, kept the config")
	}
}

// A delete names at error level each replaced credential it could not remove upstream, and
// says to remove it in the provider's console.
func TestDeleteNamesRetiringKeysLeftUpstream(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	id, _ := h.retiringBloqKey()
	h.sim.Inject(simulator.RouteBloqKeysDelete, simulator.Fault{Status: 503, Times: -1})
	h.mustDo(logical.DeleteOperation, "config/bq", nil)
	line := h.logLine("a replaced credential could not be removed upstream")
	if !strings.Contains(line, "[ERROR]") || !strings.Contains(line, id) || !strings.Contains(line, "provider's console") {
		t.Fatalf("the key left upstream is not named at error level with what to do: %q", line)
	}
}

// A delete that cannot list the config's WAL entries, or delete one, fails and keeps the
// config: a config is never deleted with an interrupted rotation's entry left behind. Retried,
// it deletes both, and says at error level what the forced delete gave up.
func TestDeleteKeepsConfigWhileItsEntriesAreNotGone(t *testing.T) {
	walFails := func(key string, _ int) error {
		if strings.HasPrefix(key, framework.WALPrefix) {
			return errStorageDown
		}
		return nil
	}
	for _, c := range []struct {
		what string
		gate func(s *gatedStorage)
	}{
		{"the entries cannot be listed", func(s *gatedStorage) {
			s.failList = func(prefix string, n int) error { // the settle lists them first
				if prefix == framework.WALPrefix && n >= 1 {
					return errStorageDown
				}
				return nil
			}
		}},
		{"an entry cannot be deleted", func(s *gatedStorage) { s.failDelete = walFails }},
	} {
		h := newHarness(t)
		h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
		h.unreadableEntryOf("ob")
		s := &gatedStorage{Storage: h.storage}
		c.gate(s)
		if resp, err := h.doOn(s, logical.DeleteOperation, "config/ob", map[string]any{"force": true}); err == nil && !resp.IsError() {
			t.Fatalf("%s: the delete succeeded", c.what)
		}
		if !h.configStored("ob") || h.walCount() != 1 {
			t.Fatalf("%s: the failed delete left config %v and %d entries, want both", c.what, h.configStored("ob"), h.walCount())
		}
		h.mustDo(logical.DeleteOperation, "config/ob", map[string]any{"force": true})
		if h.configStored("ob") || h.walCount() != 0 {
			t.Fatalf("%s: retried, the delete left config %v and %d entries", c.what, h.configStored("ob"), h.walCount())
		}
		if line := h.logLine("forced delete: giving up an interrupted rotation's entry"); !strings.Contains(line, "[ERROR]") ||
			!strings.Contains(line, "provider=oauth2") {
			t.Fatalf("the forced delete did not say at error level what it gave up: %q", line)
		}
	}
}

// A delete gives up a Bloq create marker whose orphan could not be looked for, and tells the
// operator at error level where to look for the key it may have left.
func TestDeleteOfUnlookedForCreateMarkerSaysWhereToLook(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	marker := newRotationWAL("bq", "bloq", h.stored("bq").bq(), nil, h.clock.Now())
	marker.Creating, marker.Known = true, []string{bqClient}
	if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation, marker); err != nil {
		t.Fatal(err)
	}
	h.sim.Inject(simulator.RouteBloqKeysList, simulator.Fault{Status: 503, Times: -1})
	h.mustDo(logical.DeleteOperation, "config/bq", nil)
	line := h.logLine("an interrupted rotation may have created a credential upstream")
	if !strings.Contains(line, "[ERROR]") || !strings.Contains(line, "config=bq") || !strings.Contains(line, "provider's console") {
		t.Fatalf("the delete did not say where to look for the key: %q", line)
	}
	if h.configStored("bq") || h.walCount() != 0 {
		t.Fatalf("the delete left config %v and %d entries", h.configStored("bq"), h.walCount())
	}
}

// A delete drops a refresh token this node held for the config: a config written later under
// the same name (here, on another node) mints with its own refresh token, and keeps it stored.
func TestDeleteDropsTheHeldRefreshToken(t *testing.T) {
	h := newHarness(t)
	h.holdRefreshToken()
	h.mustDo(logical.DeleteOperation, "config/bq", nil)
	h.sim.SetBloqRotateRefresh(false)
	fresh := h.sim.BloqRefreshToken(h.bqKeyID)
	other := h.otherNode()
	if _, err := other.HandleRequest(context.Background(), &logical.Request{Operation: logical.CreateOperation,
		Path: "config/bq", Storage: h.storage, Data: map[string]any{"provider": "bloq",
			"base_url": h.url + simulator.BloqPrefix, "refresh_token": fresh}}); err != nil {
		t.Fatal(err)
	}
	h.creds("bq")
	if got := h.stored("bq").bq().RefreshToken; got != fresh {
		t.Fatal("a read on this node replaced the new config's refresh token with one it held for the deleted config")
	}
}

// A list that cannot read storage fails; it never answers an empty list.
func TestConfigListFailsWhenStorageDoes(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	s := &gatedStorage{Storage: h.storage, failList: func(string, int) error { return errStorageDown }}
	resp, err := h.doOn(s, logical.ListOperation, "config/", nil)
	if !errors.Is(err, errStorageDown) {
		t.Fatalf("list on failing storage: %v %v", err, resp)
	}
}
