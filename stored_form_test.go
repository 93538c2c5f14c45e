package apitokens

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// The stored form of configs (config-<name>.json, with their schedule records), the entries
// beside them (state-<name>.json: fallbacks, retiring credentials, the lease bound, a planned
// rotation; state.go)
// and rotation WAL entries, as golden files in testdata/stored/: each is the exact value this
// version wrote to storage. A rollback must go on reading what a later version writes, so the
// stored form changes only on purpose: every golden file decodes, and encodes again, byte for
// byte. Earlier forms are decode-only: testdata/stored/v0.1.0 (the release) and
// testdata/stored/earlier (development builds that kept fallbacks in config/<name>).
//
//	go test -run TestStoredForm -update-stored .   # write them again (only on purpose)
var updateStored = flag.Bool("update-stored", false, "TestStoredForm: write testdata/stored/ from this version's own writes")

const storedDir = "testdata/stored"

// Every golden config decodes (through getConfig, as every reader does) and encodes (through
// logical.StorageEntryJSON, as putConfig does) to the same bytes; every golden rotation WAL
// entry decodes (as the rollback does) and encodes (as framework.PutWAL does) to the same bytes.
func TestStoredFormRoundTrips(t *testing.T) {
	if *updateStored {
		writeStoredForm(t)
	}
	files, _ := filepath.Glob(filepath.Join(storedDir, "*.json"))
	if len(files) < 15 {
		t.Fatalf("%d golden files in %s", len(files), storedDir)
	}
	ctx := context.Background()
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		base := strings.TrimSuffix(filepath.Base(f), ".json")
		s := &logical.InmemStorage{}
		switch {
		case strings.HasPrefix(base, "state-"):
			// Checked with its config, below.
		case strings.HasPrefix(base, "config-"):
			name := strings.TrimPrefix(base, "config-")
			if err := s.Put(ctx, &logical.StorageEntry{Key: configKey(name), Value: raw}); err != nil {
				t.Fatal(err)
			}
			stateRaw, err := os.ReadFile(filepath.Join(storedDir, "state-"+name+".json"))
			if err == nil {
				err = s.Put(ctx, &logical.StorageEntry{Key: stateKey(name), Value: stateRaw})
			} else if os.IsNotExist(err) {
				err = nil
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := getConfig(ctx, s, name)
			if err != nil || c == nil {
				t.Fatalf("%s: %v", f, err)
			}
			e, err := logical.StorageEntryJSON(configKey(name), c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.Value, raw) {
				t.Errorf("%s does not encode again byte for byte:\n got %s\nwant %s", f, e.Value, raw)
			}
			var again []byte
			if st := stateOf(c); !st.empty() {
				if again, err = st.encode(); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(again, stateRaw) {
				t.Errorf("state-%s.json does not encode again byte for byte:\n got %s\nwant %s", name, again, stateRaw)
			}
		case strings.HasPrefix(base, "wal-"):
			if err := s.Put(ctx, &logical.StorageEntry{Key: framework.WALPrefix + base, Value: raw}); err != nil {
				t.Fatal(err)
			}
			w, err := framework.GetWAL(ctx, s, base)
			if err != nil || w == nil || w.Kind != walKindRotation {
				t.Fatalf("%s: %+v %v", f, w, err)
			}
			e, err := decodeRotationWAL(w.Data)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			again, err := json.Marshal(&framework.WALEntry{Kind: w.Kind, Data: e, CreatedAt: w.CreatedAt})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, raw) {
				t.Errorf("%s does not encode again byte for byte:\n got %s\nwant %s", f, again, raw)
			}
		default:
			t.Errorf("%s: neither config- nor wal-", f)
		}
	}
}

