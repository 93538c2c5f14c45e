package apiclient

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
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
	// Detail is a short, redacted excerpt of the provider's error body. It keeps the
	// identifiers the call carried where the provider echoed them (see ExcerptKeeping).
	Detail string
	// Identifiers are the identifiers the call carried (Request.Identifiers): names of an
	// account, not secrets, which Error's text may show (in Detail). A caller that answers
	// someone who may not learn them (a creds reader) redacts them from the text.
	Identifiers []string
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
	if e.Detail != "" && !saysStatus(e.Detail, e.Status) {
		fmt.Fprintf(&b, ": %q", e.Detail)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// saysStatus reports whether a provider's error text says no more than the status does
// ("Unauthorized", "401 unauthorized."): the error leaves it out rather than repeat it.
func saysStatus(detail string, status int) bool {
	d := strings.ToLower(strings.Trim(detail, " .!"))
	text := strings.ToLower(http.StatusText(status))
	return d == strconv.Itoa(status) || (text != "" && (d == text || d == strconv.Itoa(status)+" "+text))
}

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
// secret (and any start of one, minPrefix bytes or longer, that the body echoes), anything
// shaped like a JWT, and any long opaque string (24+ key-like characters)
// replaced by "[redacted]". A body of JSON with an error message uses that message. If a
// secret cannot be removed (replacements that splice into a new occurrence), the excerpt is
// dropped altogether.
func Excerpt(body []byte, secrets ...string) string {
	return ExcerptKeeping(body, nil, secrets...)
}

// ExcerptKeeping is Excerpt, except that the given identifiers (an OffBlocks apiKey, a Bloq
// clientId or username: names of an account, not secrets, and shown on config reads anyway)
// stay where the provider echoed them, though they look like opaque strings. Only a whole
// identifier of 4 or more characters is kept, one glued to no character an opaque string is
// made of (see keepWhole): one inside a longer run is redacted with the run, as if it were
// not listed. Secrets are redacted first, and the excerpt is withheld if one survives
// whatever the identifiers hold.
func ExcerptKeeping(body []byte, identifiers []string, secrets ...string) string {
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
			s = redactPrefixes(s, form)
		}
	}
	// Identifiers step out of the text as placeholders the patterns cannot match (normalize
	// turned any private-use character of the body into a space), and come back after.
	var kept []string
	for _, id := range identifiers {
		if id = normalize(id); len(id) >= 4 {
			var n int
			if s, n = keepWhole(s, id, len(kept)); n > 0 {
				kept = append(kept, id)
			}
		}
	}
	s = jwtLike.ReplaceAllString(s, "[redacted]")
	s = longToken.ReplaceAllString(s, "[redacted]")
	for i, id := range kept {
		s = strings.ReplaceAll(s, placeholder(i), id)
	}
	if len(s) > excerptMax {
		s = strings.ToValidUTF8(s[:excerptMax], "") + "…"
	}
	for _, sec := range secrets { // the guarantee, whatever the replacements spliced together
		for _, form := range []string{sec, normalize(sec)} {
			if (len(form) >= 4 && strings.Contains(s, form)) || (len(form) >= minPrefix && strings.Contains(s, form[:minPrefix])) {
				return "[excerpt withheld]"
			}
		}
	}
	return s
}

// minPrefix is the shortest start of a secret that an excerpt redacts where the provider
// echoed it cut short ("apiSecret 0123456789abcdef0123... is invalid").
const minPrefix = 8

// redactPrefixes replaces each run of s that is a start of sec, minPrefix bytes or longer,
// with "[redacted]".
func redactPrefixes(s, sec string) string {
	if len(sec) < minPrefix {
		return s
	}
	head := sec[:minPrefix]
	var b strings.Builder
	for {
		j := strings.Index(s, head)
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		k := minPrefix
		for j+k < len(s) && k < len(sec) && s[j+k] == sec[k] {
			k++
		}
		b.WriteString(s[:j])
		b.WriteString("[redacted]")
		s = s[j+k:]
	}
}

// placeholder stands for the i-th kept identifier: private-use characters around a number.
func placeholder(i int) string { return "\ue000" + strconv.Itoa(i) + "\ue001" }

// keepWhole replaces each whole occurrence of id in s with placeholder(i), and says how many
// it replaced. Whole means glued to no token character (one longToken or jwtLike takes for
// part of an opaque string: an unlisted token run into an identifier, as in
// "<id>-Zk3pQ9xW2mLtR7", must go with it), except for two delimiters: an "=" after a field
// name on the left ("apiKey=<id>") and a full stop that ends a sentence on the right.
func keepWhole(s, id string, i int) (string, int) {
	var b strings.Builder
	n := 0
	for {
		j := strings.Index(s, id)
		if j < 0 {
			b.WriteString(s)
			return b.String(), n
		}
		end := j + len(id)
		if !delimitedLeft(s, j) || !delimitedRight(s, end) {
			b.WriteString(s[:j+1])
			s = s[j+1:]
			continue
		}
		b.WriteString(s[:j])
		b.WriteString(placeholder(i))
		s = s[end:]
		n++
	}
}

// maxFieldName bounds the name before an "=" that delimits an identifier: short enough that
// no JWT fits in it.
const maxFieldName = 20

// delimitedLeft reports whether an identifier may start at s[j]: after no token character,
// or after an "=" that follows a field name (letters, "_", "-" and "." only, at most
// maxFieldName of them, so no digit, "+", "/" or "=" of an opaque string's tail).
func delimitedLeft(s string, j int) bool {
	if j == 0 || !isTokenChar(s[j-1]) {
		return true
	}
	if s[j-1] != '=' {
		return false
	}
	k := j - 1
	for k > 0 && j-1-k <= maxFieldName && isTokenChar(s[k-1]) { // no further: a longer run fails
		k--
	}
	if j-1-k > maxFieldName {
		return false
	}
	for _, c := range []byte(s[k : j-1]) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// delimitedRight reports whether an identifier may end at s[end]: before no token character,
// or before a full stop that no token character follows.
func delimitedRight(s string, end int) bool {
	if end == len(s) || !isTokenChar(s[end]) {
		return true
	}
	return s[end] == '.' && (end+1 == len(s) || !isTokenChar(s[end+1]))
}

// isTokenChar reports whether c can be part of an opaque string: longToken's characters and
// the dots of jwtLike.
func isTokenChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("+/=_-.", c) >= 0
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
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
