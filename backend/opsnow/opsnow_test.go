package opsnow_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/opsnow"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// issued is a little before the samples' expiries (11:00 and 11:30 that day), so that each
// lies within the documented lifetime, past which NewToken caps an expiry.
var issued = time.Date(2026, 11, 29, 10, 45, 0, 0, time.UTC)

// jwtExp is a JWT whose exp is 1795951800, that is jwtExpAt.
const jwtExp = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTU5NTE4MDB9.sig"

var jwtExpAt = time.Date(2026, 11, 29, 11, 30, 0, 0, time.UTC)

func TestParseTokenResponse(t *testing.T) {
	badExp := "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOiJzb29uIn0.sig" // {"exp":"soon"}
	cases := []struct {
		name, body string
		token      string
		want       time.Time
		wantErr    string
	}{
		{"wrapped accessToken expiresIn", `{"status":"success","data":{"accessToken":"A","expiresIn":600}}`, "A", issued.Add(10 * time.Minute), ""},
		{"top access_token expires_in", `{"access_token":"B","expires_in":"900"}`, "B", issued.Add(15 * time.Minute), ""},
		{"wrapped token expiresAt", `{"data":{"token":"C","expiresAt":1795950000}}`, "C", time.Unix(1795950000, 0), ""},
		{"top expires_at RFC 3339", `{"accessToken":"D","expires_at":"2026-11-29T11:30:00Z"}`, "D", issued.Add(45 * time.Minute), ""},
		{"JWT exp only", `{"data":{"accessToken":"` + jwtExp + `"}}`, jwtExp, jwtExpAt, ""},
		{"nothing: 3600 s", `{"data":{"accessToken":"E"}}`, "E", issued.Add(time.Hour), ""},
		{"null fields: 3600 s", `{"accessToken":"E","expiresIn":null,"expires_at":null}`, "E", issued.Add(time.Hour), ""},
		{"data wins over top", `{"token":"top","data":{"accessToken":"F","expiresIn":60}}`, "F", issued.Add(time.Minute), ""},
		{"bad field outside the token's object ignored", `{"expiresIn":-5,"data":{"accessToken":"F","expiresIn":60}}`, "F", issued.Add(time.Minute), ""},
		{"expiresIn earlier than expiresAt", `{"accessToken":"G","expiresIn":60,"expiresAt":1795950000}`, "G", issued.Add(time.Minute), ""},
		{"expiresAt earlier than expiresIn", `{"accessToken":"G","expiresIn":864000,"expiresAt":1795950000}`, "G", time.Unix(1795950000, 0), ""},
		{"field earlier than JWT exp", `{"accessToken":"` + jwtExp + `","expiresAt":1795950000}`, jwtExp, time.Unix(1795950000, 0), ""},
		{"JWT exp earlier than field", `{"accessToken":"` + jwtExp + `","expiresIn":864000}`, jwtExp, jwtExpAt, ""},
		{"negative expiresIn", `{"accessToken":"G","expiresIn":-5,"expiresAt":1795950000}`, "", time.Time{}, "expiresIn"},
		{"zero expiresIn", `{"accessToken":"G","expiresIn":0}`, "", time.Time{}, "expiresIn"},
		{"sub-second expires_in", `{"accessToken":"G","expires_in":0.5}`, "", time.Time{}, "expires_in"},
		{"word expiresIn", `{"data":{"accessToken":"G","expiresIn":"soon"}}`, "", time.Time{}, "expiresIn"},
		{"bad expiresAt with good expiresIn", `{"accessToken":"G","expiresIn":60,"expiresAt":"soon"}`, "", time.Time{}, "expiresAt"},
		{"bad expires_at", `{"accessToken":"G","expires_at":-1}`, "", time.Time{}, "expires_at"},
		{"unreadable JWT exp", `{"accessToken":"` + badExp + `","expiresIn":60}`, "", time.Time{}, "exp claim"},
		{"fail status with 200", `{"status":"fail","error":{"code":401,"message":"Unauthorized"}}`, "", time.Time{}, "fail"},
		{"no token", `{"status":"success","data":{}}`, "", time.Time{}, "no accessToken"},
		{"array", `[1,2]`, "", time.Time{}, "JSON"},
		{"null", `null`, "", time.Time{}, "JSON"},
	}
	for _, tc := range cases {
		tok, err := opsnow.ParseTokenResponse([]byte(tc.body), issued)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || tok.Value != tc.token || !tok.ExpiresAt.Equal(tc.want) {
			t.Errorf("%s: got %q %s (%v), want %q %s", tc.name, tok.Value, tok.ExpiresAt, err, tc.token, tc.want)
		}
	}
}

func FuzzParseTokenResponse(f *testing.F) {
	f.Add([]byte(`{"status":"success","data":{"accessToken":"A","expiresIn":600}}`))
	f.Add([]byte(`{"access_token":"B","expires_in":"900"}`))
	f.Add([]byte(`{"data":{"token":"C","expiresAt":"2026-11-23T12:45:00Z"}}`))
	f.Add([]byte(`{"accessToken":"` + jwtExp + `","expiresIn":864000}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := opsnow.ParseTokenResponse(body, issued)
		if err == nil && (tok.Value == "" || tok.ExpiresAt.IsZero()) {
			t.Fatalf("accepted a response without a token or expiry: %+v", tok)
		}
		if exp, jerr := apiclient.JWTExpiry(tok.Value); err == nil && jerr == nil && tok.ExpiresAt.After(exp) {
			t.Fatalf("expiry %s is later than the JWT exp %s", tok.ExpiresAt, exp)
		}
	})
}

func TestAgainstSimulator(t *testing.T) {
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	sim.AddOpsNowKey("key-1")
	c := opsnow.New(apiclient.New(apiclient.Options{Provider: "opsnow", BaseURL: srv.URL + simulator.OpsNowPrefix}), nil)
	tok, err := c.Mint(context.Background(), "key-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Validate(tok.Value); err != nil {
		t.Fatal(err)
	}
	_, err = c.Mint(context.Background(), "nope")
	// The provider's "Unauthorized" is not repeated after the status that says it.
	if apiclient.StatusOf(err) != 401 || !strings.HasSuffix(err.Error(), ": status 401 Unauthorized") ||
		strings.Count(err.Error(), "Unauthorized") != 1 || strings.Contains(err.Error(), "nope") {
		t.Errorf("wrong key: %v", err)
	}
}

// OpsNow's apiKey is the account's secret: an error body that echoes it shows it redacted,
// however short or identifier-like it looks.
func TestErrorRedactsAPIKey(t *testing.T) {
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	const key = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	sim.AddOpsNowKey(key)
	sim.Inject(simulator.RouteOpsNowToken, simulator.Fault{Status: 401,
		Body: `{"status":"fail","error":{"code":401,"message":"apiKey ` + key + ` unknown"}}`})
	c := opsnow.New(apiclient.New(apiclient.Options{Provider: "opsnow", BaseURL: srv.URL + simulator.OpsNowPrefix}), nil)
	_, err := c.Mint(context.Background(), key)
	if msg := fmt.Sprint(err); !strings.Contains(msg, "apiKey [redacted] unknown") {
		t.Errorf("err = %s, want the apiKey redacted", msg)
	}
}
