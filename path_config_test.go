package apitokens

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// A config read returns exactly the non-secret fields of each provider: the providers that
// rotate also report how many fallback credentials are held (none here, so no
// fallback_since); OpsNow, which cannot rotate, reports no rotation fields at all.
func TestConfigCreateReadEachProvider(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())

	cases := map[string]map[string]any{
		"ob": {"provider": "offblocks", "base_url": h.url + "/offblocks/v1", "api_key": obKey,
			"max_ttl": int64(0), "request_timeout": int64(30), "token_reuse": false, "min_token_ttl": int64(0),
			"rotation_period": int64(0), "rotation_schedule": "", "rotation_window": int64(0), "disable_automated_rotation": false,
			"fallback_credentials": 0},
		"bq": {"provider": "bloq", "base_url": h.url + "/bloq", "grant_type": "client_credentials",
			"client_id": bqClient, "username": bqUser, "max_ttl": int64(0), "request_timeout": int64(30),
			"token_reuse": false, "min_token_ttl": int64(0),
			"rotation_period": int64(0), "rotation_schedule": "", "rotation_window": int64(0), "disable_automated_rotation": false,
			"fallback_credentials": 0},
		"ops": {"provider": "opsnow", "base_url": h.url + "/opsnow", "max_ttl": int64(0), "request_timeout": int64(30),
			"token_reuse": false, "min_token_ttl": int64(0)},
	}
	for name, want := range cases {
		resp := h.mustDo(logical.ReadOperation, "config/"+name, nil)
		if !reflect.DeepEqual(resp.Data, want) {
			t.Errorf("config/%s read:\n got %v\nwant %v", name, resp.Data, want)
		}
		assertNoSecrets(t, "config read", strings.Join(valuesOf(resp.Data), " "),
			obSecret, bqSecret, bqPass, opsAPIKey)
	}

	list := h.mustDo(logical.ListOperation, "config/", nil)
	if got := list.Data["keys"]; !reflect.DeepEqual(got, []string{"bq", "ob", "ops"}) {
		t.Errorf("list = %v", got)
	}
}

func valuesOf(m map[string]any) []string {
	var out []string
	for _, v := range m {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func TestConfigDefaultsAndDurations(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/live", map[string]any{
		"provider": "offblocks", "api_key": obKey, "api_secret": obSecret,
		"max_ttl": "10m", "request_timeout": "1m"})
	got := h.mustDo(logical.ReadOperation, "config/live", nil).Data
	if got["base_url"] != "https://api.offblocks.xyz/v1" || got["max_ttl"] != int64(600) || got["request_timeout"] != int64(60) {
		t.Errorf("read = %v", got)
	}
	for provider, url := range map[string]string{"bloq": "https://accounts.bloq.cloud", "opsnow": "https://api.opsnow.io"} {
		data := map[string]any{"provider": provider, "api_key": "k", "refresh_token": "rt"}
		if provider == "bloq" {
			delete(data, "api_key")
		} else {
			delete(data, "refresh_token")
		}
		h.mustDo(logical.CreateOperation, "config/"+provider, data)
		if u := h.mustDo(logical.ReadOperation, "config/"+provider, nil).Data["base_url"]; u != url {
			t.Errorf("%s default base_url = %v", provider, u)
		}
	}
}

func TestConfigPartialUpdate(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"max_ttl": "5m"})

	c, err := getConfig(context.Background(), h.storage, "ob")
	if err != nil {
		t.Fatal(err)
	}
	if c.ob().APIKey != obKey || c.ob().APISecret != obSecret || c.MaxTTL.Minutes() != 5 || c.RequestTimeout.Seconds() != 30 {
		t.Fatalf("partial update changed other fields: %+v", c.publicData(h.clock.Now()))
	}
	// Same provider may be restated; base_url "" resets to the default (a new host: the
	// secret comes with it).
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"provider": "offblocks", "base_url": "", "api_secret": obSecret})
	if u := h.mustDo(logical.ReadOperation, "config/ob", nil).Data["base_url"]; u != "https://api.offblocks.xyz/v1" {
		t.Errorf("base_url reset = %v", u)
	}
	// Bloq: adding a login to a client-keys config keeps client_credentials.
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(map[string]any{"username": "", "password": ""}))
	h.mustDo(logical.UpdateOperation, "config/bq", map[string]any{"username": bqUser, "password": bqPass})
	if g := h.mustDo(logical.ReadOperation, "config/bq", nil).Data["grant_type"]; g != "client_credentials" {
		t.Errorf("grant_type after adding a login = %v", g)
	}
}

