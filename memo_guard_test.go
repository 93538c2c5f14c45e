package apitokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
)

// gatedMints is a transport that holds every token call until release is closed, counting
// the calls in flight and the most ever in flight at once.
type gatedMints struct {
	release       chan struct{}
	inFlight, max atomic.Int32
}

func (g *gatedMints) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/auth/token") {
		n := g.inFlight.Add(1)
		defer g.inFlight.Add(-1)
		for m := g.max.Load(); n > m && !g.max.CompareAndSwap(m, n); m = g.max.Load() {
		}
		<-g.release
	}
	return http.DefaultTransport.RoundTrip(r)
}

// Without token_reuse, at most mintSlots (8, as the README says) reads of one config mint at
// once: a burst of reads fills the 8 slots while the provider is slow, the rest wait their
// turn, and every read gets its token once the provider answers.
func TestMemoMintSlotsBoundConcurrentMints(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	g := &gatedMints{release: make(chan struct{})}
	h.b.transport = g
	const readers = 20
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		go func() {
			resp, err := h.do(logical.ReadOperation, "creds/ob", nil)
			if err == nil && (resp == nil || resp.IsError() || resp.Data["token"] == "") {
				err = fmt.Errorf("no token: %v", respErr(resp))
			}
			errs <- err
		}()
	}
	for start := time.Now(); g.inFlight.Load() < 8; time.Sleep(time.Millisecond) {
		if time.Since(start) > time.Minute {
			close(g.release)
			t.Fatalf("only %d of %d reads reached the provider", g.inFlight.Load(), readers)
		}
	}
	time.Sleep(200 * time.Millisecond) // room for a ninth to get in
	close(g.release)
	for i := 0; i < readers; i++ {
		if err := <-errs; err != nil {
			t.Errorf("a read failed: %v", err)
		}
	}
	if n := g.max.Load(); n != 8 {
		t.Fatalf("%d token calls of one config were in flight at once, want at most (and, here, exactly) 8", n)
	}
}

// setConfig keeps its own copy of the config: a caller that goes on changing its config,
// even the elements of its fallbacks and retiring credentials in place, never changes the
// remembered one.
func TestMemoSetConfigKeepsItsOwnCopy(t *testing.T) {
	var m memo
	cur, old := offblocks.Credentials{APIKey: "cur"}, offblocks.Credentials{APIKey: "old"}
	cfg := &accountConfig{configHead: configHead{BaseURL: "u"}, cred: cur, configTail: configTail{
		Fallbacks: []fallback{{cred: cur, fallbackMeta: fallbackMeta{Why: "sent"}}},
		Retiring:  []credential{old}}}
	m.setConfig("ob", cfg)
	cfg.BaseURL = "changed"
	cfg.Fallbacks[0] = fallback{cred: offblocks.Credentials{APIKey: "other"}, fallbackMeta: fallbackMeta{Why: "changed"}}
	cfg.Retiring[0] = offblocks.Credentials{APIKey: "other"}
	got, _ := m.config("ob")
	switch {
	case got == nil || got == cfg:
		t.Fatalf("remembered %p, want a copy of %p", got, cfg)
	case got.BaseURL != "u":
		t.Fatalf("the remembered base_url is %q, want u", got.BaseURL)
	case len(got.Fallbacks) != 1 || got.Fallbacks[0].Why != "sent" || got.Fallbacks[0].cred != cur:
		t.Fatalf("the remembered fallbacks changed with the caller's: %+v", got.Fallbacks)
	case len(got.Retiring) != 1 || got.Retiring[0] != old:
		t.Fatalf("the remembered retiring credentials changed with the caller's: %+v", got.Retiring)
	}
}

