package apitokens

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/automatedrotationutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/opsnow"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// The stored form of the released 0.1.0 (commit 06a1864), as golden files in
// testdata/stored/v0.1.0/: each is the exact value 0.1.0's own backend stored, written by the
// throwaway generator in testdata/stored/v0.1.0/gen/ run in a checkout of 0.1.0 (its README
// says how to run it again). What users of the release have in storage must decode in this
// version, to the same values, through the same paths its readers use: getConfig for a
// config, framework.GetWAL and decodeRotationWAL for a WAL entry (as Vault's rollback does).
// These tests decode only: this version need not write 0.1.0's form back byte for byte.

const v010Dir = "testdata/stored/v0.1.0"

// v010URL is the simulator 0.1.0's generator ran against, as its configs hold it.
const v010URL = "http://127.0.0.1:38509"

var v010Epoch = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

// v010At is a time of the generator's day (the harness's fake clock) by its clock reading.
func v010At(t testing.TB, clock string) time.Time {
	t.Helper()
	d, err := time.ParseDuration(clock)
	if err != nil {
		t.Fatal(err)
	}
	return v010Epoch.Add(d)
}

func readV010(t testing.TB, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(v010Dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// v010Files lists the golden files with the given prefix, so that a file added to the
// folder without an expectation here fails the test.
func v010Files(t testing.TB, prefix string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(v010Dir, prefix+"*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), prefix), ".json"))
	}
	sort.Strings(names)
	return names
}

// decodeV010Config stores a 0.1.0 config's bytes at config/<name> and reads it back as every
// reader does.
func decodeV010Config(t testing.TB, name string) *accountConfig {
	t.Helper()
	ctx := context.Background()
	s := &logical.InmemStorage{}
	if err := s.Put(ctx, &logical.StorageEntry{Key: configKey(name), Value: readV010(t, "config-"+name+".json")}); err != nil {
		t.Fatal(err)
	}
	c, err := getConfig(ctx, s, name)
	if err != nil || c == nil {
		t.Fatalf("config %s of 0.1.0 does not decode: %v", name, err)
	}
	return c
}

// decodeV010WAL stores a 0.1.0 WAL entry's bytes under wal/ and reads it back as Vault's
// rollback does: framework.GetWAL, then the plugin's decodeRotationWAL of its data.
func decodeV010WAL(t testing.TB, kind string) (*framework.WALEntry, rotationWAL) {
	t.Helper()
	ctx := context.Background()
	s := &logical.InmemStorage{}
	if err := s.Put(ctx, &logical.StorageEntry{Key: framework.WALPrefix + "v010", Value: readV010(t, "wal-"+kind+".json")}); err != nil {
		t.Fatal(err)
	}
	w, err := framework.GetWAL(ctx, s, "v010")
	if err != nil || w == nil {
		t.Fatalf("WAL entry %s of 0.1.0: %v", kind, err)
	}
	e, err := decodeRotationWAL(w.Data)
	if err != nil {
		t.Fatalf("WAL entry %s of 0.1.0 does not decode: %v", kind, err)
	}
	return w, e
}

// sameRotation compares schedules and their records, times by the instant.
func sameRotation(a, b rotationState) bool {
	return a.AutomatedRotationParams == b.AutomatedRotationParams && a.Since.Equal(b.Since) &&
		a.LeasesEndBy.Equal(b.LeasesEndBy) && a.BoundSince.Equal(b.BoundSince) &&
		a.Failures == b.Failures && a.RetryAt.Equal(b.RetryAt) && a.LastError == b.LastError
}

// Every config 0.1.0 stored decodes through getConfig to exactly what 0.1.0 held: provider,
// base_url, each credential field, max_ttl, request_timeout, last_rotated, token_reuse,
// min_token_ttl, the schedule and its failure record; and to no fallback or retiring
// credential (0.1.0 had neither).
func TestStoredFormV010Configs(t *testing.T) {
	const (
		obURL = v010URL + simulator.OffBlocksPrefix
		bqURL = v010URL + simulator.BloqPrefix
	)
	type want struct {
		provider, baseURL string
		cred              credential
		maxTTL, timeout   time.Duration
		lastRotated       string // the generator's clock reading, "" for none
		reuse             bool
		minTokenTTL       time.Duration
		rotation          rotationState
	}
	loginKeys := func(id, secret, user, pass string) bloq.Credentials {
		return bloq.Credentials{ClientID: id, ClientSecret: secret, Username: user, Password: pass, GrantType: "client_credentials"}
	}
	cases := map[string]want{
		"offblocks": {provider: "offblocks", baseURL: obURL,
			cred:   offblocks.Credentials{APIKey: "0d615f57-b9f1-4aba-8d5b-4b639db18b06", APISecret: "79a5e0c91da181e4570c31d9edad522690863040"},
			maxTTL: 10 * time.Minute, timeout: 20 * time.Second, lastRotated: "12h1m", reuse: true, minTokenTTL: 5 * time.Minute},
		"offblocks-failing": {provider: "offblocks", baseURL: obURL,
			cred:    offblocks.Credentials{APIKey: "33333333-3333-4333-8333-333333333333", APISecret: strings.Repeat("c3", 20)},
			timeout: 30 * time.Second,
			rotation: rotationState{
				AutomatedRotationParams: automatedrotationutil.AutomatedRotationParams{RotationSchedule: "0 * * * *", RotationWindow: time.Hour},
				Since:                   v010At(t, "12h1m"), Failures: 1, RetryAt: v010At(t, "13h2m"),
				LastError: `the provider refused the new credential; the stored one is unchanged: offblocks: update credentials ` +
					`(PUT /auth/credentials): status 400 Bad Request: "invalid request"`}},
		"offblocks-unsettled": {provider: "offblocks", baseURL: obURL,
			cred: offblocks.Credentials{APIKey: obKey, APISecret: obSecret}, timeout: 30 * time.Second},
		"offblocks-acknowledged": {provider: "offblocks", baseURL: obURL,
			cred: offblocks.Credentials{APIKey: "55555555-5555-4555-8555-555555555555", APISecret: strings.Repeat("e5", 20)}, timeout: 30 * time.Second},
		"bloq": {provider: "bloq", baseURL: bqURL,
			cred: loginKeys("38ec5730435142ee2d517c473274a981a73ac5ea",
				"ebe3c510b9fa9e4997479eec5a04b1bf14437cbcf5c1e135a090a7335dd0aa41229d88df1912800f", bqUser, bqPass),
			maxTTL: 30 * time.Minute, timeout: 30 * time.Second, lastRotated: "13h2m",
			rotation: rotationState{AutomatedRotationParams: automatedrotationutil.AutomatedRotationParams{RotationPeriod: 720 * time.Hour},
				Since: v010At(t, "13h1m")}},
		"bloq-login": {provider: "bloq", baseURL: bqURL,
			cred: bloq.Credentials{Username: bqUser, Password: bqPass, GrantType: "password"}, timeout: 30 * time.Second},
		"bloq-refresh": {provider: "bloq", baseURL: bqURL,
			cred: bloq.Credentials{GrantType: "refresh_token", RefreshToken: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
				"eyJwcm92IjoiYmxvcSIsInR5cCI6InJlZnJlc2giLCJzdWIiOiJrMTUiLCJleHAiOjE4MjY5NzQ5MjAsImlhdCI6MTc5NTQzODkyMCwianRpIjoidDE4In0." +
				"Plp1oy2ZnnnazaxwUPBkOTZkYwYJ2PFv4ZK24IyFwno"},
			timeout: 30 * time.Second},
		"bloq-unsettled": {provider: "bloq", baseURL: bqURL,
			cred: loginKeys(strings.Repeat("f6", 20), strings.Repeat("a7", 40), "lag@example.com", "pw-lag"), timeout: 2 * time.Second},
		"bloq-orphan": {provider: "bloq", baseURL: bqURL,
			cred: loginKeys(strings.Repeat("0a", 20), strings.Repeat("b8", 40), "orphan@example.com", "pw-orphan"), timeout: 30 * time.Second},
		"opsnow": {provider: "opsnow", baseURL: v010URL + simulator.OpsNowPrefix,
			cred: opsnow.Credentials{APIKey: opsAPIKey}, timeout: 30 * time.Second},
	}
	names := slices.Sorted(maps.Keys(cases))
	if files := v010Files(t, "config-"); !slices.Equal(files, names) {
		t.Fatalf("0.1.0 configs in %s: %v, expectations for %v", v010Dir, files, names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			w := cases[name]
			c := decodeV010Config(t, name)
			if c.Provider != w.provider || c.BaseURL != w.baseURL {
				t.Errorf("provider %q base_url %q, want %q %q", c.Provider, c.BaseURL, w.provider, w.baseURL)
			}
			if c.cred != w.cred {
				t.Errorf("credential %#v, want %#v", c.cred, w.cred)
			}
			if c.MaxTTL != w.maxTTL || c.RequestTimeout != w.timeout {
				t.Errorf("max_ttl %s request_timeout %s, want %s %s", c.MaxTTL, c.RequestTimeout, w.maxTTL, w.timeout)
			}
			wantRotated := time.Time{}
			if w.lastRotated != "" {
				wantRotated = v010At(t, w.lastRotated)
			}
			if !c.LastRotated.Equal(wantRotated) {
				t.Errorf("last_rotated %s, want %s", c.LastRotated, wantRotated)
			}
			if c.TokenReuse != w.reuse || c.MinTokenTTL != w.minTokenTTL {
				t.Errorf("token_reuse %v min_token_ttl %s, want %v %s", c.TokenReuse, c.MinTokenTTL, w.reuse, w.minTokenTTL)
			}
			if !sameRotation(c.Rotation, w.rotation) {
				t.Errorf("rotation %+v,\nwant %+v", c.Rotation, w.rotation)
			}
			if c.Fallbacks != nil || c.Retiring != nil || c.unsettled() {
				t.Errorf("fallbacks %v retiring %v: 0.1.0 stored neither", c.Fallbacks, c.Retiring)
			}
		})
	}
}

// Every WAL entry 0.1.0 stored decodes as Vault's rollback reads it: kind rotate-root, the
// old and the new credential (the whole credential, a Bloq login included), when it started,
// and for a create marker creating and known. 0.1.0's acknowledged has no field here: it is
// read past, not refused (see TestStoredFormV010NothingElseIgnored).
func TestStoredFormV010WALEntries(t *testing.T) {
	lagKey := func(id, secret string) bloq.Credentials {
		return bloq.Credentials{ClientID: id, ClientSecret: secret, Username: "lag@example.com", Password: "pw-lag", GrantType: "client_credentials"}
	}
	cases := map[string]rotationWAL{
		"offblocks-rotation": {Nonce: "3a3befa1-83eb-48af-9d99-b5a370e3b4dc", Name: "offblocks-unsettled", Provider: "offblocks",
			Old:     offblocks.Credentials{APIKey: obKey, APISecret: obSecret},
			New:     offblocks.Credentials{APIKey: "b63b4ee4-e9f0-4b7d-a58a-3a73bb6b3887", APISecret: "65b88b7607d2b48f17eb70c0cda37dc1eec78dcf"},
			Started: v010At(t, "13h2m")},
		"offblocks-acknowledged": {Nonce: "02c665f4-d94e-4294-8326-ab9274f21dbd", Name: "offblocks-acknowledged", Provider: "offblocks",
			Old:     offblocks.Credentials{APIKey: "55555555-5555-4555-8555-555555555555", APISecret: strings.Repeat("e5", 20)},
			New:     offblocks.Credentials{APIKey: "492805af-34ef-4b55-a9aa-4333d8d04660", APISecret: "4a6d2041970b6e877b4782b6b146a1f3a636a916"},
			Started: v010At(t, "13h2m27.75s")},
		"bloq-rotation": {Nonce: "35e8b6e8-d768-49bb-9cc2-71996276739d", Name: "bloq-unsettled", Provider: "bloq",
			Old: lagKey(strings.Repeat("f6", 20), strings.Repeat("a7", 40)),
			New: lagKey("8218f90968d1ab368759ec2fa1d05ea36701c2a7",
				"579d50883c175b5b6dd63e464714558609abcbf6ea78a0ba5f057ef5b481c7cc39b46d89da87e4d7"),
			Started: v010At(t, "13h2m55.5s")},
		// 0.1.0 wrote the marker's new credential as {}: it decodes to an empty Bloq credential.
		"bloq-create-marker": {Nonce: "cdccf970-caf3-47b9-a643-d1725806f831", Name: "bloq-orphan", Provider: "bloq",
			Old: bloq.Credentials{ClientID: strings.Repeat("0a", 20), ClientSecret: strings.Repeat("b8", 40), Username: "orphan@example.com",
				Password: "pw-orphan", GrantType: "client_credentials"},
			New: bloq.Credentials{}, Started: v010At(t, "13h2m57.25s"), Creating: true, Known: []string{strings.Repeat("0a", 20)}},
	}
	kinds := slices.Sorted(maps.Keys(cases))
	if files := v010Files(t, "wal-"); !slices.Equal(files, kinds) {
		t.Fatalf("0.1.0 WAL entries in %s: %v, expectations for %v", v010Dir, files, kinds)
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			w, e := decodeV010WAL(t, kind)
			want := cases[kind]
			if w.Kind != walKindRotation || w.CreatedAt != 1796681738 {
				t.Errorf("kind %q created_at %d", w.Kind, w.CreatedAt)
			}
			if e.Nonce != want.Nonce || e.Name != want.Name || e.Provider != want.Provider {
				t.Errorf("nonce %q name %q provider %q, want %q %q %q", e.Nonce, e.Name, e.Provider, want.Nonce, want.Name, want.Provider)
			}
			if e.Old != want.Old || e.New != want.New {
				t.Errorf("old %#v new %#v,\nwant %#v %#v", e.Old, e.New, want.Old, want.New)
			}
			if !e.Started.Equal(want.Started) || e.Creating != want.Creating || !slices.Equal(e.Known, want.Known) {
				t.Errorf("started %s creating %v known %v, want %s %v %v", e.Started, e.Creating, e.Known, want.Started, want.Creating, want.Known)
			}
			// The entry names a config 0.1.0 stored beside it, holding the entry's old credential.
			if c := decodeV010Config(t, e.Name); c.Provider != e.Provider || c.cred != e.Old {
				t.Errorf("config %s holds %#v, the entry's old credential is %#v", e.Name, c.cred, e.Old)
			}
		})
	}
}

