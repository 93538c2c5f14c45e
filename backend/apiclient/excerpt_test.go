package apiclient

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Identifiers the provider echoes stay in the excerpt, wherever they stand, though they look
// like opaque strings; secrets and tokens beside them are still redacted.
func TestExcerptKeepsIdentifiers(t *testing.T) {
	const (
		apiKey   = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
		clientID = "0123456789abcdef0123456789abcdef01234567"
		secret   = "ffeeddccbbaa99887766554433221100ffeeddcc"
		opaque   = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo"
		jwt      = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2ln"
	)
	cases := []struct{ body, want string }{
		{`{"message":"apiKey ` + apiKey + ` rejected: bad apiSecret ` + secret + `"}`,
			"apiKey " + apiKey + " rejected: bad apiSecret [redacted]"},
		{`{"error":"invalid_client","error_description":"clientId=` + clientID + `"}`,
			"invalid_client: clientId=" + clientID},
		{`key "` + apiKey + `" token ` + jwt + ` other ` + opaque,
			`key "` + apiKey + `" token [redacted] other [redacted]`},
		// Inside a longer opaque string it is no whole identifier: the string goes.
		{`token x` + apiKey + `y`, "token [redacted]"},
	}
	for _, c := range cases {
		if got := ExcerptKeeping([]byte(c.body), []string{apiKey, clientID}, secret); got != c.want {
			t.Errorf("excerpt of %s\n got %q\nwant %q", c.body, got, c.want)
		}
	}
	// Without identifiers, an apiKey is redacted like any opaque string.
	if got := Excerpt([]byte("apiKey " + apiKey + " rejected")); got != "apiKey [redacted] rejected" {
		t.Errorf("Excerpt = %q", got)
	}
	// A secret inside an identifier is redacted all the same.
	if got := ExcerptKeeping([]byte("id abcd-"+secret+" bad"), []string{"abcd-" + secret}, secret); strings.Contains(got, secret) {
		t.Errorf("excerpt %q shows the secret", got)
	}
}

// The credentials of a call's Authorization header are redacted from an excerpt of its
// answer though the caller did not list them, even when too short to look opaque; its
// identifiers are kept.
func TestErrorRedactsAuthorizationKeepsIdentifiers(t *testing.T) {
	const user, pass, bearer = "9b2f4c1e8a7d6b5c4e3f2a1b0c9d8e7f6a5b4c3d", "pw12", "tok-4567"
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		_, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ") // the credential alone
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("user " + u + " pass " + p + " auth " + cred))
	}))
	defer srv.Close()
	c := New(Options{Provider: "testprov", BaseURL: srv.URL})
	for _, r := range []Request{
		{Call: "login", Method: http.MethodPost, Path: "/", BasicUser: user, BasicPass: pass, Identifiers: []string{user}},
		{Call: "keys", Method: http.MethodGet, Path: "/", Bearer: bearer},
	} {
		_, err := c.Do(context.Background(), r)
		msg := err.Error()
		for _, bad := range []string{pass, bearer, basic} {
			if strings.Contains(msg, bad) {
				t.Errorf("%s: %s shows %q", r.Call, msg, bad)
			}
		}
		if r.BasicUser != "" && !strings.Contains(msg, "user "+user) {
			t.Errorf("%s: %s lacks the username", r.Call, msg)
		}
	}
}

// An identifier glued to a token character (one longToken or jwtLike takes for part of an
// opaque string) is no whole identifier: the run it is in is redacted as if it were not
// listed, so no unlisted token run into it shows. "=" after a field name, and a full stop
// ending a sentence, still delimit it.
func TestExcerptIdentifierGluedToToken(t *testing.T) {
	const apiKey, tail = "3fa85f64-5717-4562-b3fc-2c963f66afa6", "Zk3pQ9xW2mLtR7"
	ids := []string{apiKey}
	for _, c := range []struct{ body, want string }{
		{"session " + apiKey + "-" + tail, "session [redacted]"},
		{tail + "vB_" + apiKey, "[redacted]"},
	} {
		if got := ExcerptKeeping([]byte(c.body), ids); got != c.want {
			t.Errorf("excerpt of %s\n got %q\nwant %q", c.body, got, c.want)
		}
	}
	var glued []string
	for _, sep := range []string{"-", "_", "+", "/", "=", "."} {
		glued = append(glued, "session "+apiKey+sep+tail, "session "+tail+"vB"+sep+apiKey)
	}
	glued = append(glued,
		"session "+tail+"vB=="+apiKey,                        // base64 padding is no field name
		"session abcdefghijklmnopqrstu="+apiKey,              // nor a run longer than maxFieldName
		"session "+apiKey+".."+tail, "session x."+apiKey+".", // a dot before a token character
	)
	for _, body := range glued {
		got, want := ExcerptKeeping([]byte(body), ids), Excerpt([]byte(body))
		if got != want || strings.Contains(got, apiKey) {
			t.Errorf("excerpt of %s\n got %q\nwant %q, as with no identifier", body, got, want)
		}
	}
	for _, c := range []struct{ body, want string }{
		{"apiKey=" + apiKey + "&secret=" + tail + "vBZk3pQ9xW2mLtR7vB", "apiKey=" + apiKey + "&[redacted]"},
		{`{"detail":{"apiKey":"` + apiKey + `"}}`, `{"detail":{"apiKey":"` + apiKey + `"}}`},
		{"bad api-key:" + apiKey + ". Retry", "bad api-key:" + apiKey + ". Retry"},
		{"unknown key " + apiKey + ".", "unknown key " + apiKey + "."},
		{"(" + apiKey + ")," + apiKey, "(" + apiKey + ")," + apiKey},
	} {
		if got := ExcerptKeeping([]byte(c.body), ids); got != c.want {
			t.Errorf("excerpt of %s\n got %q\nwant %q", c.body, got, c.want)
		}
	}
}

