package main

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff yields the waits between retries: from min, doubling up to max, each drawn at
// random from [d/2, d] so that a fleet of apps that lost Vault together does not come back
// in step. Reset starts again from min. Not safe for concurrent use.
type backoff struct {
	min, max time.Duration
	next     time.Duration
	// rand returns a number in [0, n); nil means math/rand/v2.
	rand func(n int64) int64
}

// Next returns the wait before the next attempt.
func (b *backoff) Next() time.Duration {
	if b.next < b.min {
		b.next = b.min
	}
	d := b.next
	b.next = min(2*b.next, b.max)
	r := rand.Int64N
	if b.rand != nil {
		r = b.rand
	}
	half := int64(d / 2)
	return time.Duration(half + r(int64(d)-half+1))
}

// Reset makes the next wait min again (call it after a success).
func (b *backoff) Reset() { b.next = 0 }

// sleep waits for d, or less if ctx ends first, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
