package bloq_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// An error body that echoes the credentials keeps the identifiers (clientId, username, a
// key's id) and redacts the secrets (clientSecret, password, refresh token, account token).
func TestErrorKeepsIdentifiersRedactsSecrets(t *testing.T) {
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	c := bloq.New(apiclient.New(apiclient.Options{Provider: "bloq", BaseURL: srv.URL + simulator.BloqPrefix}), nil)
	ctx := context.Background()
	const (
		clientID     = "0123456789abcdef0123456789abcdef01234567"
		clientSecret = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
		userID       = "5f0c3a9b-2d1e-4f6a-8b7c-9d0e1f2a3b4c"
		password     = "pw-hunter2"
		refresh      = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyZWZyZXNoIn0.c2lnbmF0dXJlc2ln"
		account      = "acct-tok-0123"
	)
	echo := func(route string, words ...string) {
		sim.Inject(route, simulator.Fault{Status: 401, Body: `{"message":"` + strings.Join(words, " ") + `"}`})
	}
	check := func(call string, err error, keep string, redact ...string) {
		t.Helper()
		msg := err.Error()
		if keep != "" && !strings.Contains(msg, keep) {
			t.Errorf("%s: %s lacks %q", call, msg, keep)
		}
		for _, s := range redact {
			if strings.Contains(msg, s) {
				t.Errorf("%s: %s shows %q", call, msg, s)
			}
		}
	}

	echo(simulator.RouteBloqToken, "clientId", clientID, clientSecret)
	_, err := c.ClientToken(ctx, clientID, clientSecret)
	check("client token", err, "clientId "+clientID, clientSecret)

	echo(simulator.RouteBloqAuth, "user", userID, password)
	_, err = c.AccountToken(ctx, userID, password)
	check("account token", err, "user "+userID, password)

	echo(simulator.RouteBloqToken, "refresh", refresh)
	_, err = c.Refresh(ctx, refresh)
	check("refresh", err, "", refresh, "eyJ")

	echo(simulator.RouteBloqKeysDelete, "key", clientID, "token", account)
	err = c.DeleteClientKey(ctx, account, clientID)
	check("delete client key", err, "key "+clientID, account)
}
