package apitokens

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// countingStorage counts storage reads, to prove a shared read touches none.
type countingStorage struct {
	*flakyStorage
	gets atomic.Int64
}

func (s *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.gets.Add(1)
	return s.flakyStorage.Get(ctx, key)
}

func (h *harness) reuseConfig(extra map[string]any) {
	h.t.Helper()
	cfg := h.offblocksConfig()
	cfg["token_reuse"] = true
	for k, v := range extra {
		cfg[k] = v
	}
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
}

func (h *harness) tokenCalls() int { return h.sim.Calls(simulator.RouteOffBlocksToken) }

// Two reads with reuse on get the same token, each with its own lease computed from the
// token's remaining life (the later one shorter); no storage is read for the second.
func TestReuseSharesOneToken(t *testing.T) {
	h := newHarness(t)
	h.reuseConfig(nil)
	first := h.creds("ob")
	h.clock.Advance(10 * time.Minute)
	cs := &countingStorage{flakyStorage: h.storage}
	req := &logical.Request{Operation: logical.ReadOperation, Path: "creds/ob", Storage: cs, MountPoint: "apitokens/"}
	second, err := h.b.HandleRequest(context.Background(), req)
	if err != nil || second.IsError() {
		t.Fatal(err, respErr(second))
	}
	if first.Data["token"] != second.Data["token"] || h.tokenCalls() != 1 {
		t.Fatalf("not shared: %d provider calls", h.tokenCalls())
	}
	if want := wantLease(50 * time.Minute); second.Secret.TTL != want || first.Secret.TTL != wantLease(time.Hour) {
		t.Fatalf("leases %s then %s, want %s then %s", first.Secret.TTL, second.Secret.TTL, wantLease(time.Hour), want)
	}
	if n := cs.gets.Load(); n != 0 {
		t.Fatalf("a shared read read storage %d times", n)
	}
}

// The shared token is handed out only while it has min_token_ttl left (default half its
// lifetime), or the read's min_ttl if more; past that, a new one is minted and shared.
func TestReuseMinTokenTTL(t *testing.T) {
	h := newHarness(t)
	h.reuseConfig(nil)
	a := h.creds("ob").Data["token"]
	h.clock.Advance(29 * time.Minute)
	if h.creds("ob").Data["token"] != a {
		t.Fatal("a token with 31m of 60m left was not shared")
	}
	h.clock.Advance(2 * time.Minute)
	b := h.creds("ob").Data["token"]
	if b == a || h.tokenCalls() != 2 {
		t.Fatal("a token with 29m of 60m left was handed out (default min_token_ttl is half)")
	}
	h.clock.Advance(10 * time.Minute)
	resp := h.mustDo(logical.ReadOperation, "creds/ob", map[string]any{"min_ttl": "55m"})
	if resp.Data["token"] == b || h.tokenCalls() != 3 {
		t.Fatal("min_ttl=55m got a token with 50m left")
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"min_token_ttl": "58m"})
	c := h.creds("ob").Data["token"]
	h.clock.Advance(90 * time.Second)
	if h.creds("ob").Data["token"] != c {
		t.Fatal("min_token_ttl=58m: a token with 58m30s left was not shared")
	}
	h.clock.Advance(time.Minute)
	if h.creds("ob").Data["token"] == c {
		t.Fatal("min_token_ttl=58m: a token with 57m30s left was handed out")
	}
	resp = h.mustDo(logical.ReadOperation, "creds/ob", map[string]any{"min_ttl": "2h"})
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "min_ttl (2h) is more than") {
		t.Fatalf("min_ttl beyond any token's life: warnings %v", resp.Warnings)
	}
	if resp, _ := h.do(logical.ReadOperation, "creds/ob", map[string]any{"min_ttl": "-5m"}); !resp.IsError() ||
		!strings.HasPrefix(respErr(resp).(string), "min_ttl: ") {
		t.Fatal("a negative min_ttl was accepted")
	}
}

