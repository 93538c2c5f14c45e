package apitokens

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// The rule of state.go: what v0.1.0 does not know lives beside config/<name>, survives its
// writes, and attaches to no other account.

// A lagging OffBlocks rotation leaves a fallback; v0.1.0 (after a rollback) rewrites the
// config; the provider applies the change; after the upgrade the fallback is still held and
// adopted, and nothing of it was ever in config/<name>.
func TestStateFallbackSurvivesV010Rewrite(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.SetOffBlocksLag(time.Hour)
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("the lagging rotation settled")
	}
	next := h.stored("ob").Fallbacks[0].cred.(offblocks.Credentials)
	raw, _ := h.storage.Get(context.Background(), configKey("ob"))
	if strings.Contains(string(raw.Value), next.APISecret) {
		t.Fatal("config/ob holds the fallback: a rollback's write would drop it")
	}
	if ok, err := v010Rewrite(context.Background(), h.storage, "ob"); !ok || err != nil {
		t.Fatalf("v0.1.0's rewrite: %v %v", ok, err)
	}
	h.clock.Advance(time.Hour)
	h.sim.SetOffBlocksLag(0)
	if key, _ := h.sim.OffBlocksPair(h.obID); key != next.APIKey {
		t.Fatal("the provider did not apply the change")
	}
	h.startBackend() // the upgrade
	if h.fallbacks("ob") != 1 {
		t.Fatal("the fallback did not survive v0.1.0's rewrite")
	}
	h.creds("ob")
	if c := h.stored("ob"); c.ob().APIKey != next.APIKey || len(c.Fallbacks) != 0 {
		t.Fatalf("stored %s with %d fallbacks, want the adopted %s", c.ob().APIKey, len(c.Fallbacks), next.APIKey)
	}
	if e, _ := h.storage.Get(context.Background(), stateKey("ob")); e != nil {
		t.Fatalf("a settled config keeps state/ob: %s", e.Value)
	}
}

// v0.1.0 deletes a config holding a fallback and creates it again: with another credential,
// another base URL or another provider, the entry it left is not attached (no fallback,
// nothing sent); this version's next write of the config replaces it.
func TestStateNotAttachedToAnotherAccount(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(h *harness, c map[string]any)
	}{
		{"another credential", func(h *harness, c map[string]any) {
			key, secret := "7d3c2b1a-0f9e-4d8c-b7a6-5f4e3d2c1b0a", strings.Repeat("9", 40)
			h.sim.AddOffBlocks(key, secret)
			c["api_key"], c["api_secret"] = key, secret
		}},
		{"another base URL", func(h *harness, c map[string]any) {
			c["base_url"] = strings.Replace(c["base_url"].(string), "127.0.0.1", "localhost", 1)
		}},
		{"another provider", func(h *harness, c map[string]any) {
			delete(c, "api_key")
			delete(c, "api_secret")
			c["provider"], c["base_url"] = "bloq", h.url+simulator.BloqPrefix
			c["client_id"], c["client_secret"], c["grant_type"] = bqClient, bqSecret, "client_credentials"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			next := h.pendingOffBlocks()
			ctx := context.Background()
			if err := h.storage.Delete(ctx, configKey("ob")); err != nil { // v0.1.0's delete
				t.Fatal(err)
			}
			c := map[string]any{"provider": "offblocks", "base_url": h.url + simulator.OffBlocksPrefix,
				"api_key": obKey, "api_secret": obSecret, "max_ttl": 0, "request_timeout": 30 * time.Second}
			tc.change(h, c)
			v, _ := json.Marshal(c)
			if err := h.storage.Put(ctx, &logical.StorageEntry{Key: configKey("ob"), Value: v}); err != nil { // its create
				t.Fatal(err)
			}
			h.startBackend()
			if e, _ := h.storage.Get(ctx, stateKey("ob")); e == nil {
				t.Fatal("the test proves nothing: the deleted config's entry is gone already")
			}
			if got := h.stored("ob"); len(got.Fallbacks) != 0 {
				t.Fatalf("the deleted config's fallback is attached to the new one: %d", len(got.Fallbacks))
			}
			h.creds("ob")
			h.rollback()
			if key, _ := h.sim.OffBlocksPair(h.obID); key == next.APIKey {
				t.Fatal("the old account's fallback was sent")
			}
			h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"max_ttl": "10m"})
			if e, _ := h.storage.Get(ctx, stateKey("ob")); e != nil {
				t.Fatalf("the write kept the other account's entry: %s", e.Value)
			}
		})
	}
}

