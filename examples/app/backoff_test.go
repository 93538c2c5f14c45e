package main

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine (a LifetimeWatcher, a read loop)
// outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Waits double from min to max, each within [d/2, d] (checked at both ends of the random
// draw), and Reset starts again from min.
func TestBackoffDoublesWithinJitterUpToMax(t *testing.T) {
	ms := time.Millisecond
	nominal := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}
	for _, c := range []struct {
		name string
		draw func(n int64) int64
		want func(d time.Duration) time.Duration
	}{
		{"lowest draw", func(int64) int64 { return 0 }, func(d time.Duration) time.Duration { return d / 2 }},
		{"highest draw", func(n int64) int64 { return n - 1 }, func(d time.Duration) time.Duration { return d }},
	} {
		b := backoff{min: 100 * ms, max: time.Second, rand: c.draw}
		for round := 0; round < 2; round++ {
			for i, d := range nominal {
				if got := b.Next(); got != c.want(d) {
					t.Fatalf("%s, round %d, wait %d: %s, want %s", c.name, round, i, got, c.want(d))
				}
			}
			b.Reset()
		}
	}
	// The real random source stays in range too.
	b := backoff{min: 10 * ms, max: 80 * ms}
	for i, d := range []time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms, 80 * ms} {
		if got := b.Next(); got < d/2 || got > d {
			t.Errorf("wait %d: %s, want within [%s, %s]", i, got, d/2, d)
		}
	}
}
