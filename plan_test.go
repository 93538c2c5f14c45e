package apitokens

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// plan asks for config name's planned rotation and returns its rotates_at.
func (h *harness) plan(name string) time.Time {
	h.t.Helper()
	resp := h.mustDo(logical.UpdateOperation, "rotate-root/"+name, map[string]any{"planned": true})
	at, err := time.Parse(time.RFC3339, resp.Data["rotates_at"].(string))
	if err != nil {
		h.t.Fatalf("rotates_at: %v", err)
	}
	return at
}

// plannedRotation returns config name's planned_rotation as a config read shows it ("" if
// none).
func (h *harness) plannedRotation(name string) string {
	h.t.Helper()
	v, _ := h.mustDo(logical.ReadOperation, "config/"+name, nil).Data["planned_rotation"].(string)
	return v
}

// leaseEnd is when the lease of a creds read at now ends.
func leaseEnd(now time.Time, resp *logical.Response) time.Time { return now.Add(resp.Secret.TTL) }

// A planned rotation waits exactly for the latest lease handed out of the current credential
// (tight), caps every later lease at it, shows on config read, is answered again to a second
// planned=true, and runs at its time within the read that finds it due: the reader gets a
// token of the new credential, the old one is dead, and the rotation counts as planned.
func TestPlannedRotationWaitsForTheLatestLease(t *testing.T) {
	for _, provider := range []string{"ob", "bq"} {
		t.Run(provider, func(t *testing.T) {
			h := newHarness(t)
			if provider == "ob" {
				h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
			} else {
				h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
			}
			h.clock.Advance(2 * time.Hour) // the leases of an earlier process have ended
			first := h.creds(provider)
			last := h.creds(provider) // the latest lease: the plan waits for it, no longer
			end := leaseEnd(h.clock.Now(), last)
			h.clock.Advance(10 * time.Minute)
			at := h.plan(provider)
			if want := end.Add(rotationLeaseMargin); !at.Equal(want) {
				t.Fatalf("rotates_at = %s, want %s (the latest lease's end and a margin)", at, want)
			}
			if got := h.plannedRotation(provider); got != at.Format(time.RFC3339) {
				t.Errorf("planned_rotation = %q, want %s", got, at.Format(time.RFC3339))
			}
			if got := h.nextRotation(provider); got != at.Format(time.RFC3339) {
				t.Errorf("next_vault_rotation = %q, want the plan's %s", got, at.Format(time.RFC3339))
			}
			resp := h.mustDo(logical.UpdateOperation, "rotate-root/"+provider, map[string]any{"planned": true})
			if resp.Data["rotates_at"] != at.Format(time.RFC3339) || !strings.Contains(strings.Join(resp.Warnings, " "), "planned already") {
				t.Errorf("a second planned=true answered %v %q, want the plan made already", resp.Data, resp.Warnings)
			}
			h.clock.Advance(20 * time.Minute)
			capped := h.creds(provider)
			if e := leaseEnd(h.clock.Now(), capped); e.After(at.Add(-rotationLeaseMargin)) {
				t.Errorf("a lease handed out after the plan ends at %s, past its rotation at %s less the margin", e, at)
			}
			if h.rotateEvents() != nil {
				t.Fatalf("rotated before its time: %v", h.rotateEvents())
			}
			h.clock.Advance(at.Sub(h.clock.Now()))
			fresh := h.creds(provider) // finds the rotation due: performs it first
			if _, err := h.sim.Validate(fresh.Data["token"].(string)); err != nil {
				t.Errorf("the token of the read at the planned time is not valid: %v", err)
			}
			for _, old := range []*logical.Response{first, last, capped} {
				if _, err := h.sim.Validate(old.Data["token"].(string)); err == nil {
					t.Errorf("a token of the replaced credential still works after the planned rotation")
				}
			}
			if ev := h.rotateEvents(); len(ev) != 1 || !strings.HasSuffix(ev[0], "/planned/success") {
				t.Errorf("rotation events = %v, want one planned", ev)
			}
			if !strings.Contains(h.scrape(), `trigger="planned"`) {
				t.Errorf("no rotation counted with trigger=\"planned\"")
			}
			if got := h.plannedRotation(provider); got != "" {
				t.Errorf("planned_rotation after the rotation = %q, want none", got)
			}
			if l := h.creds(provider); l.Secret.TTL < 50*time.Minute {
				t.Errorf("a lease after the planned rotation is %s: still capped", l.Secret.TTL)
			}
		})
	}
}