// v0.1.0 rotates a Bloq config (a new key, the old one deleted) while this version held a
// fallback key that replaced the old one: the fallback can never be the account's credential
// now, and lives on upstream, so it is retired (deleted there) after the upgrade.
func TestStateStaleBloqFallbackRetired(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	fbID, fbSecret := "a1"+strings.Repeat("0", 38), strings.Repeat("b2", 40)
	h.sim.AddBloqKey(h.bqUserID, fbID, fbSecret)
	c := h.stored("bq")
	h.holdFallback("bq", c.cred.With("client_id", fbID).With("client_secret", fbSecret))
	// v0.1.0's rotation: a new key becomes the config's, the old one is deleted upstream.
	newID, newSecret := "c3"+strings.Repeat("0", 38), strings.Repeat("d4", 40)
	h.sim.AddBloqKey(h.bqUserID, newID, newSecret)
	raw, _ := h.storage.Get(context.Background(), configKey("bq"))
	var v010 v010Config
	if err := json.Unmarshal(raw.Value, &v010); err != nil {
		t.Fatal(err)
	}
	v010.ClientID, v010.ClientSecret = newID, newSecret
	e, _ := logical.StorageEntryJSON(configKey("bq"), v010)
	if err := h.storage.Put(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	h.startBackend()
	got := h.stored("bq")
	if len(got.Fallbacks) != 0 || len(got.Retiring) != 1 || registry.Identifier(got.Retiring[0]) != fbID {
		t.Fatalf("%d fallbacks, %d retiring: want the stale fallback retiring", len(got.Fallbacks), len(got.Retiring))
	}
	h.creds("bq")
	h.rollback()
	if ids := h.sim.BloqClientIDs(h.bqUserID); slices.Contains(ids, fbID) || !slices.Contains(ids, newID) {
		t.Fatalf("keys upstream %v: want the stale fallback deleted and the current key kept", ids)
	}
}

// An adoption writes state/<name> first (the fallbacks with the replaced key as retiring),
// then the config, then state/<name> again. Stopped after the first write, the old key is
// current, its fallback attached and the key not retiring; after the second, the new key is
// current and the old one retiring.
func TestStateAdoptionStoppedBetweenWrites(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    string // the key whose write fails, from the adoption's first write on
		current string
	}{{"after the bridge", configKey("bq"), bqClient}, {"after the config", stateKey("bq"), ""}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
			nextID, nextSecret := "e5"+strings.Repeat("0", 38), strings.Repeat("f6", 40)
			h.sim.AddBloqKey(h.bqUserID, nextID, nextSecret)
			h.holdFallback("bq", h.stored("bq").cred.With("client_id", nextID).With("client_secret", nextSecret))
			writes := 0
			h.storage.setFailPut(func(k string) bool {
				writes++
				return k == tc.fail && writes > 1 // the bridge is the first
			})
			h.rollback() // settles: the fallback works, and is adopted
			h.storage.setFailPut(nil)
			c := h.stored("bq")
			want := tc.current
			if want == "" {
				want = nextID
			}
			if registry.Identifier(c.cred) != want {
				t.Fatalf("current key %s, want %s", registry.Identifier(c.cred), want)
			}
			if want == bqClient {
				if len(c.Fallbacks) != 1 || len(c.Retiring) != 0 {
					t.Fatalf("%d fallbacks, %d retiring: want the fallback held and nothing retiring", len(c.Fallbacks), len(c.Retiring))
				}
				return
			}
			if len(c.Fallbacks) != 0 || len(c.Retiring) != 1 || registry.Identifier(c.Retiring[0]) != bqClient {
				t.Fatalf("%d fallbacks, %d retiring: want the replaced key retiring", len(c.Fallbacks), len(c.Retiring))
			}
		})
	}
}

// A forced delete of a config that stays unsettled (the provider applies the change an hour
// late) removes state/<name> with the config.
func TestStateDeletedWithConfig(t *testing.T) {
	h := newHarness(t)
	h.pendingOffBlocks()
	h.sim.SetOffBlocksLag(time.Hour)
	if e, _ := h.storage.Get(context.Background(), stateKey("ob")); e == nil {
		t.Fatal("the test proves nothing: state/ob is gone before the delete")
	}
	h.mustDo(logical.DeleteOperation, "config/ob", map[string]any{"force": true})
	if e, _ := h.storage.Get(context.Background(), stateKey("ob")); e != nil {
		t.Fatalf("state/ob outlives its config: %s", e.Value)
	}
}

