// Package offblocks is an HTTP client for the OffBlocks auth API: mint a token from an API key
// pair, and replace the pair (which invalidates every token issued before). No Vault imports.
package offblocks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
)

// Name is the provider's name in config and errors.
const Name = "offblocks"

// DefaultBaseURL is the live API root.
const DefaultBaseURL = "https://api.offblocks.xyz/v1"

// DefaultLifetime is the documented token lifetime, used only when a response carries
// neither expiresAt nor a JWT exp.
const DefaultLifetime = time.Hour

// SecretLen is the length of a generated apiSecret: 40 lowercase hex characters (160 bits),
// the documented example's shape.
const SecretLen = 40

// Credentials are an integration's API key pair: the provider's credential in the registry,
// stored under the config's api_key and api_secret.
type Credentials struct {
	APIKey    string `json:"api_key,omitempty"`
	APISecret string `json:"api_secret,omitempty"`
}

// Client talks to one OffBlocks environment. Safe for concurrent use.
type Client struct {
	api *apiclient.Client
	now func() time.Time
}

// New wraps an apiclient configured for OffBlocks. now is the clock used when a response
// lacks an expiry (nil means time.Now).
func New(api *apiclient.Client, now func() time.Time) *Client {
	if now == nil {
		now = time.Now
	}
	return &Client{api: api, now: now}
}

// ValidateAPIKey checks that an apiKey is a UUID.
func ValidateAPIKey(k string) error {
	if _, err := uuid.Parse(k); err != nil || len(k) != 36 {
		return errors.New("must be a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6")
	}
	return nil
}

// GenerateCredentials returns a fresh pair: a UUID v4 apiKey and a 40-hex apiSecret, both
// from crypto/rand.
func GenerateCredentials() (Credentials, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return Credentials{}, fmt.Errorf("generate apiKey: %w", err)
	}
	buf := make([]byte, SecretLen/2)
	if _, err := rand.Read(buf); err != nil {
		return Credentials{}, fmt.Errorf("generate apiSecret: %w", err)
	}
	return Credentials{APIKey: id.String(), APISecret: hex.EncodeToString(buf)}, nil
}

type credentialsBody struct {
	APIKey    string `json:"apiKey"`
	APISecret string `json:"apiSecret"`
}

// Mint obtains a token with the pair: POST /auth/token.
func (c *Client) Mint(ctx context.Context, cr Credentials) (apiclient.Token, error) {
	req := apiclient.Request{
		Call: "mint token", Method: http.MethodPost, Path: "/auth/token",
		Body:    credentialsBody{cr.APIKey, cr.APISecret},
		Secrets: []string{cr.APISecret}, Identifiers: []string{cr.APIKey},
	}
	issued := c.now()
	return apiclient.Call(ctx, c.api, req, func(b []byte) (apiclient.Token, error) { return ParseTokenResponse(b, issued) })
}

// ParseTokenResponse decodes a 200 from POST /auth/token. tokenType, compared
// case-insensitively, must be Bearer; a missing one means Bearer. The expiry is the earlier of
// expiresAt (unix seconds, milliseconds or RFC 3339) and the JWT's exp, whichever exist;
// without either, issued plus DefaultLifetime. An expiresAt or exp that is present (JSON null
// counts as absent) but unreadable is an error, never a default.
func ParseTokenResponse(body []byte, issued time.Time) (apiclient.Token, error) {
	var v struct {
		Token     string          `json:"token"`
		ExpiresAt json.RawMessage `json:"expiresAt"`
		TokenType string          `json:"tokenType"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return apiclient.Token{}, apiclient.ErrNotJSON
	}
	if v.Token == "" {
		return apiclient.Token{}, errors.New("no token")
	}
	if v.TokenType != "" && !strings.EqualFold(v.TokenType, "Bearer") {
		return apiclient.Token{}, errors.New("tokenType is not Bearer")
	}
	var field time.Time
	if apiclient.Present(v.ExpiresAt) {
		var ok bool
		if field, ok = apiclient.Instant(v.ExpiresAt); !ok {
			return apiclient.Token{}, fmt.Errorf("expiresAt: %w", apiclient.ErrBadExpiryField)
		}
	}
	return apiclient.NewToken(v.Token, field, issued, DefaultLifetime)
}

// UpdateCredentials replaces the account's pair with next: PUT /auth/credentials, 204. On
// success every token issued before, bearer included, is dead. It is sent once, never
// retried: after a lost response a retry would be refused (its bearer is dead) and misread.
func (c *Client) UpdateCredentials(ctx context.Context, bearer string, next Credentials) error {
	_, err := c.api.Do(ctx, apiclient.Request{
		Call: "update credentials", Method: http.MethodPut, Path: "/auth/credentials",
		Body: credentialsBody{next.APIKey, next.APISecret}, Bearer: bearer, NoRetry: true,
		Secrets: []string{next.APISecret, bearer}, Identifiers: []string{next.APIKey},
	})
	return err
}
