package apitokens

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// A config of a provider this version does not know (a newer version's oauth2, as a rollback
// leaves it) fails closed on every path: creds, rotate-root, the periodic pass, config read
// and write each answer 501 naming it and saying what to do, nothing is sent anywhere, and
// storage keeps it byte for byte; only a delete with force=true removes it.
func TestUnknownProviderFailsClosed(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { calls.Add(1) }))
	t.Cleanup(srv.Close)
	raw := []byte(`{"provider":"oauth2","base_url":"` + srv.URL + `","token_url":"` + srv.URL + `/token",` +
		`"client_id":"app","client_secret":"s3cr3t-of-oauth2","api_key":"s3cr3t-of-oauth2","request_timeout":30000000000,` +
		`"fallbacks":[{"client_secret":"n3xt-s3cr3t","since":"2026-11-23T12:00:00Z","why":"x"}],"rotation":{"rotation_period":60000000000}}`)
	ctx := context.Background()
	if err := h.storage.Put(ctx, &logical.StorageEntry{Key: "config/new", Value: raw, SealWrap: true}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * 60e9)
	want501 := func(what string, resp *logical.Response, err error) {
		t.Helper()
		coded, ok := err.(logical.HTTPCodedError)
		if !ok || coded.Code() != http.StatusNotImplemented || !strings.Contains(err.Error(), `config "new" has provider "oauth2"`) ||
			!strings.Contains(err.Error(), "written by a newer version of the plugin; upgrade, or delete it with force=true") {
			t.Fatalf("%s: want a 501 naming the provider, got %v %v", what, err, respErr(resp))
		}
	}
	resp, err := h.do(logical.ReadOperation, "creds/new", nil)
	want501("creds", resp, err)
	resp, err = h.do(logical.UpdateOperation, "rotate-root/new", nil)
	want501("rotate-root", resp, err)
	resp, err = h.do(logical.ReadOperation, "config/new", nil)
	want501("config read", resp, err)
	resp, err = h.do(logical.UpdateOperation, "config/new", map[string]any{"max_ttl": "5m"})
	want501("config write", resp, err)
	resp, err = h.do(logical.UpdateOperation, "config/new", map[string]any{"provider": "opsnow", "api_key": "k"})
	want501("config write naming a provider", resp, err)
	resp, err = h.do(logical.DeleteOperation, "config/new", nil)
	want501("unforced delete", resp, err)
	h.periodic()
	h.rollback()
	h.scrape()
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d calls were sent for a config of an unknown provider", n)
	}
	if e, _ := h.storage.Get(ctx, "config/new"); e == nil || !bytes.Equal(e.Value, raw) {
		t.Fatal("storage no longer holds the newer version's config byte for byte")
	}
	if !strings.Contains(h.logs.String(), `has provider \"oauth2\"`) {
		t.Fatal("the periodic pass did not say why it skips the config")
	}
	resp = h.mustDo(logical.DeleteOperation, "config/new", map[string]any{"force": true})
	if resp == nil || len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "given up") {
		t.Fatalf("forced delete: %v", resp)
	}
	if e, _ := h.storage.Get(ctx, "config/new"); e != nil {
		t.Fatal("the forced delete left the config")
	}
	// The provider switch is explicit: were a config to reach it, it gets no client.
	if _, p, err := h.b.providerFor(ctx, "x", &accountConfig{configHead: configHead{Provider: "oauth2"}}); p != nil || err == nil {
		t.Fatalf("providerFor(oauth2) = %v, %v", p, err)
	}
}

// WAL entries this version cannot read (of another kind, undecodable, or of a provider it
// does not know) are kept through Vault's rollback, and the log says so: each may hold the
// only copy of a credential.
func TestUnreadableWALEntriesAreKept(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	ctx := context.Background()
	for _, e := range []struct {
		kind string
		data any
	}{
		{"oauth2-revoke", map[string]any{"token": "x"}},
		{walKindRotation, "not an object"},
		{walKindRotation, map[string]any{"name": "ob", "nonce": "n1", "provider": "oauth2",
			"new": map[string]any{"client_secret": "n3xt"}}},
	} {
		if _, err := framework.PutWAL(ctx, h.storage, e.kind, e.data); err != nil {
			t.Fatal(err)
		}
	}
	h.rollback()
	h.rollback()
	if n := h.walCount(); n != 3 {
		t.Fatalf("%d of 3 unreadable WAL entries are left", n)
	}
	for _, want := range []string{"keeping a WAL entry of a kind this version", "keeping a rotation WAL entry this version",
		"keeping a rotation WAL entry of a provider this version"} {
		if h.logLine(want) == "" {
			t.Errorf("the log does not say %q", want)
		}
	}
	h.creds("ob") // the config itself is served
}

