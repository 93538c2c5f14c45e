package apitokens

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A rotation's create marker records the keys listed before its create call (Known), so a
// key an operator made earlier, which nobody in Vault holds, is never named as the orphan of
// a lost create answer: only the key the call created is.
func TestRotateBloqOrphanReportSkipsKeysListedBefore(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	operators := "0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e"
	h.sim.AddBloqKey(h.bqUserID, operators, "0e0e")
	h.sim.Inject(simulator.RouteBloqKeysCreate, simulator.Fault{AfterApply: true, Status: 502})
	_, err := h.do(logical.UpdateOperation, "rotate-root/bq", nil)
	if err == nil {
		t.Fatal("rotation reported success without the new key's secret")
	}
	keys := h.sim.BloqClientIDs(h.bqUserID)
	if len(keys) != 3 {
		t.Fatalf("keys upstream %v", keys)
	}
	orphan := keys[2]
	if !strings.Contains(err.Error(), orphan) {
		t.Fatalf("the created key %s is not named: %v", orphan, err)
	}
	if strings.Contains(err.Error(), operators) || strings.Contains(h.logs.String(), "credential "+operators) {
		t.Fatalf("a key listed before the create call was named an orphan: %v", err)
	}
}