func TestConfigDelete(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.DeleteOperation, "config/ob", nil)
	if resp := h.mustDo(logical.ReadOperation, "config/ob", nil); resp != nil {
		t.Fatalf("read after delete = %v", resp.Data)
	}
	resp, err := h.do(logical.ReadOperation, "creds/ob", nil)
	if !errors.Is(err, logical.ErrInvalidRequest) || !strings.Contains(respErr(resp).(string), `no config named "ob"`) {
		t.Fatalf("creds after delete: %v %v", err, respErr(resp))
	}
}

func TestConfigBloqGrantInference(t *testing.T) {
	h := newHarness(t)
	rt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	cases := []struct {
		data map[string]any
		want string
	}{
		{map[string]any{"client_id": bqClient, "client_secret": bqSecret}, "client_credentials"},
		{map[string]any{"client_id": bqClient, "client_secret": bqSecret, "username": bqUser, "password": bqPass}, "client_credentials"},
		{map[string]any{"username": bqUser, "password": bqPass}, "password"},
		{map[string]any{"refresh_token": rt}, "refresh_token"},
		{map[string]any{"refresh_token": rt, "username": bqUser, "password": bqPass, "grant_type": "password"}, "password"},
	}
	for i, tc := range cases {
		tc.data["provider"] = "bloq"
		name := "bq" + string(rune('a'+i))
		h.mustDo(logical.CreateOperation, "config/"+name, tc.data)
		if g := h.mustDo(logical.ReadOperation, "config/"+name, nil).Data["grant_type"]; g != tc.want {
			t.Errorf("case %d: grant_type = %v, want %s", i, g, tc.want)
		}
	}
}

