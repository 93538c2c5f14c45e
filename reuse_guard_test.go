package apitokens

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// The contracts of a creds read's token (reuse.go) at the edges that only concurrency or
// another node reaches: each test puts the backend in that state with a hook at the point
// where the other party would act.

// hookedLock is a config's lock whose RLock or Unlock first runs a hook (another node's
// change arriving just then).
type hookedLock struct {
	configLock
	rlock, unlock func()
}

func (l hookedLock) RLock() {
	if l.rlock != nil {
		l.rlock()
	}
	l.configLock.RLock()
}

func (l hookedLock) Unlock() {
	l.configLock.Unlock()
	if l.unlock != nil {
		l.unlock()
	}
}

func (h *harness) hookLocks(rlock, unlock func()) {
	h.b.lockSeam = func(_ string, l *locksutil.LockEntry) configLock { return hookedLock{l, rlock, unlock} }
}

// tokenCalls is a transport that counts the token calls it makes, remembers the tokens they
// answered, and runs hook after each answer (another node acting during the call).
type tokenCalls struct {
	n      int
	tokens []string
	hook   func(n int)
}

func (c *tokenCalls) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !strings.HasSuffix(r.URL.Path, "/auth/token") {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var answer struct {
		Token string `json:"token"` // OffBlocks' answer
	}
	_ = json.Unmarshal(body, &answer)
	c.n++
	c.tokens = append(c.tokens, answer.Token)
	if c.hook != nil {
		c.hook(c.n)
	}
	return resp, err
}

// A due scheduled rotation that fails leaves the read to the stored credential, and says so
// in the log (a warning an operator can find).
func TestReadAfterAFailedDueRotationUsesTheStoredCredential(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.b.transport = refusePuts{}
	h.clock.Advance(time.Hour)
	h.creds("ob")
	if h.rotatedFrom(obKey) {
		t.Fatal("the rotation went through: the test would prove nothing")
	}
	if line := h.logLine("a due scheduled rotation failed"); !strings.Contains(line, "[WARN]") {
		t.Fatalf("no warning for the failed rotation; log:\n%s", h.logs)
	}
}

// refusePuts answers every credential change 400, as a provider refusing it.
type refusePuts struct{}