// Nothing 0.1.0 stored is lost in decoding but what this version knowingly reads past: each
// member of each golden file is, with the same value, in this version's encoding of what it
// decoded. The one member read past is a WAL entry's acknowledged (0.1.0: the provider
// answered the change with a 2xx, so the entry must never settle on the old credential, and
// the change is not sent again). This version turns such an entry into a fallback like any
// other; for OffBlocks, the only provider 0.1.0 acknowledged for, a fallback is never dropped
// on a refusal, only once a credential is seen working or by force, so what acknowledged
// guarded holds without it (but the settle sends the change again, which 0.1.0 did not).
func TestStoredFormV010NothingElseIgnored(t *testing.T) {
	members := func(t *testing.T, raw []byte) map[string]any {
		t.Helper()
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	var compare func(t *testing.T, what string, stored, again map[string]any, ignored ...string)
	compare = func(t *testing.T, what string, stored, again map[string]any, ignored ...string) {
		t.Helper()
		for k, v := range stored {
			if slices.Contains(ignored, k) {
				if _, ok := again[k]; ok {
					t.Errorf("%s: %s is no longer read past: update this test and the README of %s", what, k, v010Dir)
				}
				continue
			}
			if sub, ok := v.(map[string]any); ok {
				if againSub, ok := again[k].(map[string]any); ok {
					compare(t, what+"."+k, sub, againSub)
					continue
				}
			}
			if !reflect.DeepEqual(again[k], v) {
				t.Errorf("%s: 0.1.0 stored %s = %v, this version decodes it as %v", what, k, v, again[k])
			}
		}
	}
	for _, name := range v010Files(t, "config-") {
		c := decodeV010Config(t, name)
		e, err := logical.StorageEntryJSON(configKey(name), c)
		if err != nil {
			t.Fatal(err)
		}
		compare(t, "config-"+name, members(t, readV010(t, "config-"+name+".json")), members(t, e.Value))
	}
	sawAcknowledged := false
	for _, kind := range v010Files(t, "wal-") {
		stored := members(t, readV010(t, "wal-"+kind+".json"))["data"].(map[string]any)
		if stored["acknowledged"] == true {
			sawAcknowledged = true
		}
		_, e := decodeV010WAL(t, kind)
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		compare(t, "wal-"+kind, stored, members(t, raw), "acknowledged")
	}
	if !sawAcknowledged {
		t.Fatal("no golden WAL entry of 0.1.0 is acknowledged")
	}
}