// A value loaded or minted before any forget or forgetAll is never installed after it,
// whatever mix of the two came between: each bumps the generation, which never returns to
// one handed out before. forgetAll drops every entry.
func TestMemoForgetAndForgetAllNeverReturnToAGeneration(t *testing.T) {
	cfg := &accountConfig{configHead: configHead{BaseURL: "old"}}
	tok := &sharedToken{}
	steps := map[string]func(m *memo){
		"forgetAll":               func(m *memo) { m.forgetAll() },
		"forgetAll,forget":        func(m *memo) { m.forgetAll(); m.forget("y") },
		"forget,forgetAll":        func(m *memo) { m.forget("y"); m.forgetAll() },
		"forget,forgetAll,forget": func(m *memo) { m.forget("y"); m.forgetAll(); m.forget("y") },
	}
	for name, between := range steps {
		for _, pre := range []string{"", "forget x first", "remembered"} {
			var m memo
			switch pre {
			case "forget x first":
				m.forget("x")
			case "remembered":
				m.setConfig("a", &accountConfig{configHead: configHead{BaseURL: "kept"}})
			}
			_, loadGen := m.config("a")
			_, mintGen := m.token("a")
			between(&m)
			m.fillConfig("a", loadGen, cfg)
			m.share("a", mintGen, tok)
			if got, _ := m.config("a"); got != nil {
				t.Errorf("%s, then %s: config a %q is remembered, want none", pre, name, got.BaseURL)
			}
			if got, _ := m.token("a"); got != nil {
				t.Errorf("%s, then %s: a token minted before is shared after", pre, name)
			}
			if len(m.entries) != 0 {
				t.Errorf("%s, then %s: %d entries, want none", pre, name, len(m.entries))
			}
		}
	}
}

// configGets is storage whose first Get of config key runs first instead of reading.
type configGets struct {
	logical.Storage
	key   string
	done  atomic.Bool
	first func(ctx context.Context) error
}

func (s *configGets) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if key == s.key && s.done.CompareAndSwap(false, true) {
		return nil, s.first(ctx)
	}
	return s.Storage.Get(ctx, key)
}

// A reader whose own storage read fails gets that error as is, even one that wraps
// context.DeadlineExceeded (the storage's own timeout) while the reader's context is live:
// the read fails once, it is not retried.
func TestMemoCachedConfigReturnsItsOwnLoadError(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.b.memo.forget("ob")
	s := &configGets{Storage: h.storage, key: configKey("ob"), first: func(context.Context) error {
		return fmt.Errorf("raft apply: %w", context.DeadlineExceeded)
	}}
	lock := h.b.lock("ob")
	lock.RLock()
	defer lock.RUnlock()
	cfg, err := h.b.cachedConfig(context.Background(), s, "ob")
	if !errors.Is(err, context.DeadlineExceeded) || cfg != nil {
		t.Fatalf("got %v, %v; want the storage's own error", cfg, err)
	}
	if cfg, err := h.b.cachedConfig(context.Background(), s, "ob"); err != nil || cfg == nil {
		t.Fatalf("the next read: %v, %v; want the config", cfg, err)
	}
}

// joinSignal is a flight group that closes second when a second caller enters Do.
type joinSignal struct {
	flightGroup
	calls  atomic.Int32
	second chan struct{}
}

func (j *joinSignal) Do(key string, fn func() (any, error)) (any, error, bool) {
	if j.calls.Add(1) == 2 {
		close(j.second)
	}
	return j.flightGroup.Do(key, fn)
}

// sharedLoad writes config/ob and forgets it, and returns the load group (its second caller
// signalled), a channel closed when the first storage read begins, and storage whose first
// read of config/ob waits for a second reader to enter the load (and, most likely, to wait
// for it), then answers end(ctx).
func (h *harness) sharedLoad(end func(ctx context.Context) error) (*joinSignal, chan struct{}, *configGets) {
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.b.memo.forget("ob")
	join := &joinSignal{flightGroup: h.b.memo.loads, second: make(chan struct{})}
	h.b.memo.loads = join
	entered := make(chan struct{})
	s := &configGets{Storage: h.storage, key: configKey("ob"), first: func(ctx context.Context) error {
		close(entered)
		<-join.second                     // reader 2 is entering the load
		time.Sleep(20 * time.Millisecond) // and, most likely, waits for it by now
		return end(ctx)
	}}
	return join, entered, s
}

