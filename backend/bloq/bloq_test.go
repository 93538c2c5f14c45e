package bloq_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// issued is a little before the samples' expiries (11:00 and 11:30 that day), so that each
// lies within the documented lifetime, past which NewToken caps an expiry.
var issued = time.Date(2026, 11, 29, 10, 45, 0, 0, time.UTC)

// jwtExp is a JWT whose exp is 1795951800, that is jwtExpAt.
const jwtExp = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTU5NTE4MDB9.sig"

var jwtExpAt = time.Date(2026, 11, 29, 11, 30, 0, 0, time.UTC)

func TestParseTokenResponseExpiry(t *testing.T) {
	tr, err := bloq.ParseTokenResponse([]byte(`{"accessToken":"`+jwtExp+`","refreshToken":"r"}`), issued, time.Hour)
	if err != nil || !tr.Token.ExpiresAt.Equal(jwtExpAt) || tr.RefreshToken != "r" || tr.Token.ExpirySource != apiclient.FromJWT {
		t.Errorf("JWT exp: %+v %v", tr, err)
	}
	tr, err = bloq.ParseTokenResponse([]byte(`{"accessToken":"opaque"}`), issued, 12*time.Hour)
	if err != nil || !tr.Token.ExpiresAt.Equal(issued.Add(12*time.Hour)) || tr.Token.ExpirySource != apiclient.FromDefault {
		t.Errorf("documented lifetime fallback: %+v %v", tr, err)
	}
	if _, err := bloq.ParseTokenResponse([]byte(`{"refreshToken":"r"}`), issued, time.Hour); err == nil {
		t.Error("accepted a response without accessToken")
	}
	badExp := "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOiJzb29uIn0.sig" // {"exp":"soon"}
	if _, err := bloq.ParseTokenResponse([]byte(`{"accessToken":"`+badExp+`"}`), issued, time.Hour); !errors.Is(err, apiclient.ErrBadExpiry) {
		t.Errorf("unreadable exp: err = %v, want ErrBadExpiry", err)
	}
}

func TestParseKeyListShapes(t *testing.T) {
	for _, body := range []string{
		`[{"id":"k1","clientId":"a"},{"id":7,"clientId":"b"}]`,
		`{"data":[{"id":"k1","clientId":"a"},{"id":7,"clientId":"b"}]}`,
		`{"clientKeys":[{"id":"k1","clientId":"a"},{"id":7,"clientId":"b"}]}`,
	} {
		keys, err := bloq.ParseKeyList([]byte(body))
		if err != nil || bloq.KeyIDFor(keys, "a") != "k1" || bloq.KeyIDFor(keys, "b") != "7" || bloq.KeyIDFor(keys, "c") != "" {
			t.Errorf("%s: %+v %v", body, keys, err)
		}
		if bloq.KeyIDFor(keys, "k1") != "" {
			t.Errorf("%s: an entry with a clientId matched by its internal id", body)
		}
	}
	if _, err := bloq.ParseKeyList([]byte(`{"count":2}`)); err == nil {
		t.Error("accepted a body with no list")
	}
}

