// Package bloq is an HTTP client for the BloqCloud Accounts service: client access tokens
// (client keys or a refresh token), account access tokens (HTTP Basic login), and the client
// key calls used to rotate keys. No Vault imports.
package bloq

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
)

// Name is the provider's name in config and errors.
const Name = "bloq"

// DefaultBaseURL is the live Accounts service root.
const DefaultBaseURL = "https://accounts.bloq.cloud"

// Documented lifetimes, used only when a token has no readable exp claim.
const (
	ClientTokenLifetime  = time.Hour
	AccountTokenLifetime = 12 * time.Hour
)

// Client talks to one Accounts service. Safe for concurrent use.
type Client struct {
	api *apiclient.Client
	now func() time.Time
}

// New wraps an apiclient configured for Bloq. now is the clock used when a token lacks an
// exp claim (nil means time.Now).
func New(api *apiclient.Client, now func() time.Time) *Client {
	if now == nil {
		now = time.Now
	}
	return &Client{api: api, now: now}
}

// TokenResponse is a decoded 200 from /auth/token or /auth.
type TokenResponse struct {
	Token apiclient.Token
	// RefreshToken is set when the provider returned one.
	RefreshToken string
}

// ParseTokenResponse decodes {"accessToken": ..., "refreshToken"?: ...}. Bloq returns no
// expiry field: the expiry is the JWT's exp, else issued plus lifetime.
func ParseTokenResponse(body []byte, issued time.Time, lifetime time.Duration) (TokenResponse, error) {
	var v struct {
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return TokenResponse{}, apiclient.ErrNotJSON
	}
	if v.AccessToken == "" {
		return TokenResponse{}, errors.New("no accessToken")
	}
	exp, src := apiclient.ExpiryOrDefault(v.AccessToken, issued, lifetime)
	return TokenResponse{
		Token:        apiclient.Token{Value: v.AccessToken, ExpiresAt: exp, ExpirySource: src},
		RefreshToken: v.RefreshToken,
	}, nil
}

func (c *Client) token(ctx context.Context, req apiclient.Request, lifetime time.Duration) (TokenResponse, error) {
	issued := c.now()
	return apiclient.Call(ctx, c.api, req, func(b []byte) (TokenResponse, error) { return ParseTokenResponse(b, issued, lifetime) })
}

// ClientToken mints a Client Access Token from client keys (grant clientCredentials).
func (c *Client) ClientToken(ctx context.Context, clientID, clientSecret string) (TokenResponse, error) {
	return c.token(ctx, apiclient.Request{
		Call: "client token", Method: http.MethodPost, Path: "/auth/token",
		Body: map[string]string{"grantType": "clientCredentials", "clientId": clientID,
			"clientSecret": clientSecret},
		Secrets: []string{clientSecret},
	}, ClientTokenLifetime)
}

// Refresh mints a Client Access Token from a Client Refresh Token (grant refreshToken).
// RefreshToken in the result is set only if the provider issued a new one.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (TokenResponse, error) {
	return c.token(ctx, apiclient.Request{
		Call: "refresh token", Method: http.MethodPost, Path: "/auth/token",
		Body:    map[string]string{"grantType": "refreshToken", "refreshToken": refreshToken},
		Secrets: []string{refreshToken},
	}, ClientTokenLifetime)
}

// AccountToken mints an Account Access Token with HTTP Basic login: POST /auth, no body.
func (c *Client) AccountToken(ctx context.Context, username, password string) (TokenResponse, error) {
	return c.token(ctx, apiclient.Request{
		Call: "account token", Method: http.MethodPost, Path: "/auth",
		BasicUser: username, BasicPass: password, Secrets: []string{password},
	}, AccountTokenLifetime)
}
