package offblocks_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
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
		want       time.Time
		source     string
		wantErr    bool
	}{
		{"unix seconds", `{"token":"t","expiresAt":1795950000,"tokenType":"Bearer"}`, time.Unix(1795950000, 0), apiclient.FromProvider, false},
		{"unix milliseconds", `{"token":"t","expiresAt":1795950000000}`, time.Unix(1795950000, 0), apiclient.FromProvider, false},
		{"numeric string", `{"token":"t","expiresAt":"1795950000"}`, time.Unix(1795950000, 0), apiclient.FromProvider, false},
		{"RFC 3339", `{"token":"t","expiresAt":"2026-11-29T11:05:00Z"}`, issued.Add(20 * time.Minute), apiclient.FromProvider, false},
		{"no expiresAt: JWT exp", `{"token":"` + jwtExp + `"}`, jwtExpAt, apiclient.FromJWT, false},
		{"null expiresAt: JWT exp", `{"token":"` + jwtExp + `","expiresAt":null}`, jwtExpAt, apiclient.FromJWT, false},
		{"expiresAt earlier than JWT exp", `{"token":"` + jwtExp + `","expiresAt":1795950000}`, time.Unix(1795950000, 0), apiclient.FromProvider, false},
		{"JWT exp earlier than expiresAt", `{"token":"` + jwtExp + `","expiresAt":1795953600}`, jwtExpAt, apiclient.FromJWT, false},
		{"nothing: documented hour", `{"token":"opaque"}`, issued.Add(time.Hour), apiclient.FromDefault, false},
		{"null expiresAt: documented hour", `{"token":"opaque","expiresAt":null}`, issued.Add(time.Hour), apiclient.FromDefault, false},
		{"tokenType bearer", `{"token":"t","expiresAt":1795950000,"tokenType":"bearer"}`, time.Unix(1795950000, 0), apiclient.FromProvider, false},
		{"tokenType BEARER", `{"token":"t","expiresAt":1795950000,"tokenType":"BEARER"}`, time.Unix(1795950000, 0), apiclient.FromProvider, false},
		{"tokenType missing", `{"token":"t","expiresAt":1795950000}`, time.Unix(1795950000, 0), apiclient.FromProvider, false},
		{"no token", `{"expiresAt":1795950000}`, time.Time{}, "", true},
		{"not bearer", `{"token":"t","expiresAt":1795950000,"tokenType":"MAC"}`, time.Time{}, "", true},
		{"garbage", `<html>`, time.Time{}, "", true},
		{"unreadable expiresAt", `{"token":"t","expiresAt":"soon"}`, time.Time{}, "", true},
		{"unreadable expiresAt with JWT exp", `{"token":"` + jwtExp + `","expiresAt":"soon"}`, time.Time{}, "", true},
		{"negative expiresAt", `{"token":"t","expiresAt":-5}`, time.Time{}, "", true},
		{"empty expiresAt", `{"token":"t","expiresAt":""}`, time.Time{}, "", true},
		{"object expiresAt", `{"token":"t","expiresAt":{}}`, time.Time{}, "", true},
		{"unreadable JWT exp", `{"token":"` + badExp + `"}`, time.Time{}, "", true},
		{"unreadable JWT exp with expiresAt", `{"token":"` + badExp + `","expiresAt":1795950000}`, time.Time{}, "", true},
	}
	for _, tc := range cases {
		tok, err := offblocks.ParseTokenResponse([]byte(tc.body), issued)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if !tc.wantErr && (!tok.ExpiresAt.Equal(tc.want) || tok.ExpirySource != tc.source) {
			t.Errorf("%s: expiry %s (%s), want %s (%s)", tc.name, tok.ExpiresAt, tok.ExpirySource, tc.want, tc.source)
		}
	}
}

