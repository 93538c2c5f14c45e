package simulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// One OffBlocks account lags (SetOffBlocksAccountLag) while another applies its updates at
// once, and a fault with a Caller hits only the requests of that caller's account: the
// other account's requests pass untouched and do not use it up.
func TestOffBlocksAccountLagAndCallerFault(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := New()
	s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	const keyA, keyB = "6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f", "0b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
	idA, idB := s.AddOffBlocks(keyA, "a"), s.AddOffBlocks(keyB, "b")
	bearer := func(key, secret string) string {
		resp, err := http.Post(srv.URL+OffBlocksPrefix+"/auth/token", "application/json",
			bytes.NewReader([]byte(`{"apiKey":"`+key+`","apiSecret":"`+secret+`"}`)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b struct{ Token string }
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&b) != nil {
			t.Fatalf("mint with %s: %d", key, resp.StatusCode)
		}
		return b.Token
	}
	put := func(tok, key, secret string) int {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+OffBlocksPrefix+"/auth/credentials",
			bytes.NewReader([]byte(`{"apiKey":"`+key+`","apiSecret":"`+secret+`"}`)))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	s.SetOffBlocksAccountLag(idB, 10*time.Second)
	s.Inject(RouteOffBlocksCredentials, Fault{Caller: idB, Status: http.StatusBadGateway, AfterApply: true})
	const newA, newB = "7c9e6679-7425-40de-944b-e07fc1f90ae7", "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
	if code := put(bearer(keyA, "a"), newA, "a2"); code != http.StatusNoContent {
		t.Fatalf("account A's update answered %d: the fault of B's caller hit it", code)
	}
	if key, _ := s.OffBlocksPair(idA); key != newA || s.OffBlocksPending(idA) {
		t.Fatalf("account A, which has no lag, holds %s (pending %v)", key, s.OffBlocksPending(idA))
	}
	if code := put(bearer(keyB, "b"), newB, "b2"); code != http.StatusBadGateway {
		t.Fatalf("account B's update answered %d, want the fault's 502", code)
	}
	if pairs := s.OffBlocksPendingPairs(idB); len(pairs) != 1 || pairs[0][0] != newB {
		t.Fatalf("account B's update, lost answer and all, is not pending: %v", pairs)
	}
	if key, _ := s.OffBlocksPair(idB); key != keyB {
		t.Fatalf("account B's update applied before its lag: %s", key)
	}
	mu.Lock()
	now = now.Add(10 * time.Second)
	mu.Unlock()
	if key, _ := s.OffBlocksPair(idB); key != newB || s.OffBlocksPending(idB) {
		t.Fatalf("account B's update did not apply after its lag: %s", key)
	}
	// Zero: B's later updates apply at once again.
	s.SetOffBlocksAccountLag(idB, 0)
	if code := put(bearer(newB, "b2"), keyB, "b3"); code != http.StatusNoContent {
		t.Fatalf("account B's second update answered %d (the fault was used up)", code)
	}
	if key, _ := s.OffBlocksPair(idB); key != keyB {
		t.Fatalf("with its lag set to zero, account B's update did not apply at once: %s", key)
	}
}
