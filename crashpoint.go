//go:build crashpoint

package apitokens

import (
	"os"
	"syscall"
)

// crashpointEnv names a rotation step at which the plugin kills its parent (Vault) with
// SIGKILL. It exists only in the binary the crash tests build (go build -tags crashpoint),
// never in a release, for the one step no provider call marks (after the config write,
// before the WAL delete).
const crashpointEnv = "APITOKENS_CRASHPOINT"

// crashpoint kills Vault, and waits to be killed with it, when step is the one named by
// crashpointEnv; otherwise it does nothing.
func crashpoint(step string) {
	if os.Getenv(crashpointEnv) != step {
		return
	}
	_ = syscall.Kill(os.Getppid(), syscall.SIGKILL)
	select {}
}
