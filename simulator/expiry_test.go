package simulator

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// SetNoExpiry: the answer has no expiresAt and the token is no JWT, yet it validates, dies at
// the expiry it would have had, and is refused once its credential is replaced.
func TestNoExpiry(t *testing.T) {
	s := New()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	const key = "6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f"
	s.AddOffBlocks(key, "secret")
	var asked []string
	s.SetNoExpiry(func(provider, kind string) bool { asked = append(asked, provider+"/"+kind); return true })
	tok, exp := mintOffBlocks(t, srv.URL, key, "secret")
	if exp != 0 || strings.Count(tok, ".") != 0 || strings.Join(asked, ",") != "offblocks/access" {
		t.Fatalf("token %q with expiresAt %d (asked %v): want an opaque token and no expiry", tok, exp, asked)
	}
	if _, err := s.Validate(tok); err != nil {
		t.Fatalf("the opaque token does not validate: %v", err)
	}
	if real, ok := s.RealExpiry(tok); !ok || !real.Equal(now.Add(time.Hour)) {
		t.Fatalf("real expiry %v %v, want %v", real, ok, now.Add(time.Hour))
	}
	now = now.Add(time.Hour)
	if _, err := s.Validate(tok); err == nil {
		t.Fatal("the opaque token outlives the expiry it would have had")
	}
	s.SetNoExpiry(nil)
	if _, exp := mintOffBlocks(t, srv.URL, key, "secret"); exp == 0 {
		t.Fatal("no expiry after the mode was turned off")
	}
}

// BloqDeletedClientIDs lists deleted keys in the order of their deletes.
func TestBloqDeletedClientIDs(t *testing.T) {
	s := New()
	uid := s.AddBloqUser("a@example.com", "pw")
	s.AddBloqKey(uid, "id1", "s1")
	k2 := s.AddBloqKey(uid, "id2", "s2")
	s.mu.Lock()
	tok, _ := s.issue("bloq", "account", uid, 0, time.Hour)
	s.mu.Unlock()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, id := range []string{k2, "id1"} {
		req := httptest.NewRequest("DELETE", srv.URL+BloqPrefix+"/users/me/client-keys/"+id, nil)
		req.RequestURI = ""
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("delete %s: %v %v", id, resp, err)
		}
		resp.Body.Close()
	}
	if got := strings.Join(s.BloqDeletedClientIDs(), ","); got != "id2,id1" {
		t.Fatalf("deleted %q, want id2,id1", got)
	}
}
