// Package opsnow is an HTTP client for the OpsNow API-key token endpoint. Its response field
// names are undocumented, so the parser accepts every shape providers.md lists. No Vault
// imports.
package opsnow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// Mint exchanges the API key for an access token. The API key is the account's secret (no
// identifier comes with it): redacted from any error, never kept.
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
// access_token or token. In the object that holds the token, every expiry field present
// (expiresIn/expires_in: seconds from issued, at least 1; expiresAt/expires_at: absolute) must
// be readable: one that is present (JSON null counts as absent) but unreadable is an error,
// never a default. The expiry is the earliest of those fields and the JWT's exp, whichever
// exist; without any, issued plus DefaultLifetime. A body whose "status" is "fail" or
// "error" is an error even with a 200.
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
		field, err := fieldExpiry(obj, issued)
		if err != nil {
			return apiclient.Token{}, err
		}
		return apiclient.NewToken(value, field, issued, DefaultLifetime)
	}
	return apiclient.Token{}, errors.New("no accessToken, access_token or token")
}

// fieldExpiry returns the earliest expiry the object's expiry fields give, or the zero time
// when it has none; a field present but unreadable is an error naming the field.
func fieldExpiry(obj map[string]json.RawMessage, issued time.Time) (time.Time, error) {
	var earliest time.Time
	take := func(t time.Time) {
		if earliest.IsZero() || t.Before(earliest) {
			earliest = t
		}
	}
	for _, n := range relativeFields {
		if raw := obj[n]; apiclient.Present(raw) {
			d, ok := apiclient.Duration(raw)
			if !ok {
				return time.Time{}, fmt.Errorf("%s: %w", n, apiclient.ErrBadExpiryField)
			}
			take(issued.Add(d).UTC())
		}
	}
	for _, n := range absoluteFields {
		if raw := obj[n]; apiclient.Present(raw) {
			t, ok := apiclient.Instant(raw)
			if !ok {
				return time.Time{}, fmt.Errorf("%s: %w", n, apiclient.ErrBadExpiryField)
			}
			take(t)
		}
	}
	return earliest, nil
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
