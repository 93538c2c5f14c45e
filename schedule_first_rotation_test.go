package apitokens

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// A schedule set on an existing config waits for the leases handed out before it (one
// documented token lifetime, LeasesEndBy), plus the margin every lease keeps before the
// earliest moment a rotation may run: next_vault_rotation is LeasesEndBy + rotationLeaseMargin
// + rotationEarly, and nothing rotates a moment before that earliest moment.
func TestScheduleOnExistingConfigWaitsLeasesPlusMargin(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.creds("ob") // a lease handed out before the schedule, uncapped
	set := h.clock.Now()
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"rotation_period": "1m"})
	want := set.Add(time.Hour + rotationLeaseMargin + rotationEarly)
	if got := h.nextRotation("ob"); got != want.Format(time.RFC3339) {
		t.Fatalf("next_vault_rotation = %s, want %s (one token lifetime, then the lease margin)", got, want.Format(time.RFC3339))
	}
	h.clock.Advance(want.Add(-rotationEarly - 500*time.Millisecond).Sub(h.clock.Now()))
	h.periodic()
	if h.rotatedFrom(obKey) {
		t.Fatal("rotated within the lease margin after the earlier leases' bound")
	}
}
