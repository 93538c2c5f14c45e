package apitokens

import (
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The kernel's signal with the parent still there (its thread ended) is a false alarm: the
// watch never exits while the parent lives, and goes on by polling.
func TestWatchParentIgnoresAFalseAlarm(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	var gone atomic.Bool
	watchParent(os.Getppid(), 10*time.Millisecond, stop, func() { gone.Store(true) })
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // twenty polls
	if gone.Load() {
		t.Fatal("exited while the parent lives")
	}
}
