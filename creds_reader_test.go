package apitokens

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// credsError reads creds/name and returns the error's text, failing unless it is a 502.
func (h *harness) credsError(name string) string {
	h.t.Helper()
	resp, err := h.do(logical.ReadOperation, "creds/"+name, nil)
	if coded, ok := err.(logical.HTTPCodedError); !ok || coded.Code() != 502 {
		h.t.Fatalf("creds/%s: want a 502, got %v %v", name, err, respErr(resp))
	}
	return err.Error()
}

// A creds reader may not read config: an error on creds/ names the provider, the call and
// the status, but no identifier of a root credential, neither in the plugin's text nor in
// the provider's excerpt (which may echo the api_key, client_id or username the call sent).
func TestCredsErrorsNameNoIdentifier(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	h.mustDo(logical.CreateOperation, "config/bq-acct", h.bloqConfig(map[string]any{"client_id": "", "client_secret": ""}))
	echo := func(route, body string) { h.sim.Inject(route, simulator.Fault{Status: 401, Body: body}) }

	echo(simulator.RouteOffBlocksToken, `apiKey `+obKey+` with apiSecret `+obSecret[:20]+`... is not valid`)
	msg := h.credsError("ob")
	if !strings.Contains(msg, "offblocks: mint token (POST /auth/token): status 401 Unauthorized") ||
		strings.Contains(msg, obKey) || strings.Contains(msg, obSecret[:8]) {
		t.Fatalf("creds/ob: %s", msg)
	}
	echo(simulator.RouteBloqToken, `{"message":"clientId `+bqClient+` is not valid"}`)
	if msg := h.credsError("bq"); !strings.Contains(msg, "bloq: client token") || strings.Contains(msg, bqClient) {
		t.Fatalf("creds/bq: %s", msg)
	}
	echo(simulator.RouteBloqAuth, `{"message":"user `+bqUser+` is locked"}`)
	if msg := h.credsError("bq-acct"); !strings.Contains(msg, "bloq: account token") || strings.Contains(msg, bqUser) ||
		!strings.Contains(msg, "is locked") {
		t.Fatalf("creds/bq-acct: %s", msg)
	}

	// An unsettled rotation (the provider applies the change an hour late, and names the new
	// apiKey when it refuses it meanwhile): since when and what to do, not which credential.
	h.sim.SetOffBlocksLag(time.Hour)
	since := h.clock.Now().UTC().Format(time.RFC3339)
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("a lagging rotation settled")
	}
	next := h.stored("ob").Fallbacks[0].cred.(offblocks.Credentials)
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 401, Times: -1,
		Body:  "apiKey " + next.APIKey + " is not active yet",
		Match: func(b []byte) bool { return strings.Contains(string(b), next.APIKey) }})
	msg = h.credsError("ob")
	for _, want := range []string{`rotation of "ob" unsettled since ` + since, "an operator must see config/ob"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("creds/ob while unsettled lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, next.APIKey) || strings.Contains(msg, obKey) {
		t.Fatalf("creds/ob while unsettled names a credential: %s", msg)
	}
	// Config reads, rotate-root answers and the log keep the detail.
	if c := h.mustDo(logical.ReadOperation, "config/ob", nil).Data["unsettled_credential"]; c != next.APIKey {
		t.Fatalf("config read: unsettled_credential %v", c)
	}
	if text := respText(h, "ob"); !strings.Contains(text, next.APIKey) {
		t.Fatalf("rotate-root: the refusal does not name the unsettled credential: %s", text)
	}
	if !strings.Contains(h.logs.String(), obKey) {
		t.Fatalf("the log lost the identifiers:\n%s", h.logs.String())
	}
}

// respText is the text of a rotate-root of name's answer (error or data).
func respText(h *harness, name string) string {
	resp, err := h.do(logical.UpdateOperation, "rotate-root/"+name, nil)
	if err != nil {
		return err.Error() + " " + respString(resp)
	}
	return respString(resp)
}

func respString(resp *logical.Response) string {
	if resp == nil {
		return ""
	}
	if s, ok := resp.Data["error"].(string); ok {
		return s
	}
	return ""
}

