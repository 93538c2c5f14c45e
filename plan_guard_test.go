package apitokens

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// Planned rotations at the edges a review found (issue 28). A planned rotation that failed
// caps leases at its backoff (planDue). A config write that makes the config unable to
// rotate resets c.Rotation (its failures with it) and drops the plan, so that once the login
// is written back no plan comes due at its old rotates_at, before the leases capped at the
// backoff end.
func TestPlanGuardCannotRotateWriteDropsAPlanInBackoff(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	h.clock.Advance(2 * time.Hour)
	h.creds("bq")
	at := h.plan("bq")
	h.sim.Inject(simulator.RouteBloqKeysCreate, simulator.Fault{Status: 500, Times: 1})
	h.clock.Advance(at.Sub(h.clock.Now()))
	h.periodic() // the planned rotation fails: retried after its backoff (1 minute)
	if f := h.mustDo(logical.ReadOperation, "config/bq", nil).Data["rotation_failures"]; f == nil {
		t.Fatal("the planned rotation did not fail: the test proves nothing")
	}
	h.clock.Advance(time.Second)
	lease := h.creds("bq")
	end := leaseEnd(h.clock.Now(), lease)
	h.mustDo(logical.UpdateOperation, "config/bq", map[string]any{"username": "", "password": ""})
	h.mustDo(logical.UpdateOperation, "config/bq", map[string]any{"username": bqUser, "password": bqPass})
	h.clock.Advance(5 * time.Second)
	h.periodic()
	if h.clock.Now().Before(end) {
		if _, err := h.sim.Validate(lease.Data["token"].(string)); err != nil {
			t.Errorf("a token leased until %s is dead at %s (planned_rotation %q, rotate events %v)", end, h.clock.Now(),
				h.plannedRotation("bq"), h.rotateEvents())
		}
	}
}

// A config deleted and created again under another name with the same credential (a
// rename): leases of the old name's creds run on, and a plan on the new name waits for them
// (the marks count leases by credential, not by config name).
func TestPlanGuardPlanAfterRenameWaitsForTheOldNamesLeases(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/old", h.offblocksConfig())
	h.clock.Advance(2 * time.Hour)
	lease := h.creds("old")
	end := leaseEnd(h.clock.Now(), lease)
	h.mustDo(logical.DeleteOperation, "config/old", nil)
	h.mustDo(logical.CreateOperation, "config/new", h.offblocksConfig())
	at := h.plan("new")
	if at.Before(end) {
		t.Errorf("rotates_at %s comes before the end %s of a lease of the same credential (handed out as creds/old)", at, end)
	}
}

// A config deleted and created again under the same name and credential, with a schedule
// set at creation: the mark of the old config's leases is kept (forgetEnded), and the new
// schedule's first rotation waits for it (a created config's LeasesEndBy is the mark).
func TestPlanGuardScheduleOnRecreatedConfigWaitsForRunningLeases(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.clock.Advance(2 * time.Hour)
	lease := h.creds("ob")
	end := leaseEnd(h.clock.Now(), lease)
	h.mustDo(logical.DeleteOperation, "config/ob", nil)
	cfg := h.offblocksConfig()
	cfg["rotation_period"] = "1m"
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
	h.clock.Advance(2 * time.Minute)
	h.periodic()
	if h.clock.Now().Before(end) && h.rotatedFrom(obKey) {
		t.Errorf("the recreated config's schedule rotated at %s, before the end %s of a lease of its credential", h.clock.Now(), end)
	}
}

// A write of a new root credential drops the plan and says so, whatever the credential
// written (the warning is decided by the plan the config held before the write, which a new
// credential would already have voided).
func TestPlanGuardCredentialWriteWarnsThePlanIsDropped(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.clock.Advance(2 * time.Hour)
	h.plan("ob")
	resp := h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"api_key": "3f1e2d4c-5b6a-4978-8a9b-0c1d2e3f4a5b",
		"api_secret": "0123456789abcdef0123456789abcdef01234567"})
	if got := h.plannedRotation("ob"); got != "" {
		t.Fatalf("planned_rotation after a credential write = %q", got)
	}
	if resp == nil || !containsAny(resp.Warnings, "is dropped") {
		var w []string
		if resp != nil {
			w = resp.Warnings
		}
		t.Errorf("a write of another credential dropped the plan without the warning: %q", w)
	}
}

func containsAny(ws []string, s string) bool {
	for _, w := range ws {
		if strings.Contains(w, s) {
			return true
		}
	}
	return false
}

