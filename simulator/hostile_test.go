package simulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// mintOffBlocks posts the pair to the simulator and returns the 200's token and expiresAt.
func mintOffBlocks(t *testing.T, url, key, secret string) (string, int64) {
	t.Helper()
	resp, err := http.Post(url+OffBlocksPrefix+"/auth/token", "application/json",
		bytes.NewReader([]byte(`{"apiKey":"`+key+`","apiSecret":"`+secret+`"}`)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token     string `json:"token"`
		ExpiresAt int64  `json:"expiresAt"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		t.Fatalf("mint: status %d", resp.StatusCode)
	}
	return body.Token, body.ExpiresAt
}

// SetHostileTokens: the answer is the normal 200 with the value chosen in place of the
// token, which the simulator never accepts; off again, tokens are real.
func TestHostileTokens(t *testing.T) {
	s := New()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	const key = "6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f"
	s.AddOffBlocks(key, "secret")
	hostile := "abc\nexport LD_PRELOAD=/tmp/x.so\r\n\x1b[2J"
	var seen []string
	s.SetHostileTokens(func(provider, kind string) string {
		seen = append(seen, provider+"/"+kind)
		return hostile
	})
	tok, _ := mintOffBlocks(t, srv.URL, key, "secret")
	if tok != hostile || strings.Join(seen, ",") != "offblocks/access" {
		t.Fatalf("token %q, asked for %v", tok, seen)
	}
	if _, err := s.Validate(tok); err == nil {
		t.Fatal("the hostile value validates")
	}
	s.SetHostileTokens(nil)
	if tok, _ := mintOffBlocks(t, srv.URL, key, "secret"); tok == hostile {
		t.Fatal("still hostile after the mode was turned off")
	} else if _, err := s.Validate(tok); err != nil {
		t.Fatal(err)
	}
}

// SetClaimedExpiry: the token's exp and the answer's expiresAt claim the later instant,
// while the token dies at its real expiry.
func TestClaimedExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := New()
	s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	const key = "6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f"
	s.AddOffBlocks(key, "secret")
	year9999 := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	s.SetClaimedExpiry(func(_, _ string, real time.Time) time.Time {
		if !real.Equal(now.Add(time.Hour)) {
			t.Errorf("real expiry %s", real)
		}
		return year9999
	})
	tok, expiresAt := mintOffBlocks(t, srv.URL, key, "secret")
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil || !c.ExpiresAt.Time.Equal(year9999) ||
		expiresAt != year9999.Unix() {
		t.Fatalf("claims exp %v, expiresAt %d, %v", c.ExpiresAt, expiresAt, err)
	}
	mu.Lock()
	now = now.Add(59 * time.Minute)
	mu.Unlock()
	if _, err := s.Validate(tok); err != nil {
		t.Fatalf("dead before its real expiry: %v", err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if _, err := s.Validate(tok); err == nil {
		t.Fatal("alive past its real expiry")
	}
}
