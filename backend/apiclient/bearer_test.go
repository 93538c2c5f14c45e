package apiclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Only RFC 6750 §2.1's b64token is a Bearer token: what a template renders into a file, a
// shell line or a header must not carry a line break, a control character, white space, a
// quote or anything beyond ASCII.
func TestValidBearer(t *testing.T) {
	for _, ok := range []string{"a", "abc.DEF-123_~+/", "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln", "YWJj==", "x="} {
		if !ValidBearer(ok) {
			t.Errorf("ValidBearer(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "=", "==", "abc\nexport LD_PRELOAD=/tmp/x.so\r\n\x1b[2J", "a b", "a\tb", "a\x00b",
		"a=b", "tok\"en", "tok'en", "t$(id)", "tok;en", "t\xffok", "tökén", "a\u2028b", "abc\r", " abc"} {
		if ValidBearer(bad) {
			t.Errorf("ValidBearer(%q) = true", bad)
		}
	}
}

// A provider's 200 whose token is no valid Bearer token is a malformed answer that names the
// provider and the call, and never quotes the token.
func TestMalformedTokenRefusedUnquoted(t *testing.T) {
	const hostile = "abc\nexport LD_PRELOAD=/tmp/x.so\r\n\x1b[2J"
	for _, value := range []string{hostile, "abc def", "\xff\xfe"} {
		_, err := NewToken(value, time.Time{}, time.Now(), time.Hour)
		if !errors.Is(err, ErrNotBearer) {
			t.Fatalf("NewToken(%q) = %v, want ErrNotBearer", value, err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"token":"abc\nexport LD_PRELOAD=/tmp/x.so\r\n\u001b[2J"}`))
	}))
	defer srv.Close()
	c := New(Options{Provider: "testprov", BaseURL: srv.URL})
	_, err := Call(context.Background(), c, Request{Call: "mint token", Method: http.MethodPost, Path: "/t"},
		func(b []byte) (Token, error) {
			return NewToken(strings.Split(string(b), `"`)[3], time.Time{}, time.Now(), time.Hour)
		})
	if err == nil || !strings.Contains(err.Error(), "testprov: mint token (POST /t): status 200 OK: malformed response: "+
		"the token is not a valid Bearer token") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "LD_PRELOAD") || strings.Contains(err.Error(), "abc") || IsRejected(err) {
		t.Fatalf("the error quotes the token, or calls it a refusal: %v", err)
	}
}

// An expiry further away than the documented lifetime of the token's kind is capped at the
// issue time plus that lifetime, whatever its source, and CappedFrom keeps the one claimed;
// one within the lifetime is left alone.
func TestNewTokenCapsFarExpiry(t *testing.T) {
	issued := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	limit := issued.Add(time.Hour)
	year9999 := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	far := jwtWith(`{"alg":"HS256"}`, `{"exp":253402300799}`)
	near := jwtWith(`{"alg":"HS256"}`, `{"exp":1795953600}`) // 2026-11-29
	cases := []struct {
		name, value string
		field       time.Time
		want        time.Time
		source      string
		capped      time.Time
	}{
		{"field in year 9999", "opaque", year9999, limit, FromProvider, year9999},
		{"jwt exp in year 9999", far, time.Time{}, limit, FromJWT, year9999},
		{"both far: the earlier is capped", near, year9999, limit, FromJWT, time.Unix(1795953600, 0).UTC()},
		{"one second past", "opaque", limit.Add(time.Second), limit, FromProvider, limit.Add(time.Second)},
		{"exactly the lifetime", "opaque", limit, limit, FromProvider, time.Time{}},
		{"within", "opaque", issued.Add(10 * time.Minute), issued.Add(10 * time.Minute), FromProvider, time.Time{}},
		{"far jwt, near field", far, issued.Add(time.Minute), issued.Add(time.Minute), FromProvider, time.Time{}},
	}
	for _, tc := range cases {
		tok, err := NewToken(tc.value, tc.field, issued, time.Hour)
		if err != nil || !tok.ExpiresAt.Equal(tc.want) || tok.ExpirySource != tc.source || !tok.CappedFrom.Equal(tc.capped) {
			t.Errorf("%s: got %+v, %v; want %s (%s) capped from %s", tc.name, tok, err, tc.want, tc.source, tc.capped)
		}
	}
}

// A provider that echoes the start of a secret (8 bytes or more) shows none of it in an
// excerpt; a shorter start, or other text, stays.
func TestExcerptRedactsSecretPrefixes(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef01234567"
	cases := []struct{ body, want string }{
		{"apiSecret " + secret[:20] + "... is invalid", "apiSecret [redacted]... is invalid"},
		{"apiSecret " + secret[:8] + " is invalid", "apiSecret [redacted] is invalid"},
		{"apiSecret " + secret[:7] + " is invalid", "apiSecret " + secret[:7] + " is invalid"},
		{"a " + secret[:12] + "XYZ and " + secret[:9], "a [redacted]XYZ and [redacted]"},
		{`{"message":"bad secret '` + secret[:30] + `'"}`, "bad secret '[redacted]'"},
	}
	for _, c := range cases {
		if got := Excerpt([]byte(c.body), secret); got != c.want {
			t.Errorf("excerpt of %q\n got %q\nwant %q", c.body, got, c.want)
		}
	}
}

// The documented lifetime counts from the issue time floored to the second, as a provider
// counts (its exp is iat plus the lifetime, in whole seconds): a cap, or a default, counted
// from the fraction could end up to a second after the token.
func TestLifetimeCountsFromTheWholeSecond(t *testing.T) {
	issued := time.Date(2026, 11, 23, 12, 0, 0, 700_000_000, time.UTC)
	whole := time.Date(2026, 11, 23, 13, 0, 0, 0, time.UTC)
	capped, err := NewToken("opaque", issued.Add(25*time.Hour), issued, time.Hour)
	if err != nil || !capped.ExpiresAt.Equal(whole) || capped.CappedFrom.IsZero() {
		t.Fatalf("capped: %+v, %v; want %s", capped, err, whole)
	}
	def, err := NewToken("opaque", time.Time{}, issued, time.Hour)
	if err != nil || !def.ExpiresAt.Equal(whole) || def.ExpirySource != FromDefault {
		t.Fatalf("default: %+v, %v; want %s", def, err, whole)
	}
}
