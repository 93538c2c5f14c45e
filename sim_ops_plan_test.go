package apitokens

import "github.com/hashicorp/vault/sdk/logical"

// The simulation's planned-rotation operations (issue 28), drawn like the others (simOps).

// opPlan is an operator's rotate-root planned=true, on any node (a standby forwards it). It
// is no excuse: every lease handed out before it must end before its rotation kills the token
// (I2), and every one after it is capped at it.
func (w *world) opPlan(name string) {
	n := w.nodes[w.r.Intn(len(w.nodes))]
	resp, err := w.request(n, logical.UpdateOperation, "rotate-root/"+name, map[string]any{"planned": true})
	w.cover[outcomeLabel("plan", err)]++
	if err != nil {
		w.logf("  plan %s: %v", name, err)
		return
	}
	w.logf("  plan %s: rotates at %v", name, resp.Data["rotates_at"])
}

// opCancelPlan is an operator's vault delete rotate-root/<name>.
func (w *world) opCancelPlan(name string) {
	resp, err := w.request(w.active(), logical.DeleteOperation, "rotate-root/"+name, nil)
	w.cover[outcomeLabel("cancel-plan", err)]++
	w.logf("  cancel plan of %s: %v %v", name, err, resp != nil)
}
