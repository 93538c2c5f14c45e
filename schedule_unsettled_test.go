package apitokens

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A scheduled rotation left unsettled (the provider lags) is settled by the next periodic
// run, which sends the change once and, while it stays unsettled, does not start a rotation
// that would only settle it again: no second PUT, and no second failure counted against the
// schedule's backoff.
func TestPeriodicDoesNotRotateAnUnsettledConfig(t *testing.T) {
	h := newHarness(t)
	h.sim.SetOffBlocksLag(time.Hour)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "10m", "request_timeout": 2})
	h.clock.Advance(10 * time.Minute)
	h.periodic() // the scheduled rotation: PUT acknowledged, not applied, unsettled
	if h.fallbacks("ob") != 1 || h.sim.Calls(simulator.RouteOffBlocksCredentials) != 1 {
		t.Fatalf("fallbacks %d, PUTs %d after the scheduled rotation", h.fallbacks("ob"), h.sim.Calls(simulator.RouteOffBlocksCredentials))
	}
	h.clock.Advance(2 * time.Minute) // past the failure's retry time: the rotation is due again
	h.periodic()
	if n := h.sim.Calls(simulator.RouteOffBlocksCredentials); n != 2 {
		t.Errorf("the periodic run sent the change %d times in all, want 2 (the rotation's, then one settle)", n)
	}
	if f := h.mustDo(logical.ReadOperation, "config/ob", nil).Data["rotation_failures"]; f != 1 {
		t.Errorf("rotation_failures = %v, want 1: a settle that stays open is not a new failed rotation", f)
	}
	h.clock.Advance(time.Hour)
	h.periodic()
	h.assertStoredIsProviders("ob")
}
