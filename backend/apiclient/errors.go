package apiclient

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// Error is a failed provider call. Its text names the provider, the call and the HTTP status
// and carries at most a short, redacted excerpt of the provider's body: never a credential
// or a token.
type Error struct {
	Provider string
	Call     string
	Method   string
	Path     string
	// Status is the HTTP status, or 0 when no response arrived.
	Status int
	// Detail is a short, redacted excerpt of the provider's error body.
	Detail string
	// RetryAfter is the provider's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Err is the underlying failure when there is no usable status (transport, decoding).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s (%s %s)", e.Provider, e.Call, e.Method, e.Path)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": status %d", e.Status)
		if t := http.StatusText(e.Status); t != "" {
			fmt.Fprintf(&b, " %s", t)
		}
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %q", e.Detail)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// IsRejected reports whether the provider answered and definitively refused the credential
// or the request (400, 401 or 403). Anything else (no answer, 5xx, 429, a malformed body)
// leaves the outcome unknown.
func IsRejected(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.Err != nil {
		return false
	}
	switch e.Status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	return false
}

// StatusOf returns the HTTP status of a provider error, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

const excerptMax = 120

var jwtLike = regexp.MustCompile(`[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}`)
var longToken = regexp.MustCompile(`[A-Za-z0-9+/=_-]{24,}`)

// Excerpt returns a short, single-line, printable excerpt of an error body with every given
// secret, anything shaped like a JWT, and any long opaque string (24+ key-like characters)
// replaced by "[redacted]". A body of JSON with an error message uses that message. If a
// secret cannot be removed (replacements that splice into a new occurrence), the excerpt is
// dropped altogether.
func Excerpt(body []byte, secrets ...string) string {
	s := normalize(errorMessage(body))
	for _, sec := range secrets {
		for _, form := range []string{sec, normalize(sec)} {
			if len(form) < 4 {
				continue
			}
			for i := 0; strings.Contains(s, form); i++ {
				if i == 8 {
					return "[excerpt withheld]"
				}
				s = strings.ReplaceAll(s, form, "[redacted]")
			}
		}
	}
	s = jwtLike.ReplaceAllString(s, "[redacted]")
	s = longToken.ReplaceAllString(s, "[redacted]")
	if len(s) > excerptMax {
		s = strings.ToValidUTF8(s[:excerptMax], "") + "…"
	}
	for _, sec := range secrets { // the guarantee, whatever the replacements spliced together
		if f := normalize(sec); (len(sec) >= 4 && strings.Contains(s, sec)) || (len(f) >= 4 && strings.Contains(s, f)) {
			return "[excerpt withheld]"
		}
	}
	return s
}

// normalize makes text single-line and printable, with runs of white space folded.
func normalize(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.ToValidUTF8(s, " "))
	return strings.Join(strings.Fields(s), " ")
}
