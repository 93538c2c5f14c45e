package apitokens

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// A burst of reads of a config not in memory makes one storage read and one provider call,
// however slow storage is: the readers wait for the first one's load and mint.
func TestColdBurstLoadsConfigOnce(t *testing.T) {
	h := newHarness(t)
	h.reuseConfig(nil) // a config write leaves the config cold: the next read loads it
	h.storage.getDelay.Store(int64(20 * time.Millisecond))
	before := h.storage.configGets.Load()
	const readers = 100
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.do(logical.ReadOperation, "creds/ob", nil)
			if err == nil && resp.IsError() {
				err = fmt.Errorf("%v", respErr(resp))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if gets := h.storage.configGets.Load() - before; gets != 1 {
		t.Fatalf("%d storage reads of the config for a cold burst of %d reads, want 1", gets, readers)
	}
	if h.tokenCalls() != 1 {
		t.Fatalf("%d provider calls for a cold burst, want 1", h.tokenCalls())
	}
}

// The periodic function's pass reads no config from storage once this node holds it, and
// says how many configs it looked at; a config changed by a write is read again.
func TestPeriodicPassFromMemory(t *testing.T) {
	h := newHarness(t)
	const n = 50
	for i := 0; i < n; i++ {
		cfg := h.offblocksConfig()
		if i == 7 { // one scheduled config (they all share one OffBlocks pair)
			cfg["rotation_period"] = "24h"
		}
		h.mustDo(logical.CreateOperation, fmt.Sprintf("config/c%02d", i), cfg)
	}
	h.periodic() // loads the configs the writes left cold
	before := h.storage.configGets.Load()
	h.periodic()
	if gets := h.storage.configGets.Load() - before; gets != 0 {
		t.Fatalf("a pass over %d configs in memory read %d from storage", n, gets)
	}
	if text := h.scrape(); !strings.Contains(text, fmt.Sprintf("apitokens_periodic_pass_configs %d\n", n)) {
		t.Fatalf("the pass is not counted:\n%s", text)
	}
	h.mustDo(logical.UpdateOperation, "config/c07", map[string]any{"max_ttl": "10m"})
	before = h.storage.configGets.Load()
	h.periodic()
	if gets := h.storage.configGets.Load() - before; gets != 1 {
		t.Fatalf("a pass after one config changed read %d configs from storage, want 1", gets)
	}
	// A rotation that came due is still done: the memory says when it is due.
	h.clock.Advance(25 * time.Hour)
	h.periodic()
	if h.stored("c07").LastRotated.IsZero() {
		t.Fatal("c07 not rotated when due")
	}
}

// Every config of one provider, base URL and timeout shares one client; another base URL
// or timeout gets its own.
func TestClientsSharedByConfigs(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("c%02d", i)
		h.mustDo(logical.CreateOperation, "config/"+name, h.offblocksConfig())
		h.creds(name)
	}
	h.mustDo(logical.CreateOperation, "config/slow", h.offblocksConfig())
	h.mustDo(logical.UpdateOperation, "config/slow", map[string]any{"request_timeout": "45s"})
	h.creds("slow")
	h.b.clientsMu.Lock()
	defer h.b.clientsMu.Unlock()
	if len(h.b.clients) != 2 {
		t.Fatalf("%d clients for 21 configs of one base URL and two timeouts, want 2", len(h.b.clients))
	}
}

// A scrape never waits for a config's lock (a rotation may hold it for minutes): a config
// not in memory whose lock is held is read from storage, and counted.
func TestScrapeDoesNotWaitForLocks(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig()) // cold after the write
	lock := h.b.lock("ob")
	lock.Lock()
	defer lock.Unlock()
	done := make(chan string)
	go func() { done <- h.scrape() }()
	select {
	case text := <-done:
		if !strings.Contains(text, `apitokens_configs{provider="offblocks"} 1`) {
			t.Fatalf("the locked config is not counted:\n%s", text)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a scrape waited for a config's lock")
	}
}

// Readers waiting for a cold load that the first reader's request abandoned load again
// under their own context instead of failing with the first reader's cancellation. The first
// read's storage read lasts until its request is cancelled, which happens once the second
// reader has entered the load: no timing decides the outcome (it once did, with a fixed
// storage delay that a busy machine outlasted).
func TestColdLoadOutlivesTheFirstReader(t *testing.T) {
	h := newHarness(t)
	join, entered, s := h.sharedLoad(func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("the first read was never cancelled")
		}
	})
	read := func(ctx context.Context) (*logical.Response, error) {
		req := &logical.Request{Operation: logical.ReadOperation, Path: "creds/ob", Storage: s, MountPoint: "apitokens/"}
		return h.b.HandleRequest(ctx, req)
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := read(ctx)
		first <- err
	}()
	<-entered
	other := make(chan *logical.Response, 1)
	go func() {
		resp, err := read(context.Background())
		if err != nil {
			resp = logical.ErrorResponse(err.Error())
		}
		other <- resp
	}()
	<-join.second
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the first read ended with %v, want its cancellation", err)
	}
	if resp := <-other; resp == nil || resp.IsError() {
		t.Fatalf("a reader waiting for an abandoned load failed: %v", respErr(resp))
	}
}