// Right after the backend starts, a plan waits one documented token lifetime from the start
// (the leases an earlier process handed out are unknown); on Vault Enterprise, whose
// performance standbys serve creds reads themselves, one lifetime from now.
func TestPlannedRotationBoundWhereLeasesAreUnknown(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	start := h.clock.Now()
	h.clock.Advance(5 * time.Minute)
	if at, want := h.plan("ob"), start.Add(time.Hour+rotationLeaseMargin); !at.Equal(want) {
		t.Errorf("rotates_at right after the start = %s, want %s", at, want)
	}
	h.b.marksComplete = marksComplete(&logical.PluginEnvironment{VaultVersion: "1.19.5+ent", VaultVersionMetadata: "ent"}, nil)
	h.mustDo(logical.DeleteOperation, "rotate-root/ob", nil)
	h.clock.Advance(3 * time.Hour)
	if at, want := h.plan("ob"), h.clock.Now().Add(time.Hour+rotationLeaseMargin); !at.Equal(want) {
		t.Errorf("rotates_at on Vault Enterprise = %s, want %s (one lifetime from now)", at, want)
	}
	if marksComplete(nil, nil) || marksComplete(&logical.PluginEnvironment{VaultVersion: "1.19.5"}, errors.New("gRPC")) {
		t.Error("an unknown Vault counts as one whose active node sees every lease")
	}
}

// vault delete rotate-root/<name> cancels the plan (leases are no longer capped); a second
// delete says there is none; an immediate rotation, a write of the root credential and a
// delete of the config each drop it; a write of another field keeps it.
func TestPlannedRotationCancelledOrDropped(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.clock.Advance(2 * time.Hour)
	h.creds("ob")
	h.plan("ob")
	if resp := h.mustDo(logical.DeleteOperation, "rotate-root/ob", nil); resp != nil {
		t.Errorf("cancel answered %v, want nothing", resp)
	}
	if got := h.plannedRotation("ob"); got != "" {
		t.Errorf("planned_rotation after cancel = %q", got)
	}
	if l := h.creds("ob"); l.Secret.TTL < 50*time.Minute {
		t.Errorf("a lease after the cancel is %s: still capped", l.Secret.TTL)
	}
	if resp := h.mustDo(logical.DeleteOperation, "rotate-root/ob", nil); resp == nil || !strings.Contains(resp.Warnings[0], "no planned rotation") {
		t.Errorf("a cancel with no plan answered %v", resp)
	}

	h.plan("ob")
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"max_ttl": "30m"})
	if h.plannedRotation("ob") == "" {
		t.Error("a write of max_ttl dropped the plan")
	}
	h.mustDo(logical.UpdateOperation, "rotate-root/ob", nil)
	if got := h.plannedRotation("ob"); got != "" {
		t.Errorf("planned_rotation after an immediate rotation = %q", got)
	}

	h.plan("ob")
	key, secret := h.sim.OffBlocksPair(h.obID)
	resp := h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"api_key": key, "api_secret": secret})
	if got := h.plannedRotation("ob"); got != "" || !strings.Contains(strings.Join(resp.Warnings, " "), "is dropped") {
		t.Errorf("after a credential write: planned_rotation %q, warnings %q", got, resp.Warnings)
	}

	h.plan("ob")
	h.mustDo(logical.DeleteOperation, "config/ob", nil)
	h.mustDo(logical.CreateOperation, "config/ob", map[string]any{"provider": "offblocks", "base_url": h.offblocksConfig()["base_url"],
		"api_key": key, "api_secret": secret})
	if got := h.plannedRotation("ob"); got != "" {
		t.Errorf("a config deleted and created again has planned_rotation %q", got)
	}
	if _, err := h.do(logical.DeleteOperation, "rotate-root/none", nil); err == nil {
		t.Error("cancelling the plan of a config that does not exist succeeded")
	}
}

