package apitokens

import (
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// Creds reads racing rotations and config updates on the same configs never fail: the
// per-config lock keeps a read from using a pair the provider has already replaced.
func TestConcurrentReadsRotationsAndUpdates(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())

	// A read that used a pair already replaced upstream would fail with the provider's 401;
	// so every read must succeed.
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := []string{"ob", "bq", "ops"}[i%3]
			for j := 0; j < 5; j++ {
				resp, err := h.do(logical.ReadOperation, "creds/"+name, nil)
				if err != nil || resp.IsError() {
					errs <- err
				}
			}
		}(i)
	}
	for i := 0; i < 3; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for _, name := range []string{"ob", "bq"} {
				if resp, err := h.do(logical.UpdateOperation, "rotate-root/"+name, nil); err != nil || resp.IsError() {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := h.do(logical.UpdateOperation, "config/ops", map[string]any{"max_ttl": "30m"}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent operation failed: %v", err)
	}
	h.assertOffBlocksConsistent("ob")
	h.creds("bq")
	if n := h.walCount(); n != 0 {
		t.Errorf("%d WAL entries left", n)
	}
}