// TestUnreadableExpiryIsMalformed checks that an unreadable expiry reaches the caller as a
// malformed response, not a token with a default lifetime.
func TestUnreadableExpiryIsMalformed(t *testing.T) {
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 200, Body: `{"token":"t","expiresAt":"soon"}`})
	c := offblocks.New(apiclient.New(apiclient.Options{Provider: "offblocks", BaseURL: srv.URL + simulator.OffBlocksPrefix}), nil)
	_, err := c.Mint(context.Background(), offblocks.Credentials{APIKey: "6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f", APISecret: "s"})
	if !errors.Is(err, apiclient.ErrBadExpiryField) || !strings.Contains(err.Error(), "malformed response") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseTokenResponse(f *testing.F) {
	f.Add([]byte(`{"token":"t","expiresAt":1795950000,"tokenType":"Bearer"}`))
	f.Add([]byte(`{"token":"a.b.c","expiresAt":"x"}`))
	f.Add([]byte(`{"token":"t","expiresAt":1e400}`))
	f.Add([]byte(`{"token":"` + jwtExp + `","expiresAt":1795953600}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := offblocks.ParseTokenResponse(body, issued)
		if err == nil && (tok.Value == "" || tok.ExpiresAt.IsZero()) {
			t.Fatalf("accepted a response without a token or expiry: %+v", tok)
		}
		if exp, jerr := apiclient.JWTExpiry(tok.Value); err == nil && jerr == nil && tok.ExpiresAt.After(exp) {
			t.Fatalf("expiry %s is later than the JWT exp %s", tok.ExpiresAt, exp)
		}
	})
}

func TestGenerateCredentials(t *testing.T) {
	hex40 := regexp.MustCompile(`^[0-9a-f]{40}$`)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		c, err := offblocks.GenerateCredentials()
		if err != nil {
			t.Fatal(err)
		}
		u, err := uuid.Parse(c.APIKey)
		if err != nil || u.Version() != 4 || offblocks.ValidateAPIKey(c.APIKey) != nil {
			t.Fatalf("apiKey %q is not a UUID v4", c.APIKey)
		}
		if !hex40.MatchString(c.APISecret) || seen[c.APISecret] {
			t.Fatalf("apiSecret is not fresh 40-hex")
		}
		seen[c.APISecret] = true
	}
}

func TestAgainstSimulator(t *testing.T) {
	sim := simulator.New()
	sim.SetLifetimes(simulator.Lifetimes{OffBlocks: 7 * time.Minute})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	const key, secret = "6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f", "0123456789abcdef0123456789abcdef01234567"
	id := sim.AddOffBlocks(key, secret)
	c := offblocks.New(apiclient.New(apiclient.Options{Provider: "offblocks", BaseURL: srv.URL + simulator.OffBlocksPrefix}), nil)
	ctx := context.Background()

	tok, err := c.Mint(ctx, offblocks.Credentials{APIKey: key, APISecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tok.ExpiresAt); d < 6*time.Minute || d > 7*time.Minute || tok.ExpirySource != apiclient.FromProvider {
		t.Errorf("expiry in %s from %s", d, tok.ExpirySource)
	}
	if _, err := c.Mint(ctx, offblocks.Credentials{APIKey: key, APISecret: "wrong"}); !apiclient.IsRejected(err) || apiclient.StatusOf(err) != 401 {
		t.Errorf("wrong secret: %v", err)
	}
	next, _ := offblocks.GenerateCredentials()
	if err := c.UpdateCredentials(ctx, tok.Value, next); err != nil {
		t.Fatal(err)
	}
	if k, s := sim.OffBlocksPair(id); k != next.APIKey || s != next.APISecret {
		t.Fatal("the provider did not take the new pair")
	}
	if _, err := sim.Validate(tok.Value); err == nil {
		t.Error("the bearer used for the update still works")
	}
	if err := c.UpdateCredentials(ctx, tok.Value, next); apiclient.StatusOf(err) != 401 {
		t.Errorf("update with a dead bearer: %v", err)
	}
	if _, err := c.Mint(ctx, offblocks.Credentials{APIKey: key, APISecret: secret}); apiclient.StatusOf(err) != 401 {
		t.Errorf("old pair after update: %v", err)
	}
}
