//go:build windows

package apitokens

import (
	"errors"
	"time"

	"golang.org/x/sys/windows"
)

// watchParent waits on a handle to the parent process, opened now: on Windows the parent
// process id never changes after the parent exits, so it cannot be polled. A parent that
// no longer exists when the handle is asked for counts as gone. The wait wakes every
// interval to see whether stop was closed (nil: never).
func watchParent(ppid int, interval time.Duration, stop <-chan struct{}, gone func()) {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, uint32(ppid))
	if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
		gone() // no such process: the parent is gone already
		return
	}
	if err != nil {
		return // cannot watch it (access denied): never exit on a guess
	}
	go func() {
		defer windows.CloseHandle(h)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if ev, err := windows.WaitForSingleObject(h, uint32(interval/time.Millisecond)); err == nil && ev == windows.WAIT_OBJECT_0 {
				gone()
				return
			}
		}
	}()
}
