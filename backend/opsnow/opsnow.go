// Package opsnow is an HTTP client for the OpsNow API-key token endpoint. Its response field
// names are undocumented, so the parser accepts every shape providers.md lists. No Vault
// imports.
package opsnow

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
)

// Name is the provider's name in config and errors.
const Name = "opsnow"

// DefaultBaseURL is the live API root.
const DefaultBaseURL = "https://api.opsnow.io"

// DefaultLifetime is the documented lifetime (3600 s), used only when the response gives no
// expiry and the token has no JWT exp.
const DefaultLifetime = 3600 * time.Second

// TokenPath is the mint endpoint under the base URL.
const TokenPath = "/platform/v2/identity/api-keys/token"

// Client talks to one OpsNow API host. Safe for concurrent use.
type Client struct {
	api *apiclient.Client
	now func() time.Time
}

// New wraps an apiclient configured for OpsNow. now is the clock for relative expiries
// (nil means time.Now).
func New(api *apiclient.Client, now func() time.Time) *Client {
	if now == nil {
		now = time.Now
	}
	return &Client{api: api, now: now}
}

// Mint exchanges the API key for an access token.
func (c *Client) Mint(ctx context.Context, apiKey string) (apiclient.Token, error) {
	req := apiclient.Request{Call: "mint token", Method: http.MethodPost, Path: TokenPath,
		Body: map[string]string{"apiKey": apiKey}, Secrets: []string{apiKey}}
	issued := c.now()
	return apiclient.Call(ctx, c.api, req, func(b []byte) (apiclient.Token, error) { return ParseTokenResponse(b, issued) })
}

var (
	tokenFields     = []string{"accessToken", "access_token", "token"}
	relativeFields  = []string{"expiresIn", "expires_in"}
	absoluteFields  = []string{"expiresAt", "expires_at"}
	errFailedStatus = errors.New(`status is "fail" or "error"`)
)

// ParseTokenResponse finds the token under "data" or at the top level, named accessToken,
// access_token or token; the expiry as expiresIn/expires_in (seconds from issued) or
// expiresAt/expires_at (absolute), else the JWT exp, else issued plus DefaultLifetime. A
// body whose "status" is "fail" or "error" is an error even with a 200.
func ParseTokenResponse(body []byte, issued time.Time) (apiclient.Token, error) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top == nil {
		return apiclient.Token{}, apiclient.ErrNotJSON
	}
	if s, ok := apiclient.String(top["status"]); ok {
		if s = strings.ToLower(s); s == "fail" || s == "error" {
			return apiclient.Token{}, errFailedStatus
		}
	}
	objects := make([]map[string]json.RawMessage, 0, 2)
	var data map[string]json.RawMessage
	if raw, ok := top["data"]; ok && json.Unmarshal(raw, &data) == nil && data != nil {
		objects = append(objects, data)
	}
	objects = append(objects, top)

	for _, obj := range objects {
		value, ok := first(obj, tokenFields, apiclient.String)
		if !ok {
			continue
		}
		tok := apiclient.Token{Value: value, ExpirySource: apiclient.FromProvider}
		if d, ok := first(obj, relativeFields, apiclient.Duration); ok {
			tok.ExpiresAt = issued.Add(d).UTC()
			return tok, nil
		}
		if t, ok := first(obj, absoluteFields, apiclient.Instant); ok {
			tok.ExpiresAt = t
			return tok, nil
		}
		tok.ExpiresAt, tok.ExpirySource = apiclient.ExpiryOrDefault(value, issued, DefaultLifetime)
		return tok, nil
	}
	return apiclient.Token{}, errors.New("no accessToken, access_token or token")
}

func first[T any](obj map[string]json.RawMessage, names []string, parse func(json.RawMessage) (T, bool)) (T, bool) {
	for _, n := range names {
		if raw, ok := obj[n]; ok {
			if v, ok := parse(raw); ok {
				return v, true
			}
		}
	}
	var zero T
	return zero, false
}
