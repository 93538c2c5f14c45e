package apitokens

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// The provider refuses rotate-root's only PUT outright (400): the fallback stored before it
// is dropped, and a store that fails a moment is retried, so the config is not left
// unsettled with a pair the provider never took.
func TestRefusedRotationDropIsRetried(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 400})
	puts := 0
	h.storage.setFailPut(func(k string) bool {
		if !strings.HasPrefix(k, configPrefix) {
			return false
		}
		puts++
		return puts == 2 // the fallback is stored; the first try to drop it fails
	})
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("the refused rotation succeeded")
	}
	if n := h.fallbacks("ob"); n != 0 {
		t.Fatalf("%d fallbacks after a refused rotation whose drop failed once", n)
	}
	h.creds("ob")
}

// If the drop never lands (storage down, or the node died first), nothing proves the pair was
// refused: every settle sends it again, and a refusal of a re-send proves nothing about the
// first, so the config stays unsettled. An operator's write of the credential, even the
// current one, is the way out: it gives the fallback up, and says so.
func TestRefusedRotationOperatorWriteEndsIt(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 400, Times: -1})
	h.failConfigPutsAfter(1) // the fallback is stored; dropping it fails every try
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("the refused rotation succeeded")
	}
	h.storage.setFailPut(nil)
	for i := 0; i < 3; i++ {
		h.rollback()
	}
	if h.fallbacks("ob") != 1 {
		t.Fatalf("fallbacks %d: a pair whose refusal was not recorded was dropped on a re-send's refusal", h.fallbacks("ob"))
	}
	h.wantUnsettledRead("ob")
	resp := h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"api_key": obKey, "api_secret": obSecret, "force": true})
	if resp == nil || len(resp.Warnings) == 0 || !strings.Contains(strings.Join(resp.Warnings, " "), "given up") {
		t.Fatalf("the credential write did not say it gave the fallback up: %v", resp)
	}
	if h.fallbacks("ob") != 0 {
		t.Fatal("the operator's credential write kept the fallback")
	}
	h.creds("ob")
}
