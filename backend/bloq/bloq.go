// Package bloq is an HTTP client for the BloqCloud Accounts service: client access tokens
// (client keys or a refresh token), account access tokens (HTTP Basic login), and the client
// key calls used to rotate keys. No Vault imports.
package bloq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
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

// Account login paths under the base URL, both POST with HTTP Basic and no body: LoginPath is
// the current page's (seed 002), LegacyLoginPath the older page's (seed 001), which an older
// deployment may still serve instead.
const (
	LoginPath       = "/auth"
	LegacyLoginPath = "/auth/login"
)

// Client talks to one Accounts service. Safe for concurrent use.
type Client struct {
	api *apiclient.Client
	now func() time.Time
	// legacyLogin records which login path last worked after the other answered 404 or 405:
	// true for LegacyLoginPath. Later logins try that path first.
	legacyLogin atomic.Bool
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
// expiry field: the expiry is the JWT's exp, else issued plus lifetime. An exp claim that is
// present but unreadable is an error wrapping apiclient.ErrBadExpiry, never a default; the
// response's refreshToken, if any, is returned with that error, and with a missing or
// unusable accessToken, all the same.
func ParseTokenResponse(body []byte, issued time.Time, lifetime time.Duration) (TokenResponse, error) {
	var v struct {
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return TokenResponse{}, apiclient.ErrNotJSON
	}
	if v.AccessToken == "" {
		// As below: a refresh token the answer carries may be the only valid one now.
		return TokenResponse{RefreshToken: v.RefreshToken}, errors.New("no accessToken")
	}
	tok, err := apiclient.NewToken(v.AccessToken, time.Time{}, issued, lifetime)
	if err != nil {
		// The refresh token may be the only valid one now: it goes back with the error.
		return TokenResponse{RefreshToken: v.RefreshToken}, fmt.Errorf("accessToken: %w", err)
	}
	return TokenResponse{Token: tok, RefreshToken: v.RefreshToken}, nil
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
		Secrets: []string{clientSecret}, Identifiers: []string{clientID},
	}, ClientTokenLifetime)
}

// Refresh mints a Client Access Token from a Client Refresh Token (grant refreshToken).
// RefreshToken in the result is set only if the provider issued a new one. It is sent once,
// never retried: if the provider replaces the refresh token on use, a retry after a lost
// answer would present a token it already replaced.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (TokenResponse, error) {
	return c.token(ctx, apiclient.Request{
		Call: "refresh token", Method: http.MethodPost, Path: "/auth/token",
		Body:    map[string]string{"grantType": "refreshToken", "refreshToken": refreshToken},
		NoRetry: true, Secrets: []string{refreshToken},
	}, ClientTokenLifetime)
}

// AccountToken mints an Account Access Token with HTTP Basic login, no body: POST
// LoginPath, or, when that answers 404 or 405 (an older deployment), POST LegacyLoginPath.
// The Client remembers the path that worked and tries it first from then on (falling back
// to the other the same way). Any other answer, a 401 included, is final.
func (c *Client) AccountToken(ctx context.Context, username, password string) (TokenResponse, error) {
	first, second := LoginPath, LegacyLoginPath
	if c.legacyLogin.Load() {
		first, second = second, first
	}
	tr, err := c.login(ctx, first, username, password)
	if s := apiclient.StatusOf(err); s != http.StatusNotFound && s != http.StatusMethodNotAllowed {
		return tr, err
	}
	if tr, err = c.login(ctx, second, username, password); err == nil {
		c.legacyLogin.Store(second == LegacyLoginPath)
	}
	return tr, err
}

func (c *Client) login(ctx context.Context, path, username, password string) (TokenResponse, error) {
	return c.token(ctx, apiclient.Request{
		Call: "account token", Method: http.MethodPost, Path: path,
		BasicUser: username, BasicPass: password, Secrets: []string{password}, Identifiers: []string{username},
	}, AccountTokenLifetime)
}