// A reader that waited for another reader's load and finds it ended by that reader's context
// (its deadline passed) loads again under its own context and gets the config; the reader
// whose deadline passed gets its context's error.
func TestMemoCachedConfigWaiterLoadsAgainAfterLoadersDeadline(t *testing.T) {
	h := newHarness(t)
	_, entered, s := h.sharedLoad(func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	read := func(ctx context.Context, cfg **accountConfig, err *error, wg *sync.WaitGroup) {
		defer wg.Done()
		lock := h.b.lock("ob")
		lock.RLock()
		defer lock.RUnlock()
		*cfg, *err = h.b.cachedConfig(ctx, s, "ob")
	}
	var wg sync.WaitGroup
	var cfg1, cfg2 *accountConfig
	var err1, err2 error
	ctx1, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	wg.Add(2)
	go read(ctx1, &cfg1, &err1, &wg)
	<-entered
	go read(context.Background(), &cfg2, &err2, &wg)
	wg.Wait()
	if !errors.Is(err1, context.DeadlineExceeded) || cfg1 != nil {
		t.Errorf("the reader whose deadline passed: %v, %v; want its deadline's error", cfg1, err1)
	}
	if err2 != nil || cfg2 == nil {
		t.Errorf("the reader that waited: %v, %v; want the config", cfg2, err2)
	}
}

// peekConfig returns a config from memory, else loads and remembers it when the config's
// lock is free, else reads it from storage without waiting for the lock and remembers
// nothing.
func TestMemoPeekConfigRemembersOnlyWhenTheLockIsFree(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	ctx := context.Background()
	h.b.memo.forget("ob")
	if cfg, err := h.b.peekConfig(ctx, h.storage, "ob"); err != nil || cfg == nil {
		t.Fatalf("peekConfig with the lock free: %v, %v", cfg, err)
	}
	if cfg, _ := h.b.memo.config("ob"); cfg == nil {
		t.Fatal("peekConfig with the lock free did not remember the config")
	}

	h.b.memo.forget("ob")
	lock := h.b.lock("ob")
	lock.Lock()
	defer lock.Unlock()
	var cfg *accountConfig
	var err error
	done := make(chan struct{})
	go func() { cfg, err = h.b.peekConfig(ctx, h.storage, "ob"); close(done) }()
	select {
	case <-done:
		if err != nil || cfg == nil {
			t.Fatalf("peekConfig with the lock held: %v, %v", cfg, err)
		}
	case <-time.After(time.Minute):
		t.Fatal("peekConfig waited for the config's lock")
	}
	if cfg, _ := h.b.memo.config("ob"); cfg != nil {
		t.Fatal("peekConfig remembered a config read while a writer held its lock")
	}
}

// A storage error of a load that another reader waited for is the answer of both, when it
// is not the loader giving up: one that wraps context.DeadlineExceeded (the storage's own
// timeout) while both contexts are live is not read again by either (a storage that keeps
// timing out under a burst of reads must not make every reader loop).
func TestMemoCachedConfigSharedStorageTimeoutIsEveryonesAnswer(t *testing.T) {
	h := newHarness(t)
	join, entered, s := h.sharedLoad(func(context.Context) error {
		return fmt.Errorf("raft apply: %w", context.DeadlineExceeded)
	})
	errs := make(chan error, 2)
	read := func() {
		lock := h.b.lock("ob")
		lock.RLock()
		defer lock.RUnlock()
		_, err := h.b.cachedConfig(context.Background(), s, "ob")
		errs <- err
	}
	go read()
	<-entered
	go read()
	if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the reader that loaded: %v; want the storage's own error", err)
	}
	<-errs // the waiter's: the error if it joined, the config if it came too late to join
	if n := join.calls.Load(); n != 2 {
		t.Errorf("%d loads for two readers, want 2 (none read again)", n)
	}
}