func (refusePuts) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut {
		return &http.Response{StatusCode: http.StatusBadRequest, Body: io.NopCloser(strings.NewReader(`{"error":"no"}`)),
			Header: http.Header{"Content-Type": {"application/json"}}, Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// A config deleted on another node right after the read's due rotation ends is not found:
// the read fails cleanly.
func TestConfigDeletedAfterTheReadsDueRotation(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.clock.Advance(time.Hour)
	deleted := false
	h.hookLocks(nil, func() {
		if !deleted {
			deleted = true
			if err := h.storage.Delete(context.Background(), configKey("ob")); err != nil {
				t.Error(err)
			}
			h.b.invalidate(context.Background(), configKey("ob"))
		}
	})
	resp, err := h.do(logical.ReadOperation, "creds/ob", nil)
	if msg, _ := respErr(resp).(string); !deleted || err == nil || !strings.Contains(msg, `no config named "ob"`) {
		t.Fatalf("read of a config deleted after its rotation: %v %v (deleted: %v)", err, msg, deleted)
	}
}

// A config that records a fallback while its token is shared (memo keeps the token beside
// it) hands that token out no more: the provider may adopt the fallback at any moment.
func TestSharedTokenNotHandedOutOnceAFallbackIsRecorded(t *testing.T) {
	h := newHarness(t)
	cfg := h.offblocksConfig()
	cfg["token_reuse"] = true
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
	shared, _ := h.creds("ob").Data["token"].(string)
	hooked := false
	h.hookLocks(func() {
		if !hooked {
			hooked = true
			next := h.stored("ob").cred.(offblocks.Credentials)
			next.APISecret = strings.Repeat("f", 40)
			h.holdFallback("ob", next) // as a rotation storing its new credential first
		}
	}, nil)
	if got, _ := h.creds("ob").Data["token"].(string); !hooked || got == shared {
		t.Fatalf("the shared token was handed out while a fallback was held (hooked: %v)", hooked)
	}
}

// A read that finds no shared token, but whose call starts after another read installed
// one with exactly the life it needs, takes that one: "has the life" is at least need.
func TestSharedTokenInstalledMeanwhileWithExactlyTheLifeNeeded(t *testing.T) {
	h := newHarness(t)
	cfg := h.offblocksConfig()
	cfg["token_reuse"] = true
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
	h.creds("ob")
	h.b.memo.forget("ob")
	const need = 20 * time.Minute // half the token's life (min_token_ttl's default)
	now := h.clock.Now()
	installed := &sharedToken{minted: minted{Minted: registry.Minted{Token: apiclient.Token{Value: "installed-meanwhile",
		ExpiresAt: now.Add(need)}}}, issued: now.Add(-need)}
	h.b.memo.flight = installingFlight{flightGroup: h.b.memo.flight, install: func() {
		_, gen := h.b.memo.token("ob")
		h.b.memo.share("ob", gen, installed)
	}}
	resp := h.mustDo(logical.ReadOperation, "creds/ob", nil)
	if got, _ := resp.Data["token"].(string); got != "installed-meanwhile" {
		t.Fatalf("read minted %q instead of taking the shared token with exactly the life it needs", got)
	}
}

// installingFlight runs install before each shared call: another read's call installing a
// token just before this one starts.
type installingFlight struct {
	flightGroup
	install func()
}

func (f installingFlight) DoChan(key string, fn func() (any, error)) <-chan singleflight.Result {
	f.install()
	return f.flightGroup.DoChan(key, fn)
}

// need never falls below two minimum leases: a shared token with more than that left (and
// more than min_token_ttl) is handed out.
func TestSharedTokenDownToTwoMinimumLeases(t *testing.T) {
	h := newHarness(t)
	cfg := h.offblocksConfig()
	cfg["token_reuse"], cfg["min_token_ttl"] = true, "1s"
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
	h.creds("ob")
	tok, _ := h.b.memo.token("ob")
	h.clock.Advance(tok.ExpiresAt.Sub(h.clock.Now()) - 2*minLease - 500*time.Millisecond)
	resp := h.mustDo(logical.ReadOperation, "creds/ob", nil)
	if got, _ := resp.Data["token"].(string); got != tok.Value {
		t.Fatalf("a shared token with %s left (min_token_ttl 1s) was not handed out", 2*minLease+500*time.Millisecond)
	}
}

// A read whose every token is minted with a credential another node replaces during the
// call mints mintTries times, then answers 503 saying to read again; each retry is logged.
func TestReadGivesUpAfterMintTriesReplacedCredentials(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	other := h.otherNode()
	calls := &tokenCalls{}
	calls.hook = func(n int) {
		if n > 10 {
			return
		}
		req := &logical.Request{Operation: logical.UpdateOperation, Path: "rotate-root/ob", Storage: h.storage}
		if resp, err := other.HandleRequest(context.Background(), req); err != nil || resp.IsError() {
			t.Errorf("rotate-root on the other node: %v %v", err, respErr(resp))
		}
		h.b.invalidate(context.Background(), configKey("ob"))
	}
	h.b.transport = calls
	_, err := h.do(logical.ReadOperation, "creds/ob", nil)
	coded, ok := err.(logical.HTTPCodedError)
	if !ok || coded.Code() != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "read again") {
		t.Fatalf("want a 503 saying to read again, got %v", err)
	}
	if calls.n != mintTries || mintTries != 3 {
		t.Fatalf("%d token calls, want 3 (mintTries = %d)", calls.n, mintTries)
	}
	if h.logLine("minting again") == "" {
		t.Fatal("no log line for a token minted again")
	}
}

// A config forgotten during a mint (another node's write that keeps the credential) costs no
// second call: storage says the credential is the same, and the token is handed out.
func TestForgetDuringAMintThatKeepsTheCredential(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	calls := &tokenCalls{hook: func(n int) {
		if n == 1 {
			h.b.invalidate(context.Background(), configKey("ob"))
		}
	}}
	h.b.transport = calls
	got, _ := h.creds("ob").Data["token"].(string)
	if calls.n != 1 || got != calls.tokens[0] {
		t.Fatalf("%d token calls for one read whose config was only forgotten, want 1", calls.n)
	}
}

// A token minted while another node records a fallback (Vault delivers the change during the
// call) is not handed out: the read settles first, and the token comes from the credential
// it settles on. Deleted during the call, the config is not found.
func TestMintDuringAnotherNodesFallbackOrDelete(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	other := h.otherNode()
	calls := &tokenCalls{hook: func(n int) {
		if n == 1 {
			c := h.stored("ob")
			next := c.cred.(offblocks.Credentials)
			next.APISecret = strings.Repeat("f", 40)
			c.Fallbacks = append(c.Fallbacks, fallback{cred: next, fallbackMeta: fallbackMeta{Since: h.clock.Now().UTC()}})
			if err := other.putConfig(context.Background(), h.storage, "ob", c); err != nil {
				t.Error(err)
			}
			h.b.invalidate(context.Background(), configKey("ob"))
		}
	}}
	h.b.transport = calls
	got, _ := h.creds("ob").Data["token"].(string)
	if calls.n < 2 || got == calls.tokens[0] || h.fallbacks("ob") != 0 {
		t.Fatalf("the token minted while a fallback was recorded was handed out (%d calls, %d fallbacks)",
			calls.n, h.fallbacks("ob"))
	}

	calls.n, calls.hook = 0, func(n int) {
		if n == 1 {
			if err := h.storage.Delete(context.Background(), configKey("ob")); err != nil {
				t.Error(err)
			}
			h.b.invalidate(context.Background(), configKey("ob"))
		}
	}
	resp, err := h.do(logical.ReadOperation, "creds/ob", nil)
	if msg, _ := respErr(resp).(string); err == nil || !strings.Contains(msg, `no config named "ob"`) {
		t.Fatalf("read of a config deleted during its mint: %v %v", err, msg)
	}
}

// failGetOnce is storage whose next read of key fails, with err (errStorageDown if nil).
type failGetOnce struct {
	logical.Storage
	key    string
	failed bool
	err    error
}

func (s *failGetOnce) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if key == s.key && !s.failed {
		s.failed = true
		if s.err != nil {
			return nil, s.err
		}
		return nil, errStorageDown
	}
	return s.Storage.Get(ctx, key)
}

