package offblocks_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// The apiKey is a UUID in its canonical 36-character form, the one OffBlocks shows and
// compares: uuid.Parse also reads other spellings of a UUID (in braces, as a URN, without
// hyphens), which are no apiKey OffBlocks would know, and anything else of 36 characters is
// no UUID at all.
func TestValidateAPIKeyCanonicalFormOnly(t *testing.T) {
	const canonical = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	if err := offblocks.ValidateAPIKey(canonical); err != nil {
		t.Fatalf("%s: %v", canonical, err)
	}
	for _, k := range []string{
		"{" + canonical + "}",
		"urn:uuid:" + canonical,
		strings.ReplaceAll(canonical, "-", ""),
		"3fa85f64-5717-4562-b3fc-2c963f66afaz",
		"3fa85f64+5717+4562+b3fc+2c963f66afa6",
		"",
	} {
		if err := offblocks.ValidateAPIKey(k); err == nil {
			t.Errorf("%q accepted as an apiKey", k)
		}
		if _, err := (offblocks.Driver{}).Validate(offblocks.Credentials{APIKey: k, APISecret: "s"}, true, nil); err == nil {
			t.Errorf("config with api_key %q accepted", k)
		}
	}
}

// errNoEntropy is the failure of a random source that has run dry.
var errNoEntropy = errors.New("entropy source failed")

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errNoEntropy }

// When the apiKey cannot be drawn, GenerateCredentials fails: it must not hand out the
// all-zero UUID (what uuid.NewRandom returns beside its error) as a new apiKey. Not parallel:
// uuid.SetRand is global to the process.
func TestGenerateCredentialsFailsWithoutRandomness(t *testing.T) {
	uuid.SetRand(failingReader{})
	t.Cleanup(func() { uuid.SetRand(nil) })
	c, err := offblocks.GenerateCredentials()
	if !errors.Is(err, errNoEntropy) || c != (offblocks.Credentials{}) {
		t.Fatalf("GenerateCredentials = %+v, %v; want no pair and the source's error", c, err)
	}
}

// A 200 that is not the JSON object the contract describes is apiclient.ErrNotJSON (not a
// missing token, not an unreadable expiry), through the client a malformed response that
// names no secret.
func TestMintNotJSONAnswer(t *testing.T) {
	for _, body := range []string{
		"<html><body>Service temporarily unavailable</body></html>",
		`{"token":"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTU5NTE4MDB9`,
		`{"token":"t","tokenType":7}`,
	} {
		tok, err := offblocks.ParseTokenResponse([]byte(body), issued)
		if !errors.Is(err, apiclient.ErrNotJSON) || tok.Value != "" {
			t.Errorf("%s: %+v, err = %v, want ErrNotJSON", body, tok, err)
		}
	}
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	const key, secret = "6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f", "0123456789abcdef0123456789abcdef01234567"
	sim.AddOffBlocks(key, secret)
	sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Body: "<html><body>Bad gateway</body></html>"})
	c := offblocks.New(apiclient.New(apiclient.Options{Provider: "offblocks", BaseURL: srv.URL + simulator.OffBlocksPrefix}), nil)
	_, err := c.Mint(context.Background(), offblocks.Credentials{APIKey: key, APISecret: secret})
	if !errors.Is(err, apiclient.ErrNotJSON) || !strings.Contains(err.Error(), "malformed response") ||
		strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v, want a malformed response wrapping ErrNotJSON, without the secret", err)
	}
}

// An answer without a token is an error that says so: not ErrNotBearer, which tells the
// operator the provider sent a value that is no Bearer token, nor ErrNotJSON.
func TestParseTokenResponseNoToken(t *testing.T) {
	for _, body := range []string{
		`{"expiresAt":1795950000,"tokenType":"Bearer"}`,
		`{"token":"","expiresAt":1795950000,"tokenType":"Bearer"}`,
		`{"token":null,"tokenType":"Bearer"}`,
	} {
		tok, err := offblocks.ParseTokenResponse([]byte(body), issued)
		if err == nil || tok.Value != "" || errors.Is(err, apiclient.ErrNotBearer) || errors.Is(err, apiclient.ErrNotJSON) {
			t.Errorf("%s: %+v, err = %v, want one that says the token is missing", body, tok, err)
		}
	}
}
