package apitokens

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// The goroutine stress test beside the simulation's scheduler (sim_sched_test.go), for the
// race detector: readers of a token_reuse config share mints while rotations replace its
// credential and another node's Invalidate drops the memo again and again, in real goroutines.
// Every read succeeds, and once they have all returned, the shared token a read hands out is
// one the provider accepts: no token minted before a forget was kept after it.
func TestConcurrentSharedMintsRotationsAndInvalidations(t *testing.T) {
	h := newHarness(t)
	cfg := h.offblocksConfig()
	cfg["token_reuse"] = true
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 16)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if resp, err := h.do(logical.ReadOperation, "creds/ob", nil); err != nil || resp.IsError() {
					errs <- fmt.Errorf("read: %v %v", err, respErr(resp))
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				h.b.invalidate(context.Background(), configPrefix+"ob")
			}
		}
	}()
	for range 5 {
		if resp, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err != nil || resp.IsError() {
			t.Errorf("rotate: %v %v", err, respErr(resp))
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	tok := h.creds("ob").Data["token"].(string)
	if _, err := h.sim.Validate(tok); err != nil {
		t.Fatalf("after every rotation returned, a read handed out a token the provider refuses: %v", err)
	}
}