// An interrupted rotation's WAL entry that a newer version wrote for a config this version
// serves (its provider is one this version does not know) is never dropped without force: a
// plain delete and a credential write are refused (501) and change nothing; a settings write
// and creds reads go on; a forced credential write or delete gives it up, and logs it.
func TestUnknownProviderWALEntryOfAKnownConfig(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	ctx := context.Background()
	put := func() {
		if _, err := framework.PutWAL(ctx, h.storage, walKindRotation, map[string]any{"name": "ob", "nonce": "n1",
			"provider": "oauth2", "new": map[string]any{"client_secret": "n3xt"}}); err != nil {
			t.Fatal(err)
		}
	}
	put()
	want501 := func(what string, resp *logical.Response, err error) {
		t.Helper()
		coded, ok := err.(logical.HTTPCodedError)
		if !ok || coded.Code() != http.StatusNotImplemented ||
			!strings.Contains(err.Error(), `config "ob" has an interrupted rotation's entry of provider "oauth2"`) {
			t.Fatalf("%s: want a 501 naming the entry, got %v %v", what, err, respErr(resp))
		}
	}
	before, _ := h.storage.Get(ctx, configKey("ob"))
	resp, err := h.do(logical.DeleteOperation, "config/ob", nil)
	want501("delete", resp, err)
	resp, err = h.do(logical.UpdateOperation, "config/ob", map[string]any{"api_key": obKey, "api_secret": obSecret})
	want501("credential write", resp, err)
	if after, _ := h.storage.Get(ctx, configKey("ob")); after == nil || !bytes.Equal(after.Value, before.Value) || h.walCount() != 1 {
		t.Fatal("a refused delete or write changed storage")
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"max_ttl": "5m"})
	h.creds("ob")
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"api_key": obKey, "api_secret": obSecret, "force": true})
	if h.walCount() != 0 || h.logLine("forced credential write gives up an interrupted rotation's entry") == "" {
		t.Fatalf("the forced write kept the entry (%d) or did not log it", h.walCount())
	}
	put()
	h.mustDo(logical.DeleteOperation, "config/ob", map[string]any{"force": true})
	if e, _ := h.storage.Get(ctx, configKey("ob")); e != nil || h.walCount() != 0 {
		t.Fatal("the forced delete left the config or the entry")
	}
}

// A config of an unknown provider with an interrupted rotation's entry of its own is deleted
// by force, entry and all; and Vault's existence check finds such a config (so that the write
// answers what to do, not a 500).
func TestUnknownProviderConfigAndEntryDeletedByForce(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if err := h.storage.Put(ctx, &logical.StorageEntry{Key: "config/new",
		Value: []byte(`{"provider":"oauth2","base_url":"https://auth.example","client_secret":"s"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := framework.PutWAL(ctx, h.storage, walKindRotation, map[string]any{"name": "new", "nonce": "n2",
		"provider": "oauth2", "new": map[string]any{"client_secret": "t"}}); err != nil {
		t.Fatal(err)
	}
	req := &logical.Request{Operation: logical.UpdateOperation, Path: "config/new", Storage: h.storage,
		Data: map[string]any{"max_ttl": "5m"}}
	if found, exists, err := h.b.HandleExistenceCheck(ctx, req); !found || !exists || err != nil {
		t.Fatalf("existence check: %v %v %v", found, exists, err)
	}
	h.mustDo(logical.DeleteOperation, "config/new", map[string]any{"force": true})
	if e, _ := h.storage.Get(ctx, "config/new"); e != nil || h.walCount() != 0 {
		t.Fatalf("the forced delete left the config (%v) or %d entries", e != nil, h.walCount())
	}
}
