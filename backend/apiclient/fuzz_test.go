package apiclient

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func FuzzJWTExpiry(f *testing.F) {
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTU5NTE4MDB9.sig")
	f.Add("eyJhbGciOiJub25lIn0.eyJleHAiOiIxIn0.")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOi0xfQ.sig")
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOm51bGx9.sig")
	f.Fuzz(func(t *testing.T, token string) {
		exp, err := JWTExpiry(token)
		if err == nil && exp.IsZero() {
			t.Fatal("an exp claim was read as the zero time")
		}
		if err != nil && err != ErrNoExpiry && err != ErrBadExpiry {
			t.Fatalf("unexpected error %v", err)
		}
		if err == nil && (exp.Unix() <= 0 || exp.Year() > 9999) {
			t.Fatalf("implausible exp %s", exp)
		}
		// The shared expiry rule: never later than a readable exp, whatever the field says.
		// Only a valid Bearer token is returned, and never an expiry past issued + lifetime
		// (issued two hours before the field, so that the cap bites).
		field := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		issued := field.Add(-2 * time.Hour)
		tok, terr := NewToken(token, field, issued, time.Hour)
		if !ValidBearer(token) {
			if !errors.Is(terr, ErrNotBearer) {
				t.Fatalf("NewToken(%q) = %+v, %v: want ErrNotBearer", token, tok, terr)
			}
			return
		}
		if (terr != nil) != (err == ErrBadExpiry) || (err == nil && tok.ExpiresAt.After(exp)) ||
			(terr == nil && tok.ExpiresAt.After(issued.Add(time.Hour))) ||
			(terr == nil && !tok.CappedFrom.IsZero() && !tok.ExpiresAt.Equal(issued.Add(time.Hour))) {
			t.Fatalf("NewToken = %+v, %v with exp %s, %v", tok, terr, exp, err)
		}
	})
}

func FuzzFieldParsers(f *testing.F) {
	for _, s := range []string{`1795950000`, `"1795950000"`, `1795950000000`, `"2026-11-23T12:00:00Z"`, `1e400`, `-1`, `"x"`, `null`, `3600.5`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if at, ok := Instant(json.RawMessage(raw)); ok && (at.IsZero() || at.Year() > 9999) {
			t.Fatalf("implausible instant %s", at)
		}
		if d, ok := Duration(json.RawMessage(raw)); ok && (d <= 0 || d > maxRelative) {
			t.Fatalf("implausible duration %s", d)
		}
	})
}

// FuzzExcerpt: whatever the body and the identifiers kept, no secret shows and the excerpt
// stays short.
func FuzzExcerpt(f *testing.F) {
	f.Add([]byte(`{"error":{"message":"bad key s3cr3t-value"}}`), "s3cr3t-value", "")
	f.Add([]byte("plain s3cr3t"), "s3cr3t", "")
	f.Add([]byte("apiKey 3fa85f64-5717-4562-b3fc-2c963f66afa6 secret s3cr3t-value"), "s3cr3t-value", "3fa85f64-5717-4562-b3fc-2c963f66afa6")
	f.Add([]byte("id ab-s3cr3t-value-cd"), "s3cr3t-value", "ab-s3cr3t-value-cd")
	f.Add([]byte("session 3fa85f64-5717-4562-b3fc-2c963f66afa6-Zk3pQ9xW2mLtR7"), "s3cr3t-value", "3fa85f64-5717-4562-b3fc-2c963f66afa6")
	f.Add([]byte("apiKey=3fa85f64-5717-4562-b3fc-2c963f66afa6. token=s3cr3t-value"), "s3cr3t-value", "3fa85f64-5717-4562-b3fc-2c963f66afa6")
	f.Fuzz(func(t *testing.T, body []byte, secret, id string) {
		ex := ExcerptKeeping(body, []string{id}, secret)
		if len(secret) >= 4 && strings.Contains(ex, secret) && ex != "[excerpt withheld]" {
			t.Fatalf("excerpt %q keeps the secret %q", ex, secret)
		}
		if len(secret) >= minPrefix && strings.Contains(ex, secret[:minPrefix]) && ex != "[excerpt withheld]" {
			t.Fatalf("excerpt %q keeps the start of the secret %q", ex, secret)
		}
		if len(ex) > excerptMax+len("…") {
			t.Fatalf("excerpt of %d bytes", len(ex))
		}
	})
}