// An immediate rotation on this node between a read's mint and its lease step (it takes the
// config's exclusive lock in between): the lease step must find the credential replaced and
// mint again (issueLease's errCredentialReplaced, leasedToken's replaced branch), never lease
// the dead token.
func TestPlanGuardRotationBetweenMintAndLeaseMintsAgain(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		h := newHarness(t)
		cfg := h.offblocksConfig()
		cfg["token_reuse"] = reuse
		h.mustDo(logical.CreateOperation, "config/ob", cfg)
		h.clock.Advance(2 * time.Hour)
		rlocks, rotated := 0, false
		h.hookLocks(func() {
			if rlocks++; rlocks == 3 && !rotated { // token's, mintOnce's, then the lease step's
				rotated = true
				h.mustDo(logical.UpdateOperation, "rotate-root/ob", nil)
			}
		}, nil)
		h.creds("ob") // fails if the token handed out is dead at the provider
		if !rotated {
			t.Fatal("the hook did not rotate during the read: the test proves nothing")
		}
	}
}

// The same with a rotation that ends unsettled between the mint and the lease step (the
// provider applied the new pair, its answer was lost, and the confirmation cannot mint): the
// read's token is dead, and it must not be handed out (issueLease's cfg.unsettled()).
func TestPlanGuardUnsettledRotationBetweenMintAndLeaseHandsOutNothing(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.clock.Advance(2 * time.Hour)
	rlocks, rotated := 0, false
	h.hookLocks(func() {
		if rlocks++; rlocks == 3 && !rotated {
			rotated = true
			h.unsettledRotationOf("ob")
		}
	}, nil)
	resp, err := h.do(logical.ReadOperation, "creds/ob", nil)
	if !rotated {
		t.Fatal("the hook did not rotate during the read: the test proves nothing")
	}
	if err == nil && resp != nil && !resp.IsError() {
		tok, _ := resp.Data["token"].(string)
		_, verr := h.sim.Validate(tok)
		t.Errorf("a read during an unsettled rotation handed out a token of the old credential (valid at the provider: %v)", verr == nil)
	}
}

// Vault Enterprise's PluginEnv as Vault sends it: VaultVersion without metadata ("1.19.5")
// and VaultVersionMetadata "ent" (or "ent.hsm", "ent.fips1403"). plan_test.go gives both
// markers at once: a detection that needed both to agree would pass it.
func TestPlanGuardMarksCompleteOnEnterpriseAsVaultSendsIt(t *testing.T) {
	for _, env := range []*logical.PluginEnvironment{
		{VaultVersion: "1.19.5", VaultVersionMetadata: "ent"},
		{VaultVersion: "1.19.5", VaultVersionMetadata: "ent.hsm.fips1403"},
		{VaultVersion: "1.19.5+ent"},
	} {
		if marksComplete(env, nil) {
			t.Errorf("version %q metadata %q counts as Community Edition", env.VaultVersion, env.VaultVersionMetadata)
		}
	}
	if !marksComplete(&logical.PluginEnvironment{VaultVersion: "1.19.5"}, nil) {
		t.Error("Community Edition counts as Enterprise")
	}
}

// A plan or a cancel whose store fails is an error, never an answer that says it was made
// or cancelled. The README's rollback
// block relies on a cancel that reports success only once the plan is gone.
func TestPlanGuardPlanAndCancelWhoseStoreFailsSayItFailed(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.clock.Advance(2 * time.Hour)
	stateWrites := func(key string) bool { return strings.HasPrefix(key, configPrefix) } // putConfig's first write
	h.storage.setFailPut(stateWrites)
	if resp, err := h.do(logical.UpdateOperation, "rotate-root/ob", map[string]any{"planned": true}); err == nil && !resp.IsError() {
		t.Errorf("a plan whose store failed answered %v", resp.Data)
	}
	h.storage.setFailPut(nil)
	at := h.plan("ob")
	h.storage.setFailPut(stateWrites)
	if resp, err := h.do(logical.DeleteOperation, "rotate-root/ob", nil); err == nil && (resp == nil || !resp.IsError()) {
		t.Errorf("a cancel whose store failed answered success; planned_rotation is still %s", at)
	}
	h.storage.setFailPut(nil)
}

// planned=true on a performance standby is forwarded to the active node (logical.ErrReadOnly),
// also when the config's rotation is unsettled (the settle cannot write there).
func TestPlanGuardPlanOnAStandbyIsForwarded(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", map[string]any{"planned": true}); err != logical.ErrReadOnly {
		t.Errorf("a plan on a standby: err %v, want logical.ErrReadOnly", err)
	}
	h.b.System().(*logical.StaticSystemView).ReplicationStateVal = 0
	h.unsettledRotationOf("ob")
	h.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", map[string]any{"planned": true}); err != logical.ErrReadOnly {
		t.Errorf("a plan on a standby while unsettled: err %v, want logical.ErrReadOnly", err)
	}
}