// A config that cannot rotate is refused a plan with a 400 that says why; so is one holding a
// fallback credential.
func TestPlannedRotationRefused(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	resp, err := h.do(logical.UpdateOperation, "rotate-root/ops", map[string]any{"planned": true})
	if msg, _ := respErr(resp).(string); !errors.Is(err, logical.ErrInvalidRequest) || !strings.Contains(msg, "cannot rotate") {
		t.Errorf("a plan for OpsNow: %v %v", msg, err)
	}
	h.unsettledRotation()
	resp, err = h.do(logical.UpdateOperation, "rotate-root/ob", map[string]any{"planned": true})
	if msg, _ := respErr(resp).(string); !errors.Is(err, logical.ErrInvalidRequest) || !strings.Contains(msg, "unsettled") {
		t.Errorf("a plan while unsettled: %v %v", msg, err)
	}
}

// A plan survives a restart (it is in storage, not memory) and Vault's periodic function runs
// it at its time.
func TestPlannedRotationSurvivesRestartAndRunsByPeriodic(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.clock.Advance(2 * time.Hour)
	h.creds("ob")
	at := h.plan("ob")
	h.startBackend()
	if got := h.plannedRotation("ob"); got != at.Format(time.RFC3339) {
		t.Fatalf("planned_rotation after a restart = %q, want %s", got, at.Format(time.RFC3339))
	}
	if l := leaseEnd(h.clock.Now(), h.creds("ob")); l.After(at) {
		t.Errorf("after a restart a lease ends at %s, past the plan's %s", l, at)
	}
	h.clock.Advance(at.Add(-time.Second).Sub(h.clock.Now()))
	h.periodic()
	if h.rotatedFrom(obKey) {
		t.Fatal("the periodic function rotated before the plan's time")
	}
	h.clock.Advance(at.Sub(h.clock.Now()))
	h.periodic()
	if !h.rotatedFrom(obKey) {
		t.Fatal("the periodic function did not run the plan at its time")
	}
	if got := h.plannedRotation("ob"); got != "" {
		t.Errorf("planned_rotation after the rotation = %q", got)
	}
}

// A read whose lease step waits for the config's lock behind a plan leases by the clock read
// once it holds the lock: the time it waited does not lengthen its lease past the plan. The
// hook makes the plan (and time pass) just before the read's last shared lock, after its
// token was minted.
func TestPlannedRotationCapsAReadThatWaitedForTheLock(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.clock.Advance(2 * time.Hour)
	h.creds("ob")
	var at time.Time
	rlocks, planning := 0, false
	h.hookLocks(func() {
		if rlocks++; rlocks == 3 && !planning { // token's, mintOnce's, then the lease step's
			planning = true
			h.clock.Advance(30 * time.Minute)
			at = h.plan("ob")
		}
	}, nil)
	resp := h.creds("ob")
	if at.IsZero() {
		t.Fatal("the hook did not plan during the read: the test proves nothing")
	}
	if end := leaseEnd(h.clock.Now(), resp); end.After(at.Add(-rotationLeaseMargin)) {
		t.Errorf("the read that waited behind the plan has a lease ending at %s, past the plan's %s less the margin",
			end, at)
	}
}

// On a real clock time always moves a little between the lease step under the lock and the
// read's return: that must not cost a lease a second, nor turn a 1 s lease just before a
// rotation into no lease at all (every read near a rotation answered 503 in a soak). The
// clock here moves a microsecond on every reading.
func TestLeaseOnAClockThatMoves(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.b.now = func() time.Time { h.clock.Advance(time.Microsecond); return h.clock.Now() }
	if ttl := h.creds("ob").Secret.TTL; ttl != 58*time.Minute+59*time.Second {
		t.Errorf("lease of a fresh 1 h token, an hour before the rotation: %s, want 58m59s", ttl)
	}
	next, _ := time.Parse(time.RFC3339, h.nextRotation("ob"))
	// The rotation may start a second before next_vault_rotation, and leases end a second
	// before that: 3.5 s before it there is room for a lease of 1 s.
	h.clock.Advance(next.Add(-3500 * time.Millisecond).Sub(h.clock.Now()))
	resp, err := h.do(logical.ReadOperation, "creds/ob", nil)
	if err != nil || resp.IsError() {
		t.Fatalf("a read with room for a 1 s lease before the rotation: %v %v", err, respErr(resp))
	}
	if resp.Secret.TTL != time.Second {
		t.Errorf("lease %s, want 1s", resp.Secret.TTL)
	}
}
