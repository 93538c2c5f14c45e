package bloq_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// The contracts of the response parsers: what Bloq (or whatever answers on its URL) may send
// on a 200, and how each parser must read it.

// htmlPage is what a captive portal or a misrouted proxy answers with a 200.
const htmlPage = "<html><body>Service temporarily unavailable</body></html>"

// A 200 that is not the JSON object the contract describes (an HTML page, an answer cut off,
// a refreshToken that is no string) is apiclient.ErrNotJSON: a malformed response, never a
// token, and not some other failure such as an unreadable exp claim.
func TestParseTokenResponseNotJSON(t *testing.T) {
	for _, body := range []string{
		htmlPage,
		`{"accessToken":"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTU5NTE4MDB9`,
		`{"accessToken":"` + jwtExp + `","refreshToken":7}`,
	} {
		tr, err := bloq.ParseTokenResponse([]byte(body), issued, time.Hour)
		if !errors.Is(err, apiclient.ErrNotJSON) || tr.Token.Value != "" {
			t.Errorf("%s: %+v, err = %v, want ErrNotJSON and no token", body, tr, err)
		}
	}
}

// An answer without an accessToken is an error that says so: not ErrNotBearer, which tells
// the operator the provider sent a value that is no Bearer token, nor ErrNotJSON.
func TestParseTokenResponseNoAccessToken(t *testing.T) {
	for _, body := range []string{`{"refreshToken":"r"}`, `{"accessToken":""}`, `{"accessToken":null}`, `{}`} {
		tr, err := bloq.ParseTokenResponse([]byte(body), issued, time.Hour)
		if err == nil || tr.Token.Value != "" {
			t.Errorf("%s: accepted: %+v", body, tr)
			continue
		}
		if errors.Is(err, apiclient.ErrNotBearer) || errors.Is(err, apiclient.ErrNotJSON) {
			t.Errorf("%s: err = %v, want one that says the accessToken is missing", body, err)
		}
	}
}

// Through the client: an HTML 200 to the client-credentials grant, a create and a list call
// reaches the caller as a malformed response wrapping ErrNotJSON, and names no secret.
func TestNotJSONAnswersThroughTheClient(t *testing.T) {
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	uid := sim.AddBloqUser("me@example.com", "pw-0123456789")
	const secret = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	sim.AddBloqKey(uid, "cid", secret)
	c := bloq.New(apiclient.New(apiclient.Options{Provider: "bloq", BaseURL: srv.URL + simulator.BloqPrefix}), nil)
	ctx := context.Background()
	acct, err := c.AccountToken(ctx, "me@example.com", "pw-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, apiclient.ErrNotJSON) || !strings.Contains(err.Error(), "malformed response") {
			t.Errorf("%s: err = %v, want a malformed response wrapping ErrNotJSON", what, err)
		} else if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), acct.Token.Value) {
			t.Errorf("%s: the error names a secret: %v", what, err)
		}
	}
	sim.Inject(simulator.RouteBloqToken, simulator.Fault{Body: htmlPage})
	_, err = c.ClientToken(ctx, "cid", secret)
	check("client token", err)
	sim.Inject(simulator.RouteBloqKeysCreate, simulator.Fault{Body: htmlPage})
	_, err = c.CreateClientKey(ctx, acct.Token.Value)
	check("create client key", err)
	sim.Inject(simulator.RouteBloqKeysList, simulator.Fault{Body: htmlPage})
	_, err = c.ListClientKeys(ctx, acct.Token.Value)
	check("list client keys", err)
}

// A created key comes at the top level or under "data"; a "data" that is JSON null is no
// envelope, and the key is then read from the top level.
func TestParseCreatedKeyShapes(t *testing.T) {
	for _, body := range []string{
		`{"id":"k9","clientId":"a","clientSecret":"s"}`,
		`{"data":{"id":"k9","clientId":"a","clientSecret":"s"}}`,
		`{"status":"success","data":{"id":"k9","clientId":"a","clientSecret":"s"}}`,
		`{"data":null,"id":"k9","clientId":"a","clientSecret":"s"}`,
	} {
		k, err := bloq.ParseCreatedKey([]byte(body))
		if err != nil || k != (bloq.ClientKey{ID: "k9", ClientID: "a", Secret: "s"}) {
			t.Errorf("%s: %+v, %v", body, k, err)
		}
	}
}

