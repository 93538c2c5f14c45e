package offblocks_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// An error body that echoes the credentials keeps the apiKey (an identifier, shown on config
// reads anyway) and redacts the apiSecret and the bearer, on a mint and on an update.
func TestErrorKeepsAPIKeyRedactsSecret(t *testing.T) {
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	const key, secret = "6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f", "0123456789abcdef0123456789abcdef01234567"
	sim.AddOffBlocks(key, secret)
	c := offblocks.New(apiclient.New(apiclient.Options{Provider: "offblocks", BaseURL: srv.URL + simulator.OffBlocksPrefix}), nil)
	ctx := context.Background()

	sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 401,
		Body: `{"message":"apiKey ` + key + ` refused, apiSecret ` + secret + `"}`})
	_, err := c.Mint(ctx, offblocks.Credentials{APIKey: key, APISecret: secret})
	if msg := err.Error(); !strings.Contains(msg, "apiKey "+key+" refused") || strings.Contains(msg, secret) {
		t.Errorf("mint: %s, want the apiKey and not the apiSecret", msg)
	}

	tok, err := c.Mint(ctx, offblocks.Credentials{APIKey: key, APISecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	next, _ := offblocks.GenerateCredentials()
	sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 400,
		Body: `{"message":"apiKey ` + next.APIKey + ` ` + next.APISecret + ` ` + tok.Value + `"}`})
	err = c.UpdateCredentials(ctx, tok.Value, next)
	if msg := err.Error(); !strings.Contains(msg, "apiKey "+next.APIKey) || strings.Contains(msg, next.APISecret) ||
		strings.Contains(msg, tok.Value) {
		t.Errorf("update: %s, want the new apiKey and neither the apiSecret nor the bearer", msg)
	}
}
