//go:build !linux

package apitokens

import "time"

// watchParent polls the parent process id: this platform cannot ask the kernel for a
// signal on the parent's death.
func watchParent(ppid int, interval time.Duration, stop <-chan struct{}, gone func()) {
	go pollParent(ppid, interval, stop, gone)
}
