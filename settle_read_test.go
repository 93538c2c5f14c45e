package apitokens

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// Reads that arrive while one read settles an unsettled config wait for that settle and
// share its outcome: the provider is sent the change once, not once per reader queued on the
// config's lock (each of which would otherwise wait up to request_timeout in turn).
func TestConcurrentReadsShareOneSettle(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	next, _ := offblocks.GenerateCredentials()
	h.holdFallback("ob", next)

	h.sim.SetOffBlocksLag(time.Hour) // the settle stays open: each queued reader would send it again
	release := make(chan struct{})
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Hang: true, Release: release, AfterApply: true})
	const readers = 8
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.do(logical.ReadOperation, "creds/ob", nil)
			errs <- err
		}()
		if i == 0 { // the first reader's PUT is held by the provider before the others read
			deadline := time.Now().Add(10 * time.Second)
			for h.sim.Calls(simulator.RouteOffBlocksCredentials) == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
	}
	time.Sleep(time.Second) // the other readers reach the settle and wait (microseconds of work)
	close(release)
	wg.Wait()
	close(errs)
	if n := h.sim.Calls(simulator.RouteOffBlocksCredentials); n != 1 {
		t.Errorf("%d readers sent the change %d times, want once", readers, n)
	}
	for err := range errs {
		if err == nil || !strings.Contains(err.Error(), "unsettled") {
			t.Errorf("a read while the provider lags: %v, want the shared settle's unsettled error", err)
		}
	}
	h.clock.Advance(time.Hour)
	h.rollback()
	h.assertStoredIsProviders("ob")
}