// writeStoredForm makes each kind of stored entry through this version's own paths (config
// writes, rotations, a lagging provider, failed deletes, a failed scheduled rotation, a pause)
// and writes what storage holds to testdata/stored/.
func writeStoredForm(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ob := func(name, key, secret string, extra map[string]any) {
		h.sim.AddOffBlocks(key, secret)
		data := map[string]any{"provider": "offblocks", "base_url": h.url + simulator.OffBlocksPrefix, "api_key": key, "api_secret": secret}
		for k, v := range extra {
			data[k] = v
		}
		h.mustDo(logical.CreateOperation, "config/"+name, data)
	}
	// OffBlocks with every setting, rotated once by hand.
	ob("offblocks", "11111111-1111-4111-8111-111111111111", strings.Repeat("a1", 20), map[string]any{"max_ttl": "10m",
		"request_timeout": "20s", "token_reuse": true, "min_token_ttl": "5m", "rotation_period": "720h"})
	h.clock.Advance(time.Minute)
	h.mustDo(logical.UpdateOperation, "rotate-root/offblocks", nil)
	// OffBlocks whose scheduled rotation failed (the change refused outright), on a cron
	// schedule paused and resumed.
	ob("offblocks-failing", "33333333-3333-4333-8333-333333333333", strings.Repeat("c3", 20), map[string]any{
		"rotation_schedule": "0 * * * *", "rotation_window": "1h"})
	h.mustDo(logical.UpdateOperation, "config/offblocks-failing", map[string]any{"disable_automated_rotation": true})
	h.clock.Advance(2 * time.Hour)
	h.mustDo(logical.UpdateOperation, "config/offblocks-failing", map[string]any{"disable_automated_rotation": false})
	h.clock.Advance(150 * time.Minute) // past the resumed schedule's bound (an hour of leases) and its 16:00 slot
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 400, Body: "invalid request"})
	h.periodic()
	// OffBlocks with a planned rotation, which waits for the lease of a creds read.
	ob("offblocks-planned", "55555555-5555-4555-8555-555555555555", strings.Repeat("e5", 20), nil)
	h.creds("offblocks-planned")
	h.mustDo(logical.UpdateOperation, "rotate-root/offblocks-planned", map[string]any{"planned": true})

	// Bloq: client keys with a login, rotated; then rotated again with the old key's delete
	// failing (kept as retiring); a login alone; a refresh token; OpsNow.
	h.mustDo(logical.CreateOperation, "config/bloq", h.bloqConfig(map[string]any{"max_ttl": "30m"}))
	h.mustDo(logical.UpdateOperation, "rotate-root/bloq", nil)
	u := h.sim.AddBloqUser("retire@example.com", "pw-retire")
	h.sim.AddBloqKey(u, strings.Repeat("d4", 20), strings.Repeat("e5", 40))
	h.mustDo(logical.CreateOperation, "config/bloq-retiring", map[string]any{"provider": "bloq", "base_url": h.url + simulator.BloqPrefix,
		"client_id": strings.Repeat("d4", 20), "client_secret": strings.Repeat("e5", 40), "username": "retire@example.com", "password": "pw-retire"})
	h.sim.Inject(simulator.RouteBloqKeysDelete, simulator.Fault{Status: 503, Times: -1})
	h.mustDo(logical.UpdateOperation, "rotate-root/bloq-retiring", nil)
	// OffBlocks unsettled (after the periodic pass above, which would settle it): the provider applies the change an hour late.
	ob("offblocks-unsettled", "22222222-2222-4222-8222-222222222222", strings.Repeat("b2", 20), nil)
	h.sim.SetOffBlocksLag(time.Hour)
	if _, err := h.do(logical.UpdateOperation, "rotate-root/offblocks-unsettled", nil); err == nil {
		t.Fatal("a lagging rotation settled")
	}
	h.sim.SetOffBlocksLag(0)
	h.sim.ClearFaults()
	u2 := h.sim.AddBloqUser("lag@example.com", "pw-lag")
	h.sim.AddBloqKey(u2, strings.Repeat("f6", 20), strings.Repeat("a7", 40))
	h.mustDo(logical.CreateOperation, "config/bloq-unsettled", map[string]any{"provider": "bloq", "base_url": h.url + simulator.BloqPrefix,
		"client_id": strings.Repeat("f6", 20), "client_secret": strings.Repeat("a7", 40), "username": "lag@example.com", "password": "pw-lag",
		"request_timeout": "2s"})
	h.sim.SetBloqKeyLagFunc(func() time.Duration { return time.Hour })
	if _, err := h.do(logical.UpdateOperation, "rotate-root/bloq-unsettled", nil); err == nil {
		t.Fatal("a lagging Bloq rotation settled")
	}
	h.sim.SetBloqKeyLagFunc(nil)
	h.mustDo(logical.CreateOperation, "config/bloq-login", h.bloqConfig(map[string]any{"client_id": "", "client_secret": ""}))
	h.mustDo(logical.CreateOperation, "config/bloq-refresh", map[string]any{"provider": "bloq",
		"base_url": h.url + simulator.BloqPrefix, "refresh_token": h.sim.BloqRefreshToken(h.bqKeyID), "token_reuse": true})
	h.mustDo(logical.CreateOperation, "config/opsnow", h.opsnowConfig())

	// Rotation WAL entries: a Bloq create marker, and an earlier version's whole rotation.
	marker := newRotationWAL("bloq", "bloq", nil, nil, h.clock.Now())
	marker.Creating, marker.Known = true, []string{bqClient, "c0ffee0000c0ffee0000c0ffee0000c0ffee0001"}
	if _, err := framework.PutWAL(ctx, h.storage, walKindRotation, marker); err != nil {
		t.Fatal(err)
	}
	h.legacyRotationWAL("offblocks", "offblocks", offblocks.Credentials{APIKey: obKey, APISecret: obSecret},
		offblocks.Credentials{APIKey: "44444444-4444-4444-8444-444444444444", APISecret: strings.Repeat("d5", 20)})

	if err := os.MkdirAll(storedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	names, _ := h.storage.List(ctx, configPrefix)
	for _, name := range names {
		e, _ := h.storage.Get(ctx, configKey(name))
		writeGolden(t, "config-"+name, e.Value)
		if e, _ := h.storage.Get(ctx, stateKey(name)); e != nil {
			writeGolden(t, "state-"+name, e.Value)
		}
	}
	ids, _ := framework.ListWAL(ctx, h.storage)
	sort.Strings(ids)
	for _, id := range ids {
		e, _ := h.storage.Get(ctx, framework.WALPrefix+id)
		w, _ := framework.GetWAL(ctx, h.storage, id)
		kind := "legacy-rotation"
		if d, _ := w.Data.(map[string]any); d["creating"] == true {
			kind = "create-marker"
		}
		writeGolden(t, "wal-"+kind, e.Value)
	}
	for _, want := range []struct {
		name  string
		check func(*accountConfig) bool
	}{
		{"offblocks", func(c *accountConfig) bool { return !c.LastRotated.IsZero() && c.TokenReuse }},
		{"offblocks-unsettled", func(c *accountConfig) bool { return len(c.Fallbacks) == 1 }},
		{"offblocks-failing", func(c *accountConfig) bool { return c.Rotation.Failures == 1 && !c.Rotation.BoundSince.IsZero() }},
		{"offblocks-planned", func(c *accountConfig) bool { return !c.plan().At.IsZero() }},
		{"bloq-retiring", func(c *accountConfig) bool { return len(c.Retiring) == 1 }},
		{"bloq-unsettled", func(c *accountConfig) bool { return len(c.Fallbacks) == 1 }},
	} {
		if !want.check(h.stored(want.name)) {
			t.Fatalf("config %s is not in the state its golden file is for: %+v", want.name, h.stored(want.name))
		}
	}
}

func writeGolden(t *testing.T, name string, value []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(storedDir, name+".json"), value, 0o644); err != nil {
		t.Fatal(err)
	}
}