// The boundary test knows every character of an opaque string: longToken's and jwtLike's dot.
func TestTokenCharsMatchPatterns(t *testing.T) {
	for c := 0; c < 256; c++ {
		run := strings.Repeat(string(rune(c)), 24)
		inPattern := c < 128 && (longToken.MatchString(run) || c == '.')
		if isTokenChar(byte(c)) != inPattern {
			t.Errorf("isTokenChar(%q) = %v, patterns say %v", rune(c), !inPattern, inPattern)
		}
	}
}

// An identifier shorter than 4 characters is not kept: the excerpt is the one with no
// identifier, whatever stands around it.
func TestExcerptIgnoresShortIdentifiers(t *testing.T) {
	for _, id := range []string{"u", "ab", "bob"} {
		for _, body := range []string{
			"user " + id + " unknown",
			"session abcdefghijklmnopqrst=" + id, // a 24-character run with the id
			"session Zk3pQ9xW2mLtR7vB_" + id + "Zk3pQ9xW2mLtR7vB",
			"user=" + id + " token " + strings.Repeat("Zk3pQ9xW", 4),
		} {
			if got, want := ExcerptKeeping([]byte(body), []string{id}), Excerpt([]byte(body)); got != want {
				t.Errorf("id %q, excerpt of %s\n got %q\nwant %q", id, body, got, want)
			}
		}
	}
}

// Whatever the replacements splice together (a "[redacted]" or the truncation mark next to
// text, an identifier kept where it would have been redacted), an excerpt that would show a
// secret is withheld altogether.
func TestExcerptWithheldWhenSecretSurvives(t *testing.T) {
	const apiKey = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	// The identifier ends exactly where the excerpt is cut, and the secret is its tail with
	// the truncation mark: no such text was in the body (nor the secret's first 8 bytes,
	// which would be redacted before the cut).
	cut := strings.Repeat("ab ", 28) + apiKey + " rejected"
	for _, c := range []struct {
		body, secret string
		ids          []string
	}{
		{cut, apiKey[30:] + "…", []string{apiKey}},
		{"key Zk3pQ9xW2mLtR7vBZk3pQ9xW2mLtR7vB! done", "ted]! done", nil},
	} {
		if strings.Contains(c.body, c.secret) {
			t.Fatalf("the body %q holds the secret %q already", c.body, c.secret)
		}
		if got := ExcerptKeeping([]byte(c.body), c.ids, c.secret); got != "[excerpt withheld]" {
			t.Errorf("excerpt of %s with secret %q = %q, want it withheld", c.body, c.secret, got)
		}
	}
}

// The Basic credential is redacted though too short to look opaque ("u:pw12" encodes to 8
// characters), as is the password, with a username too short to keep.
func TestErrorRedactsShortBasicCredential(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, p, _ := r.BasicAuth()
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("pass " + p + " auth " + r.Header.Get("Authorization")))
	}))
	defer srv.Close()
	c := New(Options{Provider: "testprov", BaseURL: srv.URL})
	for _, cred := range [][2]string{{"u", "pw12"}, {"ab", "hunter2"}, {"bob", "s3cr"}} {
		user, pass := cred[0], cred[1]
		basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		_, err := c.Do(context.Background(), Request{Call: "login", Method: http.MethodPost, Path: "/",
			BasicUser: user, BasicPass: pass, Identifiers: []string{user}})
		if err == nil {
			t.Fatal("no error")
		}
		msg := err.Error()
		for _, bad := range []string{pass, basic} {
			if strings.Contains(msg, bad) {
				t.Errorf("%s:%s: %s shows %q", user, pass, msg, bad)
			}
		}
	}
}
