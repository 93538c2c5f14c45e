package simulator

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// The lag mode: a credential update answers 204 at once and takes effect later. Until then
// the old pair mints and its tokens work, and the new pair is refused; at the switch, every
// token minted before dies (as on an immediate update).
func TestOffBlocksLag(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := New()
	s.SetClock(clock)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	id := s.AddOffBlocks("6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f", "old")
	mint := func(key, secret string) (string, int) {
		resp, err := http.Post(srv.URL+OffBlocksPrefix+"/auth/token", "application/json",
			bytes.NewReader([]byte(`{"apiKey":"`+key+`","apiSecret":"`+secret+`"}`)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		tok := ""
		if resp.StatusCode == 200 {
			tok = string(bytes.Split(bytes.Split(b.Bytes(), []byte(`"token":"`))[1], []byte(`"`))[0])
		}
		return tok, resp.StatusCode
	}
	bearer, _ := mint("6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f", "old")
	s.SetOffBlocksLag(10 * time.Second)
	req, _ := http.NewRequest(http.MethodPut, srv.URL+OffBlocksPrefix+"/auth/credentials",
		bytes.NewReader([]byte(`{"apiKey":"7c9e6679-7425-40de-944b-e07fc1f90ae7","apiSecret":"new"}`)))
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT: %v %v", err, resp)
	}
	resp.Body.Close()
	if _, code := mint("7c9e6679-7425-40de-944b-e07fc1f90ae7", "new"); code != 401 || !s.OffBlocksPending(id) {
		t.Fatal("the new pair works before the lag has passed")
	}
	if _, err := s.Validate(bearer); err != nil {
		t.Fatalf("an old token died before the switch: %v", err)
	}
	mu.Lock()
	now = now.Add(10 * time.Second)
	mu.Unlock()
	if _, code := mint("7c9e6679-7425-40de-944b-e07fc1f90ae7", "new"); code != 200 {
		t.Fatal("the new pair does not work after the lag")
	}
	if _, code := mint("6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f", "old"); code != 401 {
		t.Fatal("the old pair still works after the switch")
	}
	if _, err := s.Validate(bearer); err == nil {
		t.Fatal("a token minted before the switch still works")
	}
}
