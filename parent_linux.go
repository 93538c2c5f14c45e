//go:build linux

package apitokens

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// watchParent asks the kernel for SIGUSR1 whenever this process is handed to a new parent,
// then checks that the parent has not gone already (it may have died before the request).
// The kernel also sends the signal when the parent thread that started this process ends
// while the parent lives (the process then goes to another of its threads, as happens while
// a dying Vault's threads end one by one), so every signal is checked against the parent
// process id, and the id is also polled. The watch ends when stop is closed (nil: never).
func watchParent(ppid int, interval time.Duration, stop <-chan struct{}, gone func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGUSR1), 0, 0, 0); err != nil {
		signal.Stop(sig)
		sig = nil // a nil channel never delivers: poll only
	}
	if os.Getppid() != ppid {
		signal.Stop(sig)
		gone()
		return
	}
	go func() {
		defer signal.Stop(sig)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-sig:
			case <-t.C:
			}
			if os.Getppid() != ppid {
				gone()
				return
			}
		}
	}()
}
