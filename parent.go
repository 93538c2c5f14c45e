package apitokens

import (
	"os"
	"time"

	hclog "github.com/hashicorp/go-hclog"
)

// parentPoll is how often the plugin checks that Vault, its parent, is still there, where the
// kernel cannot be asked to say so.
const parentPoll = time.Second

// ExitWithParent makes this process exit as soon as the process that started it (Vault)
// is gone, so that a Vault that is killed or crashes leaves no plugin process behind. Call
// it first in main. It never exits while the parent lives: on Linux the kernel's
// parent-death signal is only a hint, confirmed by the parent process id having changed
// (the process was handed to a reaper); elsewhere, and as the fallback, the parent process
// id is polled.
func ExitWithParent(logger hclog.Logger) {
	watchParent(os.Getppid(), parentPoll, nil, func() {
		logger.Warn("Vault, which started this plugin, is gone: exiting")
		os.Exit(0)
	})
}

// pollParent calls gone once the parent process id differs from ppid, checking every
// interval, until stop is closed (nil: never).
func pollParent(ppid int, interval time.Duration, stop <-chan struct{}, gone func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if os.Getppid() != ppid {
				gone()
				return
			}
		}
	}
}