// A plan that the schedule comes before warns that the schedule replaces it, and one that
// comes first does not.
func TestPlanGuardPlanWarnsWhenTheScheduleComesFirst(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "30m"})
	resp := h.mustDo(logical.UpdateOperation, "rotate-root/ob", map[string]any{"planned": true})
	if !containsAny(resp.Warnings, "the schedule rotates the credential first") {
		t.Errorf("no warning that the schedule comes first: %q", resp.Warnings)
	}
	h.mustDo(logical.DeleteOperation, "rotate-root/ob", nil)
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"rotation_period": "24h"})
	h.clock.Advance(2 * time.Hour)
	resp = h.mustDo(logical.UpdateOperation, "rotate-root/ob", map[string]any{"planned": true})
	if containsAny(resp.Warnings, "the schedule rotates the credential first") {
		t.Errorf("a warning that the schedule comes first, with the schedule a day away: %q", resp.Warnings)
	}
}

// A plan made, then a rotation now that ends unsettled (the plan stays: the credential is
// unchanged), then planned=true once the provider has applied the change: the settle adopts
// the new credential, and the plan in memory is void (plan()); the answer is a new plan,
// not "planned already" with the void one (plan() voids it in memory, not only attach in
// storage).
func TestPlanGuardPlanAfterASettledRotationIsNew(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.clock.Advance(2 * time.Hour)
	old := h.plan("ob")
	h.unsettledRotationOf("ob")
	h.sim.ClearFaults()
	h.clock.Advance(time.Minute)
	resp := h.mustDo(logical.UpdateOperation, "rotate-root/ob", map[string]any{"planned": true})
	if containsAny(resp.Warnings, "planned already") || resp.Data["rotates_at"] == old.Format(time.RFC3339) {
		t.Errorf("planned=true after the settle adopted a new credential answered the void plan: %v %q", resp.Data, resp.Warnings)
	}
	if got := h.plannedRotation("ob"); got == "" {
		t.Errorf("no plan stored for the new credential")
	}
}

// plannedAt rounds up to whole seconds (rotates_at is RFC 3339 to the second): with a clock
// off the second, rotates_at is the latest lease's end and the margin, rounded up, never
// less (the answer would name a moment before the rotation really runs) nor a whole extra
// minute (the other tests' clocks are all on the second).
func TestPlanGuardPlannedAtRoundsUpToTheSecond(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.clock.Advance(2*time.Hour + 300*time.Millisecond)
	end := leaseEnd(h.clock.Now(), h.creds("ob"))
	h.clock.Advance(time.Minute)
	at := h.plan("ob")
	want := end.Add(rotationLeaseMargin).Truncate(time.Second).Add(time.Second)
	if !at.Equal(want) {
		t.Errorf("rotates_at %s, want %s (the lease's end %s and the margin, rounded up)", at, want, end)
	}
	h.clock.Advance(at.Add(-time.Millisecond).Sub(h.clock.Now()))
	h.periodic()
	if h.rotatedFrom(obKey) {
		t.Errorf("the plan ran before its rotates_at %s", at)
	}
}

// A failed plan on a config whose schedule is paused: a read during the backoff succeeds,
// capped at the backoff, without retrying the rotation (schedule.go:70-71's backoff in
// planDue: its mutants live in the repository's tests); resuming the schedule clears the
// failures, and the plan must stay at its backoff, where those leases end
// (rotation_fields.go:188's keepPlanBackoff: deleting it lives).
func TestPlanGuardResumeKeepsThePlanAtItsBackoff(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "24h", "disable_automated_rotation": true})
	h.clock.Advance(2 * time.Hour)
	at := h.plan("ob")
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 400, Times: -1})
	h.clock.Advance(at.Sub(h.clock.Now()))
	h.periodic() // refused outright: nothing changed, retried after a minute
	if h.mustDo(logical.ReadOperation, "config/ob", nil).Data["rotation_failures"] == nil {
		t.Fatal("the planned rotation did not fail: the test proves nothing")
	}
	h.clock.Advance(time.Second)
	lease := h.creds("ob") // during the backoff: no retry, a lease capped at it
	end := leaseEnd(h.clock.Now(), lease)
	if n := h.sim.Calls(simulator.RouteOffBlocksCredentials); n != 1 {
		t.Errorf("%d rotation calls, want 1: a read during the backoff retried the rotation", n)
	}
	h.sim.ClearFaults()
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"disable_automated_rotation": false})
	h.clock.Advance(5 * time.Second)
	h.periodic()
	if _, err := h.sim.Validate(lease.Data["token"].(string)); err != nil && h.clock.Now().Before(end) {
		t.Errorf("at %s the token of a lease that ends at %s is dead: %v", h.clock.Now(), end, err)
	}
}