// A created key is only usable with both halves: an answer that lacks the clientSecret (the
// list's shape, say) or the clientId is an error, never a key to store.
func TestParseCreatedKeyNeedsBothHalves(t *testing.T) {
	for _, body := range []string{
		`{"id":"k9","clientId":"a","createdAt":"2026-11-23T12:00:00Z"}`,
		`{"data":{"id":"k9","clientId":"a"}}`,
		`{"clientId":"a","clientSecret":""}`,
		`{"id":"k9","clientSecret":"s"}`,
	} {
		if k, err := bloq.ParseCreatedKey([]byte(body)); err == nil || errors.Is(err, apiclient.ErrNotJSON) {
			t.Errorf("%s: %+v, err = %v, want a missing-field error", body, k, err)
		}
	}
	for _, body := range []string{htmlPage, `{"clientId":"a","clientSecret":"fedcba98765432`, `{"clientId":5,"clientSecret":"s"}`} {
		if k, err := bloq.ParseCreatedKey([]byte(body)); !errors.Is(err, apiclient.ErrNotJSON) || k != (bloq.ClientKey{}) {
			t.Errorf("%s: %+v, err = %v, want ErrNotJSON", body, k, err)
		}
	}
}

// twoKeys are two listed keys, and wantTwo checks that a list read them both.
const twoKeys = `[{"id":"k1","clientId":"a"},{"id":"k2","clientId":"b"}]`

func wantTwo(t *testing.T, body string, keys []bloq.ClientKey, err error) {
	t.Helper()
	if err != nil || len(keys) != 2 || bloq.KeyIDFor(keys, "a") != "k1" || bloq.KeyIDFor(keys, "b") != "k2" {
		t.Fatalf("%s: %+v, %v", body, keys, err)
	}
}

// An envelope's "data" may itself hold the list under a name, as OpsNow-style answers do.
func TestParseKeyListNestedEnvelope(t *testing.T) {
	for _, body := range []string{
		`{"status":"success","data":{"clientKeys":` + twoKeys + `}}`,
		" \n{\"data\":" + twoKeys + "}\n",
	} {
		keys, err := bloq.ParseKeyList([]byte(body))
		wantTwo(t, body, keys, err)
	}
}

// Beside the list, an object may hold other arrays (scopes, warnings) that are no list of
// keys: whatever order the members are read in, the list is the one read, whole. (A member
// that fails to decode must not leave a mark on it.)
func TestParseKeyListIgnoresOtherArrays(t *testing.T) {
	body := `{"clientKeys":` + twoKeys + `,"scopes":["keys:read"],"warnings":["deprecated"]}`
	for i := 0; i < 64; i++ { // map order is random: every run sees several orders
		keys, err := bloq.ParseKeyList([]byte(body))
		wantTwo(t, body, keys, err)
	}
}

func TestParseKeyListNotJSON(t *testing.T) {
	for _, body := range []string{htmlPage, `[{"id":"k1","clientId":"a"},`, `{"data":[{"id":"k1"`} {
		if keys, err := bloq.ParseKeyList([]byte(body)); !errors.Is(err, apiclient.ErrNotJSON) || keys != nil {
			t.Errorf("%s: %+v, err = %v, want ErrNotJSON", body, keys, err)
		}
	}
}

// A member whose value is null (a last page's "nextPageToken": null) is not the key list,
// whatever order the object's members are read in: the account's keys are all listed (an
// empty list would make Retire report ErrNotListed and leave a replaced key live upstream).
func TestParseKeyListNullMemberIsNoList(t *testing.T) {
	body := `{"clientKeys":[{"id":"k1","clientId":"a"},{"id":"k2","clientId":"b"}],"nextPageToken":null}`
	for i := 0; i < 64; i++ { // a map's order differs from run to run
		keys, err := bloq.ParseKeyList([]byte(body))
		if err != nil || len(keys) != 2 {
			t.Fatalf("run %d: %+v, %v: the null member was read as the list", i, keys, err)
		}
	}
}
