package apitokens

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// rotationTracker counts rotations per config: started before a rotation is requested
// (before it can hold the lock) and finished after it returns (after it released it).
type rotationTracker struct{ started, finished atomic.Int64 }

// window is taken when a read begins; excuses reports whether a rotation may have killed the
// read's token since: one finished in between, or one is under way now. A rotation under
// way when the read began either finished in between or is still under way.
func (r *rotationTracker) window() int64 { return r.finished.Load() }

func (r *rotationTracker) excuses(finishedAtStart int64) bool {
	fin := r.finished.Load()
	return fin != finishedAtStart || r.started.Load() != fin
}

// 200 creds reads by 40 readers across three configs race rotations of two of them and
// config updates of all three. Every read succeeds, and every token is valid at the provider
// when it is checked right after the read returns, unless a rotation of that config was
// under way at some moment between the read's start and the check (a rotation kills earlier
// tokens, as the provider documents). The per-config lock is what makes this hold: without
// it reads fail with the provider's 401.
func TestConcurrentReadsRotationsAndUpdates(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	names := []string{"ob", "bq", "ops"}
	rotations := map[string]*rotationTracker{"ob": {}, "bq": {}, "ops": {}}

	// 40 readers of 5 reads each are under way when the rotations and updates begin.
	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				since := rotations[name].window()
				resp, err := h.do(logical.ReadOperation, "creds/"+name, nil)
				if err != nil || resp.IsError() {
					errs <- fmt.Errorf("read %s: %v", name, err)
					return
				}
				if _, verr := h.sim.Validate(resp.Data["token"].(string)); verr != nil && !rotations[name].excuses(since) {
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
				rotations[name].started.Add(1)
				resp, err := h.do(logical.UpdateOperation, "rotate-root/"+name, nil)
				rotations[name].finished.Add(1)
				if err != nil || resp.IsError() {
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
