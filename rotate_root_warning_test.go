package apitokens

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// A manual rotation kills the old credential's tokens for both providers that rotate
// (OffBlocks' PUT; Bloq's delete of the old client key): both answers say until when at
// most consumers may hold a dead token (the end of the longest lease handed out, which a
// lease revoke does not shorten for Vault Agent) and recommend planned=true; neither
// suggests that revoking the leases helps.
func TestRotateRootSaysUntilWhenDeadTokensMayBeHeld(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(map[string]any{"max_ttl": "20m"}))
	h.clock.Advance(2 * time.Hour) // every lease of an earlier process has ended
	for _, name := range []string{"ob", "bq"} {
		lease := h.creds(name).Secret.TTL
		endAt := h.clock.Now().Add(lease)
		if name == "bq" { // max_ttl: a duration from the hand-out, which the bound allows a margin for
			endAt = endAt.Add(rotationLeaseMargin)
		}
		end := endAt.UTC().Format(time.RFC3339)
		h.clock.Advance(time.Minute)
		resp := h.mustDo(logical.UpdateOperation, "rotate-root/"+name, nil)
		w := strings.Join(resp.Warnings, "\n")
		for _, want := range []string{"until " + end + " at most", "rotate-root/" + name + " planned=true"} {
			if !strings.Contains(w, want) {
				t.Errorf("rotate-root/%s: warnings %q do not say %q", name, resp.Warnings, want)
			}
		}
		if strings.Contains(w, "lease revoke -prefix") {
			t.Errorf("rotate-root/%s: warnings %q still suggest a lease revoke", name, resp.Warnings)
		}
		if resp.Data["leases_end_by"] != end {
			t.Errorf("rotate-root/%s: leases_end_by = %v, want %s", name, resp.Data["leases_end_by"], end)
		}
	}
}

// Right after the backend starts it cannot know the leases an earlier process handed out: the
// bound is one documented token lifetime from its start.
func TestRotateRootBoundAfterStartIsOneLifetime(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	start := h.clock.Now()
	h.clock.Advance(10 * time.Minute)
	resp := h.mustDo(logical.UpdateOperation, "rotate-root/ob", nil)
	if want := start.Add(time.Hour).UTC().Format(time.RFC3339); resp.Data["leases_end_by"] != want {
		t.Errorf("leases_end_by = %v, want %s (one hour from the start)", resp.Data["leases_end_by"], want)
	}
}
