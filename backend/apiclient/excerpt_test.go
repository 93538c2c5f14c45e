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
