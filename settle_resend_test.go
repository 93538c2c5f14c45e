package apitokens

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A re-sent change whose answer is lost (the provider applied it, then answered a 502) is
// confirmed at once, like an acknowledged one: the read that settles adopts the new pair and
// gets a token in the same request, instead of a 502 until the next settle.
func TestSettleConfirmsAResentChangeWhoseAnswerIsLost(t *testing.T) {
	h := newHarness(t)
	next := h.pendingOffBlocks() // a fallback the provider never received
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{AfterApply: true, Status: 502})
	h.creds("ob")
	h.assertStoredIsProviders("ob")
	if h.stored("ob").ob().APIKey != next.APIKey {
		t.Fatal("the re-sent pair was not adopted")
	}
}

// A reader that gives up while it waits for a settle fails alone: the settle runs on under
// its own deadline and adopts the fallback (settleForRead detaches it from the reader).
func TestSettleForReadOutlivesItsReader(t *testing.T) {
	h := newHarness(t)
	next := h.pendingOffBlocks()
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Delay: 300 * time.Millisecond,
		Match: func(body []byte) bool { return bytes.Contains(body, []byte(next.APIKey)) }})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := h.b.settleForRead(ctx, h.storage, "ob"); err == nil {
		t.Fatal("the reader did not give up")
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.fallbacks("ob") != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	h.assertStoredIsProviders("ob")
	if h.stored("ob").ob().APIKey != next.APIKey {
		t.Fatal("the settle stopped when its first reader gave up")
	}
}
