package apitokens

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// After an upgrade from 0.1.0, its stored rotation entries (testdata/stored/v0.1.0) settle:
// an entry holding a new credential becomes a fallback and is adopted, a create marker names
// its orphan and blocks nothing.

// loadV010 puts a 0.1.0 config and its WAL entry into h's storage, the config pointed at h's
// simulator (the one byte change: 0.1.0's simulator listened elsewhere), and returns the
// entry as Vault's rollback gets it.
func (h *harness) loadV010(name, walKind string) (*framework.WALEntry, rotationWAL) {
	h.t.Helper()
	t := h.t
	ctx := context.Background()
	raw := bytes.ReplaceAll(readV010(t, "config-"+name+".json"), []byte(`"`+v010URL+`/`), []byte(`"`+h.url+`/`))
	if err := h.storage.Put(ctx, &logical.StorageEntry{Key: configKey(name), Value: raw}); err != nil {
		t.Fatal(err)
	}
	if err := h.storage.Put(ctx, &logical.StorageEntry{Key: framework.WALPrefix + "v010", Value: readV010(t, "wal-"+walKind+".json")}); err != nil {
		t.Fatal(err)
	}
	w, err := framework.GetWAL(ctx, h.storage, "v010")
	if err != nil || w == nil {
		t.Fatal(err)
	}
	e, err := decodeRotationWAL(w.Data)
	if err != nil {
		t.Fatal(err)
	}
	return w, e
}

// applyOffBlocksPUT makes the provider take next in place of cur, as 0.1.0's PUT did.
func (h *harness) applyOffBlocksPUT(cur, next offblocks.Credentials) {
	h.t.Helper()
	ctx := context.Background()
	c := offblocks.New(apiclient.New(apiclient.Options{Provider: "offblocks", BaseURL: h.url + simulator.OffBlocksPrefix}), h.clock.Now)
	tok, err := c.Mint(ctx, cur)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := c.UpdateCredentials(ctx, tok.Value, next); err != nil {
		h.t.Fatal(err)
	}
}

