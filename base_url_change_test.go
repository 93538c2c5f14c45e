package apitokens

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A write that changes base_url must give every secret the config holds: a config/* writer
// (trusted with settings, not with the secrets) who mistypes the host, or picks one that
// collects credentials, never gets the stored secret sent there. The refusal names the fields
// and changes nothing; with them the write is stored, and the log names the old and new hosts.
func TestBaseURLChangeNeedsTheSecrets(t *testing.T) {
	h := newHarness(t)
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	h.everyGrant()
	ctx := context.Background()
	for name, want := range map[string]string{"ob": "api_secret", "bq": "client_secret and password",
		"bq-acct": "password", "bq-rt": "refresh_token", "ops": "api_key"} {
		before, _ := h.storage.Get(ctx, configKey(name))
		sameHost := h.url + "/elsewhere/v1" // another path on the same host is another API root too
		for _, data := range []map[string]any{{"base_url": other.URL}, {"base_url": other.URL, "max_ttl": "5m"}, {"base_url": ""},
			{"base_url": sameHost}} {
			resp, err := h.do(logical.UpdateOperation, "config/"+name, data)
			msg, _ := respErr(resp).(string)
			if !errors.Is(err, logical.ErrInvalidRequest) || msg != "base_url: changing it requires "+want+
				" in the same write: a stored secret is never sent to a new host" {
				t.Fatalf("%s %v: %v %q", name, data, err, msg)
			}
		}
		if after, _ := h.storage.Get(ctx, configKey(name)); !bytes.Equal(before.Value, after.Value) {
			t.Fatalf("%s: a refused write changed storage", name)
		}
		h.creds(name)
	}
	// The same URL restated, or with a trailing slash, is no change.
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"base_url": h.url + simulator.OffBlocksPrefix + "/"})
	// With the secret: stored, and logged by host.
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"base_url": other.URL + "/v1", "api_secret": obSecret})
	line := h.logLine("config base_url changed")
	if !strings.Contains(line, "old_host="+strings.TrimPrefix(h.url, "http://")) ||
		!strings.Contains(line, "new_host="+strings.TrimPrefix(other.URL, "http://")) {
		t.Fatalf("log: %q", line)
	}
	if elsewhere.Load() != 0 {
		t.Fatal("a refused write sent something to the new host")
	}
}

// A base_url with an empty query or fragment ("?" or "#" with nothing after) is refused like
// any query or fragment: "https://host/v1?" would send every call to /v1 with its path as
// the query.
func TestBaseURLEmptyQueryOrFragmentRefused(t *testing.T) {
	h := newHarness(t)
	for _, u := range []string{"https://api.example.com/v1?", "https://api.example.com/v1#", "https://api.example.com/v1?a=b",
		"https://api.example.com/v1#x", "https://api.example.com/v1/?", "http://127.0.0.1:1/?#"} {
		resp, err := h.do(logical.CreateOperation, "config/ob", map[string]any{"provider": "offblocks", "base_url": u,
			"api_key": obKey, "api_secret": obSecret})
		msg, _ := respErr(resp).(string)
		if !errors.Is(err, logical.ErrInvalidRequest) || msg != "base_url: must not contain user info, a query or a fragment" {
			t.Errorf("%s: %v %q", u, err, msg)
		}
	}
}