// TestKeyIDForIDOnlyList: Bloq's newest CLI lists only {id, createdAt}, id being the key.
func TestKeyIDForIDOnlyList(t *testing.T) {
	keys, err := bloq.ParseKeyList([]byte(`[{"id":"aaaa","createdAt":"2026-11-23T12:00:00Z"},{"id":"bbbb","createdAt":"2026-11-23T12:00:00Z"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if bloq.KeyIDFor(keys, "aaaa") != "aaaa" || bloq.KeyIDFor(keys, "bbbb") != "bbbb" || bloq.KeyIDFor(keys, "cccc") != "" {
		t.Errorf("id-only list: %+v", keys)
	}
	if bloq.KeyIDFor(keys, "") != "" || bloq.KeyIDFor([]bloq.ClientKey{{ID: "k1"}}, "") != "" {
		t.Error("an empty clientId matched a key")
	}
}

func FuzzParsers(f *testing.F) {
	f.Add([]byte(`{"accessToken":"a.b.c","refreshToken":"r"}`))
	f.Add([]byte(`{"data":[{"id":1,"clientId":"a"}]}`))
	f.Add([]byte(`{"data":{"clientId":"a","clientSecret":"s","id":"k"}}`))
	f.Add([]byte(`{"accessToken":"` + jwtExp + `"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := bloq.ParseTokenResponse(body, issued, 100*365*24*time.Hour)
		if err == nil && (tr.Token.Value == "" || tr.Token.ExpiresAt.IsZero()) {
			t.Fatalf("token without value or expiry: %+v", tr)
		}
		if exp, jerr := apiclient.JWTExpiry(tr.Token.Value); err == nil && jerr == nil && tr.Token.ExpiresAt.After(exp) {
			t.Fatalf("expiry %s is later than the JWT exp %s", tr.Token.ExpiresAt, exp)
		}
		if k, err := bloq.ParseCreatedKey(body); err == nil && (k.ClientID == "" || k.Secret == "") {
			t.Fatalf("created key without id or secret")
		}
		_, _ = bloq.ParseKeyList(body)
	})
}

func TestAgainstSimulator(t *testing.T) {
	sim := simulator.New()
	sim.SetLifetimes(simulator.Lifetimes{BloqClient: 11 * time.Minute, BloqAccount: 2 * time.Hour})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	uid := sim.AddBloqUser("me@example.com", "pw")
	kid := sim.AddBloqKey(uid, "cid", "csecret")
	c := bloq.New(apiclient.New(apiclient.Options{Provider: "bloq", BaseURL: srv.URL + simulator.BloqPrefix}), nil)
	ctx := context.Background()

	ct, err := c.ClientToken(ctx, "cid", "csecret")
	if err != nil || ct.RefreshToken == "" || ct.Token.ExpirySource != apiclient.FromJWT {
		t.Fatalf("client token: %+v %v", ct, err)
	}
	if d := time.Until(ct.Token.ExpiresAt); d < 10*time.Minute || d > 11*time.Minute {
		t.Errorf("client token expires in %s", d)
	}
	rt, err := c.Refresh(ctx, sim.BloqRefreshToken(kid))
	if err != nil || rt.RefreshToken != "" {
		t.Fatalf("refresh: %+v %v", rt, err)
	}
	acct, err := c.AccountToken(ctx, "me@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AccountToken(ctx, "me@example.com", "bad"); apiclient.StatusOf(err) != 401 {
		t.Errorf("bad password: %v", err)
	}
	// Only an account token works for the Accounts service.
	if _, err := c.ListClientKeys(ctx, ct.Token.Value); apiclient.StatusOf(err) != 401 {
		t.Errorf("list with a client token: %v", err)
	}
	nk, err := c.CreateClientKey(ctx, acct.Token.Value)
	if err != nil || nk.ClientID == "" || nk.Secret == "" {
		t.Fatalf("create: %+v %v", nk, err)
	}
	keys, err := c.ListClientKeys(ctx, acct.Token.Value)
	if err != nil || len(keys) != 2 {
		t.Fatalf("list: %+v %v", keys, err)
	}
	if err := c.DeleteClientKey(ctx, acct.Token.Value, bloq.KeyIDFor(keys, "cid")); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteClientKey(ctx, acct.Token.Value, bloq.KeyIDFor(keys, "cid")); err != nil {
		t.Errorf("deleting a gone key should count as done: %v", err)
	}
	if _, err := c.ClientToken(ctx, "cid", "csecret"); apiclient.StatusOf(err) != 401 {
		t.Errorf("deleted key still mints: %v", err)
	}
	if _, err := c.ClientToken(ctx, nk.ClientID, nk.Secret); err != nil {
		t.Errorf("new key: %v", err)
	}
}
