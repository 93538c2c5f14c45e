package apiclient

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token is a freshly minted provider token and the instant the provider says it expires.
type Token struct {
	// Value is the token exactly as the provider issued it.
	Value string
	// ExpiresAt is the provider's expiry (UTC).
	ExpiresAt time.Time
	// ExpirySource says where ExpiresAt came from: "provider" (a field of the response),
	// "jwt" (the token's exp claim) or "default" (the documented lifetime).
	ExpirySource string
}

// Expiry sources.
const (
	FromProvider = "provider"
	FromJWT      = "jwt"
	FromDefault  = "default"
)

// ErrNotJSON means a 2xx body is not the JSON object the contract describes.
var ErrNotJSON = errors.New("body is not the expected JSON")

// ErrNoExpiry means a token carries no readable exp claim.
var ErrNoExpiry = errors.New("token has no readable exp claim")

// JWTExpiry reads the exp claim of a JWT without verifying its signature: the plugin holds
// no key, and only passes the token on. It fails for anything that is not a JWT with a
// numeric exp.
func JWTExpiry(token string) (time.Time, error) {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		return time.Time{}, ErrNoExpiry
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return time.Time{}, ErrNoExpiry
	}
	return exp.UTC(), nil
}

// ExpiryOrDefault returns the token's JWT exp, or issuedAt plus the documented lifetime when
// the token has none.
func ExpiryOrDefault(token string, issuedAt time.Time, lifetime time.Duration) (time.Time, string) {
	if exp, err := JWTExpiry(token); err == nil {
		return exp, FromJWT
	}
	return issuedAt.Add(lifetime).UTC(), FromDefault
}

// errorMessage picks the human message out of a JSON error body (OpsNow's
// {"error":{"message":...}}, or a top-level "message", "error" or "error_description"), or
// returns the body as text.
func errorMessage(body []byte) string {
	var v struct {
		Message     string          `json:"message"`
		Description string          `json:"error_description"`
		Error       json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil {
		return string(body)
	}
	var nested struct {
		Message string `json:"message"`
	}
	var flat string
	switch {
	case len(v.Error) > 0 && json.Unmarshal(v.Error, &nested) == nil && nested.Message != "":
		return nested.Message
	case len(v.Error) > 0 && json.Unmarshal(v.Error, &flat) == nil && flat != "":
		if v.Description != "" {
			return flat + ": " + v.Description
		}
		return flat
	case v.Message != "":
		return v.Message
	case v.Description != "":
		return v.Description
	}
	return string(body)
}