// The last net: a text that names an identifier of the config some other way than the
// errors readerText walks (here, a wrapped error's plain text) is redacted all the same,
// whole for short names so that the words around them stay.
func TestReaderTextRedactsTheConfigsIdentifiers(t *testing.T) {
	cfg := &accountConfig{configHead: configHead{Provider: "bloq"}, cred: bloq.Credentials{ClientID: bqClient, Username: "bob",
		GrantType: bloq.GrantClientCredentials}, configTail: configTail{Retiring: []credential{bloq.Credentials{ClientID: "oldclient0001"}}}}
	err := &textError{text: "client " + bqClient + " and bob and bobby and old oldclient0001 for client_credentials",
		err: errStorageDown}
	want := "client [redacted] and [redacted] and bobby and old [redacted] for client_credentials"
	if got := readerText(err, cfg); got != want {
		t.Fatalf("readerText\n got %q\nwant %q", got, want)
	}
}

// Each net of readerText holds on its own: the identifiers a provider call carried (with no
// config to name them), an unsettled rotation's own and those its change's and confirmation's
// errors carried, a whole run that glues an identifier to other characters, and an identifier
// echoed in another case, URL-escaped or quoted.
func TestReaderTextNets(t *testing.T) {
	call := &apiclient.Error{Provider: "offblocks", Call: "mint token", Method: "POST", Path: "/auth/token", Status: 401,
		Detail: "apiKey " + obKey + " rejected", Identifiers: []string{obKey}}
	if got := readerText(call, nil); strings.Contains(got, obKey) || !strings.Contains(got, "status 401") {
		t.Errorf("a provider call's identifier: %s", got)
	}
	const next = "0b5d0ba8-59c5-4e4b-9f0a-5f3e2c1d0a99"
	u := &unsettledError{name: "ob", provider: "offblocks", identifier: next,
		activate: &apiclient.Error{Provider: "offblocks", Call: "update credentials", Status: 503, Detail: "for " + obKey, Identifiers: []string{obKey}},
		confirm:  errors.New("key " + next + " not active")}
	if got := readerText(u, nil); strings.Contains(got, next) || strings.Contains(got, obKey) {
		t.Errorf("an unsettled rotation's identifiers: %s", got)
	}
	cfg := &accountConfig{configHead: configHead{Provider: "bloq"}, cred: bloq.Credentials{ClientID: bqClient,
		Username: "Ops@Example.com", GrantType: bloq.GrantPassword}}
	for _, text := range []string{"key=" + bqClient + "x", "user OPS@EXAMPLE.COM is locked", "user ops%40example.com",
		`user "Ops@Example.com"`, "client " + strings.ToUpper(bqClient)} {
		if got := readerText(&textError{text: text, err: errStorageDown}, cfg); strings.Contains(strings.ToLower(got), "example") ||
			strings.Contains(strings.ToLower(got), bqClient) {
			t.Errorf("%q reads %q", text, got)
		}
	}
	short := &accountConfig{configHead: configHead{Provider: "bloq"}, cred: bloq.Credentials{Username: "bob"}}
	if got := readerText(&textError{text: "bob,bob BOB bobby", err: errStorageDown}, short); got != "[redacted],[redacted] [redacted] bobby" {
		t.Errorf("short name: %q", got)
	}
}

// The creds path's error answer redacts what the config, as this node knows it, names.
func TestCredsErrorResponseUsesTheConfig(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	_, err := h.b.credsErrorResponse(context.Background(), h.storage, "bq",
		&textError{text: "client " + bqClient + " of " + bqUser + " down", err: errStorageDown})
	if err == nil || strings.Contains(err.Error(), bqClient) || strings.Contains(err.Error(), bqUser) {
		t.Fatalf("credsErrorResponse: %v", err)
	}
}

// A run of creds reads failing on the provider is logged with its detail once at warning
// level, then at debug level; a successful read ends the run, and the next failure warns
// again.
func TestCredsFailureWarnsOncePerRun(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	fail := func(n int) {
		h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 401, Body: "apiKey " + obKey + " refused", Times: n})
		for i := 0; i < n; i++ {
			h.credsError("ob")
		}
	}
	fail(3)
	h.creds("ob")
	fail(1)
	count := func(level string) (n int) {
		for _, line := range strings.Split(h.logs.String(), "\n") {
			if strings.Contains(line, "creds read failed on the provider") && strings.Contains(line, level) {
				n++
				if !strings.Contains(line, obKey) {
					t.Errorf("the log line lacks the detail: %s", line)
				}
			}
		}
		return n
	}
	if w, d := count("[WARN]"), count("[DEBUG]"); w != 2 || d != 2 {
		t.Fatalf("%d warnings and %d debug lines, want 2 and 2", w, d)
	}
}