func TestConfigValidationErrors(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/existing", h.offblocksConfig())
	ob := func(kv ...any) map[string]any {
		m := map[string]any{"provider": "offblocks", "api_key": obKey, "api_secret": obSecret}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name, path string
		data       map[string]any
		field      string // the error must start with it
		phrase     string
	}{
		{"missing provider", "config/a", map[string]any{"api_key": obKey}, "provider", "required"},
		{"unknown provider", "config/a", map[string]any{"provider": "stripe"}, "provider", "unknown provider"},
		{"immutable provider", "config/existing", map[string]any{"provider": "opsnow"}, "provider", "immutable"},
		{"offblocks missing api_key", "config/a", map[string]any{"provider": "offblocks", "api_secret": "x"}, "api_key", "required"},
		{"offblocks bad uuid", "config/a", ob("api_key", "not-a-uuid"), "api_key", "UUID"},
		{"offblocks missing secret", "config/a", map[string]any{"provider": "offblocks", "api_key": obKey}, "api_secret", "required"},
		{"field of another provider", "config/a", ob("client_id", "abc"), "client_id", "not a field of provider offblocks"},
		{"opsnow missing key", "config/a", map[string]any{"provider": "opsnow"}, "api_key", "required"},
		{"http to a remote host", "config/a", ob("base_url", "http://api.offblocks.xyz/v1"), "base_url", "https"},
		{"ftp scheme", "config/a", ob("base_url", "ftp://127.0.0.1/x"), "base_url", "https"},
		{"relative url", "config/a", ob("base_url", "api.offblocks.xyz"), "base_url", "absolute"},
		{"userinfo in url", "config/a", ob("base_url", "https://u:p@api.offblocks.xyz"), "base_url", "user info"},
		{"negative max_ttl", "config/a", ob("max_ttl", -5), "max_ttl", "negative"},
		{"request_timeout too long", "config/a", ob("request_timeout", "11m"), "request_timeout", "at most"},
		{"bloq nothing", "config/a", map[string]any{"provider": "bloq"}, "client_id", "needs"},
		{"bloq ambiguous", "config/a", map[string]any{"provider": "bloq", "refresh_token": "rt", "client_id": "c", "client_secret": "s"}, "grant_type", "ambiguous"},
		{"bloq incomplete keys", "config/a", map[string]any{"provider": "bloq", "client_id": bqClient}, "client_secret", "required"},
		{"bloq username without password", "config/a", map[string]any{"provider": "bloq", "username": bqUser}, "password", "required"},
		{"bloq grant without its fields", "config/a", map[string]any{"provider": "bloq", "grant_type": "refresh_token", "client_id": "c", "client_secret": "s"}, "refresh_token", "required"},
		{"bloq unknown grant", "config/a", map[string]any{"provider": "bloq", "grant_type": "implicit", "client_id": "c", "client_secret": "s"}, "grant_type", "unknown grant"},
		{"update to incomplete", "config/existing", map[string]any{"api_secret": ""}, "api_secret", "required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.do(logical.UpdateOperation, tc.path, tc.data)
			// An error response is a 400 in Vault; ours also carry ErrInvalidRequest, the
			// framework's own type checks do not.
			if (err != nil && !errors.Is(err, logical.ErrInvalidRequest)) || resp == nil || !resp.IsError() {
				t.Fatalf("want a 400, got err=%v resp=%v", err, resp)
			}
			msg := respErr(resp).(string)
			names := strings.HasPrefix(msg, tc.field+":") || strings.Contains(msg, `field "`+tc.field+`"`)
			if !names || !strings.Contains(msg, tc.phrase) {
				t.Fatalf("error %q does not name field %q with %q", msg, tc.field, tc.phrase)
			}
			assertNoSecrets(t, "error", msg, obSecret, bqSecret, bqPass)
		})
	}
	// Nothing was stored by the failed writes, and the existing config is unchanged.
	if list := h.mustDo(logical.ListOperation, "config/", nil); len(list.Data["keys"].([]string)) != 1 {
		t.Errorf("failed writes stored configs: %v", list.Data["keys"])
	}
	c, _ := getConfig(context.Background(), h.storage, "existing")
	if c.Provider != "offblocks" || c.ob().APISecret != obSecret {
		t.Errorf("failed updates changed the stored config")
	}
}

func TestConfigLoopbackHTTPAllowed(t *testing.T) {
	h := newHarness(t)
	for _, u := range []string{"http://127.0.0.1:8200/v1", "http://localhost/v1/", "http://[::1]:9/x", "http://127.9.9.9"} {
		h.mustDo(logical.CreateOperation, "config/l", map[string]any{
			"provider": "offblocks", "api_key": obKey, "api_secret": obSecret, "base_url": u})
		if got := h.mustDo(logical.ReadOperation, "config/l", nil).Data["base_url"]; got != strings.TrimRight(u, "/") {
			t.Errorf("base_url %s stored as %v", u, got)
		}
		h.mustDo(logical.DeleteOperation, "config/l", nil)
	}
}

func TestConfigStorageSealWrappedAndSchemaSensitive(t *testing.T) {
	h := newHarness(t)
	sw := h.b.SpecialPaths().SealWrapStorage
	// config/ and state/ hold root credentials (state/ a config's fallbacks and retiring ones),
	// wal/ a rotation's.
	if !reflect.DeepEqual(sw, []string{"config/", "state/", "wal/"}) {
		t.Errorf("SealWrapStorage = %v", sw)
	}
	fields := configFields()
	for _, f := range []string{"api_key", "api_secret", "client_secret", "password", "refresh_token"} {
		if fields[f].DisplayAttrs == nil || !fields[f].DisplayAttrs.Sensitive {
			t.Errorf("field %s is not marked sensitive", f)
		}
	}
	for name, f := range fields {
		if f.Description == "" {
			t.Errorf("field %s has no description", name)
		}
	}
	for _, p := range h.b.Paths {
		if p.HelpSynopsis == "" || p.HelpDescription == "" {
			t.Errorf("path %s lacks help", p.Pattern)
		}
	}
}