// A config forgotten during a mint whose storage read then fails is not taken as unchanged,
// nor as changed: the read reports the storage failure, and hands out no token.
func TestForgetDuringAMintThenStorageFails(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	s := &failGetOnce{Storage: h.storage, failed: true}
	h.b.transport = &tokenCalls{hook: func(n int) {
		h.b.invalidate(context.Background(), configKey("ob"))
		s.key, s.failed = configKey("ob"), false
	}}
	req := &logical.Request{Operation: logical.ReadOperation, Path: "creds/ob", Storage: s, MountPoint: "apitokens/"}
	resp, err := h.b.HandleRequest(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), errStorageDown.Error()) {
		t.Fatalf("want the storage failure, got %v %v", err, respErr(resp))
	}
}

// A read whose shared token has exactly the life it needs takes it at once, even while
// another read's shared call is in flight (one with a min_ttl the token cannot meet): it does
// not wait for that call, nor take its token.
func TestSharedTokenWithExactlyTheLifeNeededWhileAMintIsInFlight(t *testing.T) {
	h := newHarness(t)
	var armed atomic.Bool
	entered, release := make(chan struct{}, 1), make(chan struct{})
	h.b.transport = afterAnswer{hook: func(*http.Request) {
		if !armed.Load() {
			return
		}
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}}
	defer close(release)
	cfg := h.offblocksConfig()
	cfg["token_reuse"] = true
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
	h.creds("ob")
	tok, _ := h.b.memo.token("ob")
	h.clock.Advance(tok.ExpiresAt.Sub(h.clock.Now()) - tok.lifetime()/2) // exactly need left
	armed.Store(true)
	first := make(chan error, 1)
	go func() { // a read that needs more than the shared token has: it mints, and waits
		_, err := h.do(logical.ReadOperation, "creds/ob", map[string]any{"min_ttl": "50m"})
		first <- err
	}()
	select {
	case <-entered:
	case err := <-first:
		t.Fatalf("the read with min_ttl=50m made no provider call: %v", err)
	}
	got := make(chan string, 1)
	go func() {
		resp, _ := h.do(logical.ReadOperation, "creds/ob", nil)
		v, _ := resp.Data["token"].(string)
		got <- v
	}()
	select {
	case v := <-got:
		if v != tok.Value {
			t.Fatal("the read did not take the shared token with exactly the life it needs")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read waited for another read's shared call instead of taking the shared token")
	}
}
