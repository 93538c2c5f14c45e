package apitokens

import (
	"fmt"
	"testing"
	"time"
)

// No lease outlives the scheduled rotation that kills its token. For reads every 100 ms
// across the last 5 seconds before next_vault_rotation (T): nothing rotates before T-1s (the
// earliest a rotation may run, periodic or read-triggered); a lease of the old credential
// ends by T-2s (a second to spare before T-1s); a read with no room for a lease of a second
// waits for the rotation and gets a token of the new credential.
func TestLeaseCapBeforeScheduledRotation(t *testing.T) {
	for step := 0; step < 50; step++ {
		before := 5*time.Second - time.Duration(step)*100*time.Millisecond
		t.Run(fmt.Sprintf("T-%s", before), func(t *testing.T) {
			h := newHarness(t)
			h.clock.Advance(350 * time.Millisecond) // the schedule, and T, fall within a second
			h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
			next := h.clock.Now().Add(time.Hour)
			earliest := next.Add(-time.Second)
			readAt := next.Add(-before)
			h.clock.Advance(readAt.Sub(h.clock.Now()))

			if readAt.Before(earliest) {
				if h.periodic(); h.rotatedFrom(obKey) {
					t.Fatalf("the periodic call rotated at T-%s, before T-1s", before)
				}
			}
			resp := h.creds("ob") // fails on an error or a token the provider refuses now
			if !h.rotatedFrom(obKey) {
				if end := readAt.Add(resp.Secret.TTL); end.After(earliest.Add(-time.Second)) {
					t.Fatalf("read at T-%s: lease %s ends at T-%s, after T-2s (the rotation may run at T-1s)",
						before, resp.Secret.TTL, next.Sub(end))
				}
				return
			}
			if before > 3*time.Second {
				t.Fatalf("read at T-%s rotated, though a lease of a second fitted before T-2s", before)
			}
			if at := h.stored("ob").LastRotated; at.Before(earliest) {
				t.Fatalf("read at T-%s rotated at T-%s, before T-1s", before, next.Sub(at))
			}
			if resp.Secret.TTL < time.Minute {
				t.Fatalf("read at T-%s: lease %s of the new credential", before, resp.Secret.TTL)
			}
		})
	}
}

// rotationLeaseCap is a bound, not a floor, in whole seconds rounded down.
func TestLeaseCapArithmetic(t *testing.T) {
	since := time.Date(2026, 11, 23, 12, 0, 0, 350e6, time.UTC)
	c := &accountConfig{}
	c.Rotation.RotationPeriod = time.Hour
	c.Rotation.Since = since
	next := since.Add(time.Hour)
	cases := []struct {
		before       time.Duration // T - now
		cap          time.Duration
		first, immin bool
		due          bool
	}{
		{before: 10 * time.Minute, cap: 10*time.Minute - 2*time.Second},
		{before: 4500 * time.Millisecond, cap: 2 * time.Second},
		{before: 3 * time.Second, cap: time.Second},
		{before: 2999 * time.Millisecond, cap: 0, first: true, immin: true},
		{before: 1001 * time.Millisecond, cap: 0, first: true, immin: true},
		{before: time.Second, cap: -time.Second, first: true, due: true},
		{before: 0, cap: -2 * time.Second, first: true, due: true},
	}
	for _, tc := range cases {
		now := next.Add(-tc.before)
		got, ok := c.rotationLeaseCap(now)
		if !ok || got != tc.cap || c.rotateFirst(now) != tc.first || c.rotationImminent(now) != tc.immin ||
			c.rotationDue(now) != tc.due || !c.rotationStart(now).Equal(next.Add(-time.Second)) {
			t.Errorf("T-%s: cap %s %v first %v imminent %v due %v start T-%s; want cap %s first %v imminent %v due %v start T-1s",
				tc.before, got, ok, c.rotateFirst(now), c.rotationImminent(now), c.rotationDue(now),
				next.Sub(c.rotationStart(now)), tc.cap, tc.first, tc.immin, tc.due)
		}
	}
	if _, ok := (&accountConfig{}).rotationLeaseCap(next); ok {
		t.Error("a config without a schedule has a lease cap")
	}
}
