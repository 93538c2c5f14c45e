package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// fakeVault answers GET /v1/apitokens/creds/x as the engine does: a fresh token per read,
// "tok-<n>-<secret part>", with a non-renewable lease; down makes it answer 502 as Vault does
// when the provider is down.
type fakeVault struct {
	mu    sync.Mutex
	reads []time.Time
	lease int           // seconds
	life  time.Duration // the token's life at the provider
	down  bool
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/apitokens/creds/x" || r.Header.Get("X-Vault-Token") != "vault-token" {
		http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
		return
	}
	f.mu.Lock()
	f.reads = append(f.reads, time.Now())
	n, down, lease, life := len(f.reads), f.down, f.lease, f.life
	f.mu.Unlock()
	if down {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(`{"errors":["offblocks: mint token (POST /auth/token): status 503 Service Unavailable"]}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"lease_id": fmt.Sprintf("apitokens/creds/x/%d", n), "lease_duration": lease, "renewable": false,
		"data": map[string]any{"token": tokenN(n), "token_type": "Bearer",
			"expires_at": time.Now().Add(life).UTC().Format(time.RFC3339)},
	})
}

func tokenN(n int) string { return fmt.Sprintf("tok-%d-s3cr3tpart", n) }

func (f *fakeVault) set(fn func()) { f.mu.Lock(); fn(); f.mu.Unlock() }
func (f *fakeVault) readTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.reads...)
}

// syncBuffer is a log sink read while the keeper writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startKeeper runs a keeper of apitokens/creds/x against f with fast backoffs; it stops when
// the test ends. It returns the keeper and its log.
func startKeeper(t *testing.T, f *fakeVault) (*keeper, *syncBuffer) {
	t.Helper()
	srv := httptest.NewServer(f)
	conf := api.DefaultConfig()
	conf.Address, conf.MaxRetries = srv.URL, 0
	client, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken("vault-token")
	logs := &syncBuffer{}
	k := newKeeper(client, "apitokens/creds/x", slog.New(slog.NewTextHandler(logs, nil)))
	k.retry = backoff{min: 20 * time.Millisecond, max: 100 * time.Millisecond}
	k.refusedRetry = backoff{min: 400 * time.Millisecond, max: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		srv.Close()
		conf.HttpClient.CloseIdleConnections()
		if strings.Contains(logs.String(), "s3cr3t") {
			t.Errorf("a token is in the log:\n%s", logs)
		}
	})
	return k, logs
}

// waitToken waits up to limit for the keeper to hold want.
func waitToken(t *testing.T, k *keeper, want string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if tok, _ := k.Token(); tok == want {
			return
		}
		if time.Now().After(deadline) {
			tok, ok := k.Token()
			t.Fatalf("after %s the keeper holds %q (%v), want %q", limit, tok, ok, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Reads that fail (Vault answers 502: the provider is down) are retried with growing waits,
// logged without the token; the first good answer is held.
func TestKeeperRetriesWithBackoff(t *testing.T) {
	f := &fakeVault{lease: 60, life: time.Hour, down: true}
	k, logs := startKeeper(t, f)
	for deadline := time.Now().Add(5 * time.Second); len(f.readTimes()) < 4; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d reads in 5s against a failing Vault, want retries", len(f.readTimes()))
		}
	}
	if _, ok := k.Token(); ok {
		t.Fatal("the keeper holds a token although every read failed")
	}
	f.set(func() { f.down = false })
	reads := f.readTimes()
	waitToken(t, k, tokenN(len(reads)+1), 2*time.Second)

	// 20 ms doubling, each wait at least half its nominal value: 10, 20, 40 ms.
	for i, min := range []time.Duration{10, 20, 40} {
		if gap := reads[i+1].Sub(reads[i]); gap < min*time.Millisecond {
			t.Errorf("retry %d came %s after the previous read, want at least %dms", i+1, gap, min)
		}
	}
	if n := strings.Count(logs.String(), "reading the token failed; retrying"); n < 4 || !strings.Contains(logs.String(), "status=502") {
		t.Errorf("want a logged retry with the status per failed read:\n%s", logs)
	}
}

// A new token is read before the lease ends (the LifetimeWatcher's signal), not long before,
// and the keeper holds a token at every moment in between.
func TestKeeperReadsBeforeTheLeaseEnds(t *testing.T) {
	f := &fakeVault{lease: 2, life: time.Hour}
	k, _ := startKeeper(t, f)
	waitToken(t, k, tokenN(1), 2*time.Second)
	for len(f.readTimes()) < 3 {
		if _, ok := k.Token(); !ok {
			t.Fatal("the keeper held no token between two reads")
		}
		time.Sleep(10 * time.Millisecond)
	}
	reads := f.readTimes()
	for i := 1; i < 3; i++ {
		if gap := reads[i].Sub(reads[i-1]); gap < time.Second || gap >= 2*time.Second {
			t.Errorf("read %d came %s after the previous one; want within the 2s lease, after half of it", i+1, gap)
		}
	}
}

// A refusal of the token in hand reads a new one at once; a refusal of a token no longer in
// hand does nothing; a second refusal in a row waits for the refusal backoff first.
func TestKeeperReadsAtOnceWhenTheTokenIsRefused(t *testing.T) {
	f := &fakeVault{lease: 60, life: time.Hour}
	k, logs := startKeeper(t, f)
	waitToken(t, k, tokenN(1), 2*time.Second)

	k.Refused("an old token")
	time.Sleep(200 * time.Millisecond)
	if n := len(f.readTimes()); n != 1 {
		t.Fatalf("refusing a token not in hand caused %d reads", n-1)
	}
	k.Refused(tokenN(1))
	waitToken(t, k, tokenN(2), time.Second) // at once: the lease has 60 s to go
	k.Refused(tokenN(2))
	waitToken(t, k, tokenN(3), 2*time.Second)
	reads := f.readTimes()
	if gap := reads[2].Sub(reads[1]); gap < 200*time.Millisecond { // refusedRetry: 400 ms, at least half
		t.Errorf("a second refusal in a row read again after %s, want the backoff first", gap)
	}
	if !strings.Contains(logs.String(), "refused a fresh token again") {
		t.Errorf("the backoff after repeated refusals is not logged:\n%s", logs)
	}
}

// While Vault cannot give a new token, the one in hand stays in use until its own expiry,
// then none is handed out until Vault answers again.
func TestKeeperKeepsTheTokenUntilItExpiresWhileVaultIsDown(t *testing.T) {
	f := &fakeVault{lease: 1, life: 3 * time.Second}
	k, _ := startKeeper(t, f)
	waitToken(t, k, tokenN(1), 2*time.Second)
	f.set(func() { f.down = true })
	// The token in hand is the one the n-th read served (a re-read may have come before Vault
	// went down). Its expires_at is that read's time plus 3 s, truncated to the second: at
	// least 2 s after the read was recorded. (Counting from now instead failed on a busy
	// machine, where waitToken itself took most of those 2 s.)
	held, _ := k.Token()
	var n int
	if _, err := fmt.Sscanf(held, "tok-%d-", &n); err != nil || n < 1 || n > len(f.readTimes()) {
		t.Fatalf("the keeper holds %q, not a token the fake served", held)
	}
	exp := f.readTimes()[n-1].Add(2 * time.Second)
	for time.Now().Before(exp) {
		if tok, _ := k.Token(); tok != held {
			t.Fatalf("with Vault down the keeper dropped its unexpired token %q (holds %q)", held, tok)
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline := time.Now().Add(3 * time.Second)
	for _, ok := k.Token(); ok; _, ok = k.Token() {
		if time.Now().After(deadline) {
			t.Fatal("the keeper still hands out a token past its expiry")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.set(func() { f.down = false })
	waitToken(t, k, tokenN(len(f.readTimes())+1), 2*time.Second)
}

// The application's loop: a 401 makes the keeper read a new token, and the refused token is
// never sent again; a 5xx is logged and called again later.
func TestProviderLoopReportsRefusals(t *testing.T) {
	f := &fakeVault{lease: 60, life: time.Hour}
	k, logs := startKeeper(t, f)
	var mu sync.Mutex
	sent := map[string]int{}
	prov := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		sent[tok]++
		n := sent[tok]
		mu.Unlock()
		switch {
		case tok == tokenN(1):
			w.WriteHeader(http.StatusUnauthorized)
		case tok == tokenN(2) && n == 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer prov.Close()
	p := &provider{http: prov.Client(), method: http.MethodGet, url: prov.URL, log: k.log}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	p.loop(ctx, k, 20*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	if sent[tokenN(1)] != 1 || sent[tokenN(2)] < 5 {
		t.Errorf("calls per token: %v; want the refused token sent once, its successor again and again", sent)
	}
	if tok, _ := k.Token(); tok != tokenN(2) {
		t.Errorf("after the refusal the keeper holds %q", tok)
	}
	for _, want := range []string{"refused the token; reading a new one", "unavailable; calling again later", "answers again"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
}

func TestWriteFileReplacesAtomicallyWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	for _, content := range []string{"first", "second"} {
		if err := writeFile(path, content); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		st, _ := os.Stat(path)
		if err != nil || string(b) != content || st.Mode().Perm() != 0o600 {
			t.Fatalf("file holds %q (%v), mode %v; want %q, 0600", b, err, st.Mode().Perm(), content)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left beside the token: %v", entries)
	}
	if err := writeFile(filepath.Join(t.TempDir(), "missing", "token"), "x"); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
