package apitokens

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// 200 creds reads by 40 readers across three configs race rotations of two of them and
// config updates of all three. Every read succeeds, and every token is valid at the provider
// when it is checked right after the read returns, unless a rotation of that config started
// in between (a rotation kills earlier tokens, as the provider documents). The per-config
// lock is what makes this hold: without it 7 to 19 reads fail with the provider's 401 (5 runs).
func TestConcurrentReadsRotationsAndUpdates(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	names := []string{"ob", "bq", "ops"}
	started := map[string]*atomic.Int64{"ob": {}, "bq": {}, "ops": {}} // rotations started

	// 40 readers of 5 reads each are under way when the rotations and updates begin.
	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				before := started[name].Load()
				resp, err := h.do(logical.ReadOperation, "creds/"+name, nil)
				if err != nil || resp.IsError() {
					errs <- fmt.Errorf("read %s: %v", name, err)
					return
				}
				if _, verr := h.sim.Validate(resp.Data["token"].(string)); verr != nil && started[name].Load() == before {
					errs <- fmt.Errorf("read %s returned a token the provider refuses with no rotation under way: %v", name, verr)
				}
			}
		}(names[i%3])
	}
	for i := 0; i < 3; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for _, name := range []string{"ob", "bq"} {
				started[name].Add(1)
				if resp, err := h.do(logical.UpdateOperation, "rotate-root/"+name, nil); err != nil || resp.IsError() {
					errs <- fmt.Errorf("rotate %s: %v", name, err)
				}
			}
		}()
		go func(i int) {
			defer wg.Done()
			for _, name := range names {
				if _, err := h.do(logical.UpdateOperation, "config/"+name, map[string]any{"max_ttl": fmt.Sprintf("%dm", 30+i)}); err != nil {
					errs <- fmt.Errorf("update %s: %v", name, err)
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.assertOffBlocksConsistent("ob")
	h.creds("bq")
	if n := h.walCount(); n != 0 {
		t.Errorf("%d WAL entries left", n)
	}
}
