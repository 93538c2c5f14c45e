//go:build !linux && !windows

package apitokens

import (
	"os"
	"time"
)

// watchParent polls the parent process id, which changes when the parent dies (the process
// is handed to a reaper): this platform cannot ask the kernel for a signal then. A parent
// gone already is noticed at once.
func watchParent(ppid int, interval time.Duration, stop <-chan struct{}, gone func()) {
	if os.Getppid() != ppid {
		gone()
		return
	}
	go pollParent(ppid, interval, stop, gone)
}
