package apiclient

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token is a freshly minted provider token and the instant the provider says it expires.
type Token struct {
	// Value is the token exactly as the provider issued it.
	Value string
	// ExpiresAt is the provider's expiry (UTC): the earlier of the response's expiry field and
	// the token's JWT exp when both exist (see NewToken).
	ExpiresAt time.Time
	// ExpirySource says where ExpiresAt came from: "provider" (a field of the response),
	// "jwt" (the token's exp claim) or "default" (the documented lifetime, used only when
	// neither exists).
	ExpirySource string
	// CappedFrom, when set, is the later expiry the response claimed: further away than the
	// documented lifetime of the token's kind allows, so ExpiresAt is issued plus that
	// lifetime instead (see NewToken). Callers log it.
	CappedFrom time.Time
}

// Expiry sources.
const (
	FromProvider = "provider"
	FromJWT      = "jwt"
	FromDefault  = "default"
)

// ErrNotBearer means a token holds a character RFC 6750 §2.1 does not allow in a Bearer
// token. Its text never quotes the token.
var ErrNotBearer = errors.New("the token is not a valid Bearer token (RFC 6750 §2.1 allows only letters, digits, " +
	"-._~+/ and trailing =)")

// ValidBearer reports whether v is a b64token (RFC 6750 §2.1): one or more letters, digits
// or "-._~+/", then any number of "=". Such a token is safe wherever a consumer writes it:
// an HTTP header, a shell line, a file a template renders (no white space, no line break, no
// control character, no quote, only ASCII).
func ValidBearer(v string) bool {
	body := strings.TrimRight(v, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

// ErrNotJSON means a 2xx body is not the JSON object the contract describes.
var ErrNotJSON = errors.New("body is not the expected JSON")

// ErrNoExpiry means a token is not a JWT, or is one without an exp claim (or with a null
// one): the documented lifetime applies.
var ErrNoExpiry = errors.New("token has no exp claim")

// ErrBadExpiry means a token is a JWT whose exp claim is present but unreadable: not a JSON
// number of seconds after 1970 and before year 10000. Callers
// report it as a malformed response, never as a default lifetime.
var ErrBadExpiry = errors.New("token's exp claim is present but unreadable")

// ErrBadExpiryField means a response's expiry field is present (not JSON null) but
// unreadable. Callers report it as a malformed response, never as a default lifetime.
var ErrBadExpiryField = errors.New("expiry field is present but unreadable")

// jwtParser reads tokens without verifying them; padded segments are tolerated.
var jwtParser = jwt.NewParser(jwt.WithPaddingAllowed())

// JWTExpiry reads the exp claim of a JWT with golang-jwt's unverified parse: the plugin
// holds no key, and only passes the token on. A token counts as a JWT when its header and
// claims segments decode to JSON objects (an algorithm golang-jwt does not know, or an odd
// signature segment, does not matter here). It returns ErrNoExpiry for anything else, or
// for a JWT without an exp claim (or a null one), and ErrBadExpiry for a JWT whose exp is
// present but not a JSON number of seconds after 1970 and before year 10000 (RFC 7519's
// NumericDate; a string is refused). On success the time is UTC, truncated to the second.
func JWTExpiry(token string) (time.Time, error) {
	claims := jwt.MapClaims{}
	_, _, err := jwtParser.ParseUnverified(token, claims)
	if err != nil && len(claims) == 0 {
		return time.Time{}, ErrNoExpiry // not a JWT: its claims never decoded
	}
	if raw, ok := claims["exp"]; !ok || raw == nil {
		return time.Time{}, ErrNoExpiry
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil || exp.Unix() <= 0 || exp.Unix() > maxUnixSeconds {
		return time.Time{}, ErrBadExpiry
	}
	return exp.UTC(), nil
}

// NewToken builds the Token for value from the response's expiry field and the token's own
// JWT exp. fieldExpiry is the instant the response's expiry field gave, or the zero time when
// the response has none. When both exist the earlier wins (a lease must never outlive the
// token, whichever source is wrong), and ExpirySource names the one chosen (FromProvider on a
// tie). Only when neither exists is the expiry the documented lifetime after issued
// (FromDefault). Whatever the source, an expiry later than that is capped there, and
// CappedFrom keeps the one claimed: lifetime is the longest a token of its kind is documented
// to live, so no lease, and no shared token, outlives it. The lifetime counts from issued
// floored to the second, as providers count (a JWT's iat and exp are whole seconds): from the
// fraction, a capped expiry could be up to a second later than the token's real one. A value
// that is not a valid Bearer token gives ErrNotBearer, and a JWT whose exp is present but
// unreadable ErrBadExpiry: report either as a malformed response.
func NewToken(value string, fieldExpiry, issued time.Time, lifetime time.Duration) (Token, error) {
	if !ValidBearer(value) {
		return Token{}, ErrNotBearer
	}
	tok := Token{Value: value}
	exp, err := JWTExpiry(value)
	switch {
	case errors.Is(err, ErrBadExpiry):
		return Token{}, err
	case err == nil && (fieldExpiry.IsZero() || exp.Before(fieldExpiry)):
		tok.ExpiresAt, tok.ExpirySource = exp, FromJWT
	case !fieldExpiry.IsZero():
		tok.ExpiresAt, tok.ExpirySource = fieldExpiry.UTC(), FromProvider
	}
	limit := issued.Truncate(time.Second).Add(lifetime).UTC()
	switch {
	case tok.ExpiresAt.IsZero():
		tok.ExpiresAt, tok.ExpirySource = limit, FromDefault
	case tok.ExpiresAt.After(limit):
		tok.CappedFrom, tok.ExpiresAt = tok.ExpiresAt, limit
	}
	return tok, nil
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
