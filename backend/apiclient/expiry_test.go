package apiclient

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

// sampleJWT is the JWT the provider packages' tests use; its exp is 1795951800.
const sampleJWT = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTU5NTE4MDB9.sig"

// TestSampleJWTExpiry pins what the tests' comments say about sampleJWT's exp.
func TestSampleJWTExpiry(t *testing.T) {
	exp, err := JWTExpiry(sampleJWT)
	if want := time.Date(2026, 11, 29, 11, 30, 0, 0, time.UTC); err != nil || !exp.Equal(want) {
		t.Fatalf("exp = %s (%v), want %s", exp, err, want)
	}
}

// jwtWith returns an unsigned-looking JWT with the given header and claims JSON.
func jwtWith(header, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + ".c2ln"
}

func padded(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }

func TestJWTExpiry(t *testing.T) {
	hs := `{"alg":"HS256"}`
	cases := []struct {
		name, token string
		want        time.Time
		err         error
	}{
		{"opaque", "opaque-token", time.Time{}, ErrNoExpiry},
		{"three parts, not base64 JSON", "a.b.c", time.Time{}, ErrNoExpiry},
		{"claims not an object", jwtWith(hs, `[1]`), time.Time{}, ErrNoExpiry},
		{"no exp", jwtWith(hs, `{"sub":"x"}`), time.Time{}, ErrNoExpiry},
		{"null exp", jwtWith(hs, `{"exp":null}`), time.Time{}, ErrNoExpiry},
		{"numeric exp", jwtWith(hs, `{"exp":1795951800}`), time.Unix(1795951800, 0), nil},
		// Truncated to the second: never later than the token's own exp.
		{"fractional exp", jwtWith(hs, `{"exp":1795951800.5}`), time.Unix(1795951800, 0), nil},
		// RFC 7519's NumericDate is a JSON number: a string is present but unreadable.
		{"numeric string exp", jwtWith(hs, `{"exp":"1795951800"}`), time.Time{}, ErrBadExpiry},
		{"unregistered alg", jwtWith(`{"alg":"XYZ1"}`, `{"exp":1795951800}`), time.Unix(1795951800, 0), nil},
		{"padded segments", padded(hs) + "." + padded(`{"exp":1795951800 }`) + ".c2ln", time.Unix(1795951800, 0), nil},
		{"word exp", jwtWith(hs, `{"exp":"soon"}`), time.Time{}, ErrBadExpiry},
		{"object exp", jwtWith(hs, `{"exp":{"at":1}}`), time.Time{}, ErrBadExpiry},
		{"bool exp", jwtWith(hs, `{"exp":true}`), time.Time{}, ErrBadExpiry},
		{"zero exp", jwtWith(hs, `{"exp":0}`), time.Time{}, ErrBadExpiry},
		{"negative exp", jwtWith(hs, `{"exp":-1}`), time.Time{}, ErrBadExpiry},
		{"past year 9999", jwtWith(hs, `{"exp":1e20}`), time.Time{}, ErrBadExpiry},
		{"empty string exp", jwtWith(hs, `{"exp":""}`), time.Time{}, ErrBadExpiry},
	}
	for _, tc := range cases {
		exp, err := JWTExpiry(tc.token)
		if !errors.Is(err, tc.err) || (tc.err == nil && (err != nil || !exp.Equal(tc.want))) {
			t.Errorf("%s: got %s, %v; want %s, %v", tc.name, exp, err, tc.want, tc.err)
		}
	}
}

func TestNewToken(t *testing.T) {
	jwtAt := time.Unix(1795951800, 0).UTC()
	issued := jwtAt.Add(-30 * time.Minute) // the samples lie within the hour's lifetime
	earlier, later := jwtAt.Add(-time.Minute), jwtAt.Add(time.Minute)
	bad := jwtWith(`{"alg":"HS256"}`, `{"exp":"soon"}`)
	cases := []struct {
		name, value string
		field       time.Time
		want        time.Time
		source      string
		err         error
	}{
		{"field only", "opaque", later, later, FromProvider, nil},
		{"jwt only", sampleJWT, time.Time{}, jwtAt, FromJWT, nil},
		{"field earlier", sampleJWT, earlier, earlier, FromProvider, nil},
		{"jwt earlier", sampleJWT, later, jwtAt, FromJWT, nil},
		{"tie", sampleJWT, jwtAt, jwtAt, FromProvider, nil},
		{"neither", "opaque", time.Time{}, issued.Add(time.Hour), FromDefault, nil},
		{"unreadable exp, no field", bad, time.Time{}, time.Time{}, "", ErrBadExpiry},
		{"unreadable exp with a field", bad, later, time.Time{}, "", ErrBadExpiry},
	}
	for _, tc := range cases {
		tok, err := NewToken(tc.value, tc.field, issued, time.Hour)
		if !errors.Is(err, tc.err) || (tc.err == nil && (err != nil || tok.Value != tc.value ||
			!tok.ExpiresAt.Equal(tc.want) || tok.ExpirySource != tc.source)) {
			t.Errorf("%s: got %+v, %v; want %s (%s), %v", tc.name, tok, err, tc.want, tc.source, tc.err)
		}
	}
}