// After an upgrade, each rotation entry of 0.1.0 that holds a new credential is settled by
// this version into a fallback of its config (by Vault's rollback of the entry, which calls
// walRollback), and the entry is deleted; from then on no token of the config's current
// credential is handed out, and the first creds read that the provider allows adopts the new
// credential. The cases are the golden entries: an OffBlocks change the provider applied, one
// it acknowledged and applies two minutes later (0.1.0's acknowledged entry), and a Bloq key
// created upstream.
func TestStoredFormV010WALSettlesIntoFallback(t *testing.T) {
	cases := []struct {
		config, walKind string
		// provider sets the simulator up as 0.1.0's rotation left the provider, from the entry.
		provider func(h *harness, e rotationWAL)
		// lag is how long after the rollback the provider takes the new credential.
		lag time.Duration
	}{
		{config: "offblocks-unsettled", walKind: "offblocks-rotation",
			provider: func(h *harness, e rotationWAL) { // the harness's account holds obKey, the entry's old pair
				h.applyOffBlocksPUT(e.Old.(offblocks.Credentials), e.New.(offblocks.Credentials))
			}},
		{config: "offblocks-acknowledged", walKind: "offblocks-acknowledged", lag: 2 * time.Minute,
			provider: func(h *harness, e rotationWAL) {
				old := e.Old.(offblocks.Credentials)
				h.obID = h.sim.AddOffBlocks(old.APIKey, old.APISecret)
				h.sim.SetOffBlocksLag(2 * time.Minute) // every change, the settle's re-send too
				h.applyOffBlocksPUT(old, e.New.(offblocks.Credentials))
			}},
		{config: "bloq-unsettled", walKind: "bloq-rotation",
			provider: func(h *harness, e rotationWAL) {
				old, next := e.Old.(bloq.Credentials), e.New.(bloq.Credentials)
				h.bqUserID = h.sim.AddBloqUser(old.Username, old.Password)
				h.sim.AddBloqKey(h.bqUserID, old.ClientID, old.ClientSecret)
				h.sim.AddBloqKey(h.bqUserID, next.ClientID, next.ClientSecret)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.walKind, func(t *testing.T) {
			h := newHarness(t)
			w, e := h.loadV010(tc.config, tc.walKind)
			tc.provider(h, e)

			if err := h.b.walRollback(context.Background(), &logical.Request{Storage: h.storage}, w.Kind, w.Data); err != nil {
				t.Fatalf("Vault's rollback of 0.1.0's entry: %v", err)
			}
			if n := h.walCount(); n != 0 {
				t.Fatalf("%d WAL entries left after the rollback settled 0.1.0's", n)
			}
			c := h.stored(tc.config)
			if c.cred != e.Old {
				t.Fatalf("the config's credential changed in the conversion: %#v", c.cred)
			}
			if len(c.Fallbacks) != 1 {
				t.Fatalf("%d fallbacks, want the entry's new credential", len(c.Fallbacks))
			}
			f := c.Fallbacks[0]
			if f.cred != e.New || !f.Since.Equal(e.Started) || f.Trigger != "" || !strings.Contains(f.Why, "earlier plugin version") {
				t.Fatalf("fallback %#v since %s trigger %q why %q; want the entry's new credential since %s",
					f.cred, f.Since, f.Trigger, f.Why, e.Started)
			}

			if tc.lag > 0 {
				// The provider still takes the old credential only: no token of it is handed out.
				resp, err := h.do(logical.ReadOperation, "creds/"+tc.config, nil)
				if err == nil || !strings.Contains(err.Error(), "unsettled") {
					t.Fatalf("a read while the provider had not applied 0.1.0's acknowledged change: %v %v, want unsettled", err, resp)
				}
				if h.fallbacks(tc.config) != 1 {
					t.Fatal("the fallback was dropped before the provider applied the change")
				}
				h.clock.Advance(tc.lag)
			}
			h.creds(tc.config)
			c = h.stored(tc.config)
			if c.cred != registry.AdoptRoot(e.Old, e.New) || len(c.Fallbacks) != 0 {
				t.Fatalf("after a creds read: credential %#v, %d fallbacks; want the entry's new one adopted", c.cred, len(c.Fallbacks))
			}
			switch e.Provider {
			case "offblocks":
				if key, _ := h.sim.OffBlocksPair(h.obID); key != c.ob().APIKey {
					t.Fatalf("stored %s, the provider holds %s", c.ob().APIKey, key)
				}
			case "bloq": // the replaced key is deleted upstream
				if keys := h.sim.BloqClientIDs(h.bqUserID); !slices.Equal(keys, []string{c.bq().ClientID}) || len(c.Retiring) != 0 {
					t.Fatalf("keys upstream %v, retiring %d; want only the adopted key", keys, len(c.Retiring))
				}
			}
		})
	}
}

// A create marker of 0.1.0 blocks nothing: Vault's rollback names the key its create call
// left upstream, which nobody holds, and deletes the entry; the config is unchanged and hands
// out tokens.
func TestStoredFormV010CreateMarkerSettles(t *testing.T) {
	h := newHarness(t)
	w, e := h.loadV010("bloq-orphan", "bloq-create-marker")
	old := e.Old.(bloq.Credentials)
	u := h.sim.AddBloqUser(old.Username, old.Password)
	h.sim.AddBloqKey(u, old.ClientID, old.ClientSecret)
	orphan := "0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad"
	h.sim.AddBloqKey(u, orphan, strings.Repeat("0b", 40))
	if err := h.b.walRollback(context.Background(), &logical.Request{Storage: h.storage}, w.Kind, w.Data); err != nil {
		t.Fatalf("Vault's rollback of 0.1.0's create marker: %v", err)
	}
	if n := h.walCount(); n != 0 {
		t.Fatalf("%d WAL entries left", n)
	}
	if h.logLine("credential "+orphan) == "" || h.logLine("credential "+old.ClientID) != "" {
		t.Fatalf("the orphan is not named, or the config's own key is:\n%s", h.logs.String())
	}
	if c := h.stored("bloq-orphan"); c.cred != e.Old || c.unsettled() {
		t.Fatalf("the marker changed the config: %#v, %d fallbacks", c.cred, len(c.Fallbacks))
	}
	h.creds("bloq-orphan")
}