// The shared token is dropped at once on a config write, a rotation, a delete, a settled
// recovery and Vault's Invalidate; the next read's token is valid at the provider.
func TestReuseDroppedOnEveryChange(t *testing.T) {
	h := newHarness(t)
	h.reuseConfig(nil)
	changes := []struct {
		name string
		do   func()
	}{
		{"config write", func() { h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"max_ttl": "50m"}) }},
		{"rotation", func() { h.mustDo(logical.UpdateOperation, "rotate-root/ob", nil) }},
		{"invalidate", func() { h.b.invalidate(context.Background(), "config/ob") }},
		{"delete and create", func() {
			key, secret := h.sim.OffBlocksPair(h.obID)
			h.mustDo(logical.DeleteOperation, "config/ob", nil)
			h.reuseConfig(map[string]any{"api_key": key, "api_secret": secret})
		}},
		{"settled recovery", func() {
			// The provider applies a PUT whose answer is lost while it becomes unreachable:
			// the rotation is unsettled, then a read settles it.
			h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{AfterApply: true, Status: 500,
				OnHit: func() { h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1}) }})
			if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
				t.Fatal("the rotation should be unsettled")
			}
			h.sim.ClearFaults()
		}},
	}
	for _, c := range changes {
		before := h.creds("ob").Data["token"]
		calls := h.tokenCalls()
		c.do()
		after := h.creds("ob").Data["token"] // h.creds checks it at the provider
		if after == before || h.tokenCalls() == calls {
			t.Errorf("%s: the shared token was handed out again", c.name)
		}
	}
}

// A burst of reads of a config no one has read yet makes exactly one provider call, and
// every read gets that token.
func TestReuseSingleFlight(t *testing.T) {
	h := newHarness(t)
	h.reuseConfig(nil)
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Delay: 200 * time.Millisecond})
	var wg sync.WaitGroup
	tokens := make(chan any, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.do(logical.ReadOperation, "creds/ob", nil)
			if err != nil || resp.IsError() {
				t.Error(err)
				return
			}
			tokens <- resp.Data["token"]
		}()
	}
	wg.Wait()
	close(tokens)
	seen := map[any]int{}
	for tok := range tokens {
		seen[tok]++
	}
	if h.tokenCalls() != 1 || len(seen) != 1 {
		t.Fatalf("%d provider calls, %d distinct tokens for 50 concurrent reads", h.tokenCalls(), len(seen))
	}
	// One read minted the token; the 49 that waited for it were handed a shared one.
	text := h.scrape()
	for _, want := range []string{`apitokens_tokens_issued_total{kind="fresh",provider="offblocks"} 1`,
		`apitokens_tokens_issued_total{kind="shared",provider="offblocks"} 49`} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A reader that gives up while the shared call is under way fails alone: the call goes on
// under the config's request_timeout and serves the others.
func TestReuseReaderGivingUpFailsAlone(t *testing.T) {
	h := newHarness(t)
	h.reuseConfig(nil)
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Delay: 300 * time.Millisecond})
	quitter, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := h.b.HandleRequest(quitter, &logical.Request{Operation: logical.ReadOperation,
			Path: "creds/ob", Storage: h.storage, MountPoint: "apitokens/"})
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // the quitter starts the shared call
	h.creds("ob")
	if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the quitter got %v", err)
	}
	if h.tokenCalls() != 1 {
		t.Fatalf("%d provider calls: the quitter's cancellation restarted the shared call", h.tokenCalls())
	}
}

// A token minted before the config was forgotten is never installed after it.
func TestMemoGenerations(t *testing.T) {
	var m memo
	_, gen := m.token("x")
	m.forget("x") // a rotation, while the mint was under way
	m.share("x", gen, &sharedToken{})
	if tok, _ := m.token("x"); tok != nil {
		t.Fatal("a token minted before a forget was installed")
	}
	cfg, gen := m.config("x")
	m.forget("x")
	m.fillConfig("x", gen, &accountConfig{configHead: configHead{Provider: "offblocks"}})
	if cfg, _ = m.config("x"); cfg != nil {
		t.Fatal("a config loaded before a forget was remembered")
	}
}

// A reader that found no shared token, and joins the mint only after the mint it would have
// waited for has ended (it was descheduled between the two: a cold burst on a loaded node),
// takes that mint's token instead of making a provider call of its own.
func TestLateReaderTakesTheTokenJustMinted(t *testing.T) {
	h := newHarness(t)
	h.reuseConfig(nil)
	first := h.creds("ob").Data["token"]
	calls := h.tokenCalls()
	late, err := h.b.mintShared(context.Background(), h.storage, "ob", 30*time.Second, 0)
	if err != nil || late.Value != first || !late.shared || h.tokenCalls() != calls {
		t.Fatalf("late reader: %v, token shared=%v same=%v, %d provider calls (was %d)", err, late.shared, late.Value == first,
			h.tokenCalls(), calls)
	}
	// One that needs more life than the token has left mints.
	if again, err := h.b.mintShared(context.Background(), h.storage, "ob", 30*time.Second, 2*time.Hour); err != nil ||
		again.Value == first || h.tokenCalls() != calls+1 {
		t.Fatalf("a reader needing more: %v, %d calls", err, h.tokenCalls())
	}
}