// Secrets are stored byte for byte as given, white space included (a secret ending in a
// line break gets a warning, not an edit); an identifier with surrounding white space is
// refused, naming the field.
func TestConfigSecretsNeverAltered(t *testing.T) {
	h := newHarness(t)
	spaced := "  " + obSecret + " \n"
	resp := h.mustDo(logical.CreateOperation, "config/ob", map[string]any{"provider": "offblocks",
		"base_url": h.url + "/offblocks/v1", "api_key": obKey, "api_secret": spaced})
	if h.stored("ob").ob().APISecret != spaced {
		t.Fatalf("api_secret was altered: %q", h.stored("ob").ob().APISecret)
	}
	if resp == nil || len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], "api_secret ends with a line break") {
		t.Fatalf("warnings = %v", resp)
	}
	h.mustDo(logical.CreateOperation, "config/ops", map[string]any{"provider": "opsnow", "api_key": " " + opsAPIKey})
	h.mustDo(logical.CreateOperation, "config/bq", map[string]any{"provider": "bloq", "username": bqUser,
		"password": "\t" + bqPass + " ", "refresh_token": "", "client_id": ""})
	if h.stored("ops").ops().APIKey != " "+opsAPIKey || h.stored("bq").bq().Password != "\t"+bqPass+" " {
		t.Fatal("a secret was altered")
	}
	for field, data := range map[string]map[string]any{
		"client_id": {"provider": "bloq", "client_id": " " + bqClient, "client_secret": bqSecret},
		"username":  {"provider": "bloq", "username": bqUser + "\n", "password": bqPass},
		"api_key":   {"provider": "offblocks", "api_key": obKey + " ", "api_secret": obSecret},
	} {
		resp, err := h.do(logical.CreateOperation, "config/x", data)
		if !errors.Is(err, logical.ErrInvalidRequest) || !strings.HasPrefix(respErr(resp).(string), field+": has leading or trailing white space") {
			t.Errorf("%s with white space: want a 400 naming it, got %v %v", field, err, respErr(resp))
		}
	}
}

// An OffBlocks base_url whose path does not end in /v1 (the documented root includes it)
// is stored, with a warning.
func TestConfigOffBlocksBaseURLWithoutV1Warns(t *testing.T) {
	h := newHarness(t)
	resp := h.mustDo(logical.CreateOperation, "config/ob", map[string]any{"provider": "offblocks",
		"base_url": h.url + "/offblocks", "api_key": obKey, "api_secret": obSecret})
	if resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "ends in /v1") {
		t.Fatalf("warnings = %v", resp)
	}
	if resp := h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"base_url": h.url + "/offblocks/v1",
		"api_secret": obSecret}); resp != nil {
		t.Fatalf("a /v1 base_url warned: %v", resp.Warnings)
	}
}

// A Bloq config keeps its grant through updates that do not name one, though the fields
// stored beside it would infer another on create; and grant_type follows the one rule for
// white space.
func TestBloqGrantKeptOnUpdate(t *testing.T) {
	h := newHarness(t)
	h.bloqRefreshConfig(h.sim.BloqRefreshToken(h.bqKeyID))
	h.mustDo(logical.UpdateOperation, "config/bq", map[string]any{"client_id": bqClient, "client_secret": bqSecret})
	h.mustDo(logical.UpdateOperation, "config/bq", map[string]any{"max_ttl": "5m"})
	if g := h.stored("bq").bq().GrantType; g != "refresh_token" {
		t.Fatalf("grant after updates = %s", g)
	}
	h.mustDo(logical.CreateOperation, "config/bq-login", h.bloqConfig(map[string]any{"grant_type": "password"}))
	h.mustDo(logical.UpdateOperation, "config/bq-login", map[string]any{"max_ttl": "5m"})
	if g := h.stored("bq-login").bq().GrantType; g != "password" {
		t.Fatalf("password grant with keys beside it became %s", g)
	}
	resp, err := h.do(logical.UpdateOperation, "config/bq-login", map[string]any{"grant_type": " password"})
	if !errors.Is(err, logical.ErrInvalidRequest) || respErr(resp) != "grant_type: has leading or trailing white space; "+
		"it is used exactly as given, so remove it" {
		t.Fatalf("grant_type with white space: %v %v", err, respErr(resp))
	}
}
