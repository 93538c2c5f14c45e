package apitokens

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/automatedrotationutil"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// guardT0 is the harness clock's start, 2026-11-23T12:00Z, for configs built by hand.
var guardT0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// cronConfig is an OffBlocks config whose schedule, cron with window, was set at since.
func cronConfig(schedule string, window time.Duration, since time.Time) *accountConfig {
	c := &accountConfig{configHead: configHead{Provider: "offblocks"}}
	c.Rotation.AutomatedRotationParams = automatedrotationutil.AutomatedRotationParams{
		RotationSchedule: schedule, RotationWindow: window}
	c.Rotation.Since = since
	return c
}

// periodConfig is an OffBlocks config whose rotation_period was set at since.
func periodConfig(period time.Duration, since time.Time) *accountConfig {
	c := &accountConfig{configHead: configHead{Provider: "offblocks"}}
	c.Rotation.RotationPeriod, c.Rotation.Since = period, since
	return c
}

func wantNext(t *testing.T, what string, c *accountConfig, now, want time.Time) {
	t.Helper()
	if got := c.nextRotation(now); !got.Equal(want) {
		t.Errorf("%s: next rotation %s, want %s", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
}

// A cron slot's rotation_window is half open: the slot may rotate from the slot until the
// window's end, not at its end, which already counts as missed (the next slot is due).
func TestGuardCronWindowEndsTheSlot(t *testing.T) {
	c := cronConfig("0 0 * * *", time.Hour, guardT0)
	slot, following := guardT0.Add(12*time.Hour), guardT0.Add(36*time.Hour)
	wantNext(t, "a nanosecond before the window ends", c, slot.Add(time.Hour-time.Nanosecond), slot)
	wantNext(t, "as the window ends", c, slot.Add(time.Hour), following)
}

// The first rotation of a schedule set on an existing config waits for the leases handed out
// before it: the earliest moment it may run (a rotationEarly before its next rotation) is
// never before LeasesEndBy + rotationLeaseMargin, and it is the first such moment (a period),
// or the first cron slot at which it holds.
func TestGuardFirstRotationWaitsForEarlierLeases(t *testing.T) {
	// A period whose own next rotation would start half a second before the bound.
	p := periodConfig(time.Hour, guardT0)
	p.Rotation.LeasesEndBy = guardT0.Add(time.Hour - 500*time.Millisecond)
	wantNext(t, "period, bound within the early second", p, guardT0,
		p.Rotation.LeasesEndBy.Add(rotationLeaseMargin+rotationEarly))

	// Cron: hourly slots; the first at or after the bound is taken, never one before it.
	hourly := func(leasesEndBy time.Time) *accountConfig {
		c := cronConfig("0 * * * *", 0, guardT0)
		c.Rotation.LeasesEndBy = leasesEndBy
		return c
	}
	at := func(h, m, s, ns int) time.Time { return time.Date(2026, 11, 23, h, m, s, ns, time.UTC) }
	wantNext(t, "cron, bound mid-hour", hourly(at(13, 30, 0, 0)), guardT0, at(14, 0, 0, 0))
	wantNext(t, "cron, bound exactly a slot's earliest start", hourly(at(13, 59, 58, 0)), guardT0, at(14, 0, 0, 0))
	wantNext(t, "cron, bound 500 ns past a slot's earliest start", hourly(at(13, 59, 58, 500)), guardT0, at(15, 0, 0, 0))
	for _, c := range []*accountConfig{p, hourly(at(13, 30, 0, 0)), hourly(at(13, 59, 58, 500))} {
		if w, bound := c.rotationStart(guardT0), c.Rotation.LeasesEndBy.Add(rotationLeaseMargin); w.Before(bound) {
			t.Errorf("rotation may start at %s, before the earlier leases' bound %s", w, bound)
		}
	}

	// The bound holds only until the first rotation after the schedule was set.
	r := periodConfig(time.Minute, guardT0)
	r.Rotation.LeasesEndBy, r.LastRotated = guardT0.Add(time.Hour), guardT0.Add(2*time.Minute)
	wantNext(t, "rotated since the bound was set", r, r.LastRotated, r.LastRotated.Add(time.Minute))
}

// A failed slot's retries stay within its rotation_window: once the window closes, the next
// try is the next slot, not the backoff's RetryAt.
func TestGuardRetryDoesNotOutliveTheWindow(t *testing.T) {
	c := cronConfig("0 0 * * *", time.Hour, guardT0.Add(-time.Hour))
	slot := guardT0.Add(12 * time.Hour)
	c.Rotation.Failures, c.Rotation.RetryAt = 3, slot.Add(50*time.Minute)
	wantNext(t, "a retry still inside the window", c, slot.Add(30*time.Minute), slot.Add(50*time.Minute))
	wantNext(t, "a retry whose window closed", c, slot.Add(90*time.Minute), slot.Add(24*time.Hour))
}

// A schedule changed on a config with a schedule waits for the leases of the old one, which
// end before the old schedule's rotation (not a whole token lifetime later).
func TestGuardChangedScheduleWaitsForTheOldSchedulesLeases(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "10m"})
	start := h.clock.Now()
	h.creds("ob") // a lease that ends by the old schedule's rotation, 10 minutes on
	h.clock.Advance(time.Minute)
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"rotation_period": "1m"})
	want := start.Add(10*time.Minute - rotationEarly + rotationLeaseMargin + rotationEarly)
	if got := h.nextRotation("ob"); got != want.Format(time.RFC3339) {
		t.Fatalf("next_vault_rotation = %s, want %s (the old schedule's leases end by its rotation)", got, want.Format(time.RFC3339))
	}
}