// A schedule paused and resumed after a rotation keeps its lease bound (the leases handed
// out while it was paused end before its first rotation) across v0.1.0's rewrite, which
// drops bound_since and leases_end_by from config/<name>: state/<name> holds them.
func TestStateLeaseBoundSurvivesV010Rewrite(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.mustDo(logical.UpdateOperation, "rotate-root/ob", nil)
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"disable_automated_rotation": true})
	h.clock.Advance(2 * time.Hour)
	h.creds("ob") // a lease of the paused schedule's credential
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"disable_automated_rotation": false})
	want := h.stored("ob").Rotation
	if want.BoundSince.IsZero() || !want.LeasesEndBy.After(h.clock.Now()) {
		t.Fatalf("the test proves nothing: no lease bound after the resume: %+v", want)
	}
	if ok, err := v010Rewrite(context.Background(), h.storage, "ob"); !ok || err != nil {
		t.Fatalf("v0.1.0's rewrite: %v %v", ok, err)
	}
	h.startBackend()
	c := h.stored("ob")
	if !c.Rotation.BoundSince.Equal(want.BoundSince) || !c.Rotation.LeasesEndBy.Equal(want.LeasesEndBy) {
		t.Fatalf("lease bound after the rewrite: %v, %v; want %v, %v", c.Rotation.BoundSince, c.Rotation.LeasesEndBy,
			want.BoundSince, want.LeasesEndBy)
	}
	if c.rotationDue(h.clock.Now()) {
		t.Fatal("the resumed schedule is due before the leases it bounds have ended")
	}
}

// Another node's change of state/<name> (a fallback stored), seen through Vault's
// invalidation, drops this node's copy of the config: its next read hands out no token of
// the current credential.
func TestStateInvalidationForgetsTheConfig(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.creds("ob")
	next, _ := offblocks.GenerateCredentials()
	c := h.stored("ob")
	c.Fallbacks = append(c.Fallbacks, fallback{cred: next, fallbackMeta: fallbackMeta{Since: h.clock.Now(), Why: "another node"}})
	other := &backend{}
	if err := other.putConfig(context.Background(), h.storage, "ob", c); err != nil {
		t.Fatal(err)
	}
	h.sim.SetOffBlocksLag(time.Hour) // the change stays pending: the config stays unsettled
	h.b.invalidate(context.Background(), stateKey("ob"))
	if resp, err := h.do(logical.ReadOperation, "creds/ob", nil); err == nil && !resp.IsError() {
		t.Fatal("a read handed out a token of a config another node left unsettled")
	}
}

// A state/<name> this version cannot decode fails the config closed: no token is handed out,
// whatever part of it is malformed (it may hold the credential the provider adopts).
func TestStateUndecodableFailsClosed(t *testing.T) {
	for _, bad := range []string{
		`{"provider":"offblocks"`,
		`{"provider":"offblocks","base_url":"x","fallbacks":[1]}`,
		`{"provider":"offblocks","base_url":"x","fallbacks":[{"api_key":1}]}`,
		`{"provider":"offblocks","base_url":"x","fallbacks":[{"api_key":"k","replaces":{"api_key":1}}]}`,
		`{"provider":"offblocks","base_url":"x","fallbacks":[{"since":1}]}`,
		`{"provider":"offblocks","base_url":"x","retiring":[{"api_key":1}]}`,
		`{"provider":"offblocks","base_url":"x","fallbacks":[{"api_key":"k","replaces":{"api_key":"k"},"since":1}]}`,
		`{"provider":"offblocks","base_url":"x","fallbacks":[{"api_key":1,"replaces":{"api_key":"k"}}]}`,
	} {
		h := newHarness(t)
		h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
		if err := h.storage.Put(context.Background(), &logical.StorageEntry{Key: stateKey("ob"), Value: []byte(bad)}); err != nil {
			t.Fatal(err)
		}
		h.startBackend()
		if _, err := getConfig(context.Background(), h.storage, "ob"); err == nil {
			t.Errorf("state/ob %s: the config reads without an error", bad)
		}
		if resp, err := h.do(logical.ReadOperation, "creds/ob", nil); err == nil && !resp.IsError() {
			t.Errorf("state/ob %s: a token was handed out", bad)
		}
	}
}
