package apitokens

import (
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// A parent that is gone already when the watch starts is noticed at once (not at the first
// poll, an hour away here); one that goes later, at the next poll.
func TestWatchParentNoticesAGoneParent(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	var gone atomic.Bool
	watchParent(os.Getppid()+424242, time.Hour, stop, func() { gone.Store(true) })
	if !gone.Load() {
		t.Fatal("a parent gone before the watch began was not noticed at once")
	}
}