// A config read shows rotation_period and rotation_window in whole seconds, like max_ttl.
func TestGuardScheduleFieldsInSeconds(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "2h"})
	if d := h.mustDo(logical.ReadOperation, "config/ob", nil).Data; d["rotation_period"] != int64(7200) || d["rotation_window"] != int64(0) {
		t.Fatalf("rotation_period %v (%T), rotation_window %v", d["rotation_period"], d["rotation_period"], d["rotation_window"])
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"rotation_period": 0,
		"rotation_schedule": "0 0 * * *", "rotation_window": "2h"})
	if d := h.mustDo(logical.ReadOperation, "config/ob", nil).Data; d["rotation_period"] != int64(0) || d["rotation_window"] != int64(7200) {
		t.Fatalf("rotation_period %v, rotation_window %v (%T)", d["rotation_period"], d["rotation_window"], d["rotation_window"])
	}
}

// A scheduled rotation of a config that is gone, or not due, does nothing and is no error:
// a config deleted meanwhile, or a rotation another read already performed (two readers that
// waited for the same imminent rotation rotate once).
func TestGuardScheduledRotationOnlyWhenDue(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if due, err := h.b.rotateScheduled(ctx, h.storage, "gone"); due || err != nil {
		t.Fatalf("a missing config: due %v, err %v", due, err)
	}
	if due, err := h.b.rotateIfDue(ctx, h.storage, "gone"); due || err != nil {
		t.Fatalf("a missing config, read-triggered: due %v, err %v", due, err)
	}
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.clock.Advance(time.Hour)
	if due, err := h.b.rotateScheduled(ctx, h.storage, "ob"); !due || err != nil || !h.rotatedFrom(obKey) {
		t.Fatalf("a due rotation: due %v, err %v, rotated %v", due, err, h.rotatedFrom(obKey))
	}
	key, _ := h.sim.OffBlocksPair(h.obID)
	if due, err := h.b.rotateScheduled(ctx, h.storage, "ob"); due || err != nil || h.rotatedFrom(key) {
		t.Fatalf("a rotation not due: due %v, err %v, rotated again %v", due, err, h.rotatedFrom(key))
	}
}

// On a node that cannot write, a read that finds the scheduled rotation imminent waits for
// nothing: it is forwarded at once (ErrReadOnly) to the active node, which rotates.
func TestGuardStandbyDoesNotWaitForAnImminentRotation(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	h.clock.Advance(time.Hour - rotationEarly - 1500*time.Millisecond) // no lease fits; not due yet
	before := h.clock.Now()
	if c := h.stored("ob"); !c.rotationImminent(before) {
		t.Fatal("the rotation is not imminent: the test would prove nothing")
	}
	if _, err := h.do(logical.ReadOperation, "creds/ob", nil); err != logical.ErrReadOnly {
		t.Fatalf("err %v, want logical.ErrReadOnly", err)
	}
	if waited := h.clock.Now().Sub(before); waited != 0 {
		t.Fatalf("the standby waited %s for a rotation it cannot perform", waited)
	}
}

