package offblocks_test

import (
	"context"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

var issued = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestParseTokenResponse(t *testing.T) {
	// A JWT whose exp is 2026-11-23T13:30:00Z.
	jwtExp := "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTU5NTE4MDB9.sig"
	cases := []struct {
		name, body string
		want       time.Time
		source     string
		wantErr    bool
	}{
		{"unix seconds", `{"token":"t","expiresAt":1795950000,"tokenType":"Bearer"}`, time.Unix(1795950000, 0), apiclient.FromProvider, false},
		{"unix milliseconds", `{"token":"t","expiresAt":1795950000000}`, time.Unix(1795950000, 0), apiclient.FromProvider, false},
		{"numeric string", `{"token":"t","expiresAt":"1795950000"}`, time.Unix(1795950000, 0), apiclient.FromProvider, false},
		{"RFC 3339", `{"token":"t","expiresAt":"2026-11-23T12:20:00Z"}`, issued.Add(20 * time.Minute), apiclient.FromProvider, false},
		{"no expiresAt: JWT exp", `{"token":"` + jwtExp + `"}`, time.Unix(1795951800, 0), apiclient.FromJWT, false},
		{"nothing: documented hour", `{"token":"opaque"}`, issued.Add(time.Hour), apiclient.FromDefault, false},
		{"no token", `{"expiresAt":1795950000}`, time.Time{}, "", true},
		{"not bearer", `{"token":"t","expiresAt":1795950000,"tokenType":"MAC"}`, time.Time{}, "", true},
		{"garbage", `<html>`, time.Time{}, "", true},
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

func FuzzParseTokenResponse(f *testing.F) {
	f.Add([]byte(`{"token":"t","expiresAt":1795950000,"tokenType":"Bearer"}`))
	f.Add([]byte(`{"token":"a.b.c","expiresAt":"x"}`))
	f.Add([]byte(`{"token":"t","expiresAt":1e400}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := offblocks.ParseTokenResponse(body, issued)
		if err == nil && (tok.Value == "" || tok.ExpiresAt.IsZero()) {
			t.Fatalf("accepted a response without a token or expiry: %+v", tok)
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