// A read that gives up while it waits for an imminent rotation returns its context's error
// and performs no rotation (the next read, or Vault's periodic call, does).
func TestGuardReaderGivingUpDuringTheWaitRotatesNothing(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.clock.Advance(time.Hour - rotationEarly - 1500*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	h.b.sleep = func(_ context.Context, d time.Duration) error {
		h.clock.Advance(d) // the rotation comes due as the reader gives up
		cancel()
		return context.Canceled
	}
	due, err := h.b.rotateIfDue(ctx, h.storage, "ob")
	if due || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `scheduled rotation of "ob"`) {
		t.Fatalf("due %v, err %v; want the wait's context error", due, err)
	}
	if h.rotatedFrom(obKey) {
		t.Fatal("a reader that gave up performed the rotation")
	}
}

// A scheduled rotation runs under its own deadline, rotationBudget (4 × request_timeout):
// its provider calls and the confirmation, each within request_timeout.
func TestGuardScheduledRotationBudget(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h", "request_timeout": "20s"})
	h.sim.SetOffBlocksLag(time.Hour) // the confirmation waits
	var left time.Duration
	start := time.Now()
	h.b.sleep = func(ctx context.Context, d time.Duration) error {
		if dl, ok := ctx.Deadline(); ok && left == 0 {
			left = dl.Sub(start)
		}
		h.clock.Advance(d)
		return ctx.Err()
	}
	h.clock.Advance(time.Hour)
	h.periodic()
	if budget := 4 * 20 * time.Second; left < budget || left > budget+10*time.Second {
		t.Fatalf("the rotation's deadline was %s after it began, want %s (4 × request_timeout)", left, budget)
	}
}

// A scheduled rotation that fails while another node deletes the config records nothing and
// returns the rotation's error (there is no config left to retry).
func TestGuardFailedRotationOfADeletedConfig(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(map[string]any{"rotation_period": "1h"}))
	other := h.otherNode()
	h.sim.Inject(simulator.RouteBloqKeysList, simulator.Fault{Status: 503, Times: -1, OnHit: func() {
		if _, err := other.HandleRequest(context.Background(), &logical.Request{Operation: logical.DeleteOperation,
			Path: "config/bq", Storage: h.storage, MountPoint: "apitokens/"}); err != nil {
			t.Errorf("the other node's delete: %v", err)
		}
	}})
	h.clock.Advance(time.Hour)
	due, err := h.b.rotateScheduled(context.Background(), h.storage, "bq")
	if !due || err == nil {
		t.Fatalf("due %v, err %v; want the rotation's error", due, err)
	}
	if c, _ := getConfig(context.Background(), h.storage, "bq"); c != nil {
		t.Fatal("recording the failure brought the deleted config back")
	}
}

// deadlineStorage notes how long the context of each config write had left.
type deadlineStorage struct {
	logical.Storage
	left []time.Duration
}

func (s *deadlineStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if dl, ok := ctx.Deadline(); ok && strings.HasPrefix(e.Key, configPrefix) {
		s.left = append(s.left, time.Until(dl))
	}
	return s.Storage.Put(ctx, e)
}

// The failure of a scheduled rotation is recorded under a deadline of its own,
// rotationRecordTimeout (10 s), not the rotation's (which may be spent).
func TestGuardFailureRecordedUnderItsOwnDeadline(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h", "request_timeout": "20s"})
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 401})
	h.clock.Advance(time.Hour)
	s := &deadlineStorage{Storage: h.storage}
	if due, err := h.b.rotateScheduled(context.Background(), s, "ob"); !due || err == nil {
		t.Fatalf("due %v, err %v: want a failed rotation", due, err)
	}
	if h.stored("ob").Rotation.Failures != 1 || len(s.left) == 0 {
		t.Fatal("the failure was not recorded")
	}
	if left := s.left[len(s.left)-1]; left <= 9*time.Second || left > 10*time.Second {
		t.Fatalf("the failure was recorded with %s left, want at most 10 s (rotationRecordTimeout)", left)
	}
}
