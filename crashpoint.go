package apitokens

import (
	"os"
	"syscall"
)

// crashpointEnv names a rotation step at which the plugin kills its parent (Vault) with
// SIGKILL. It exists for the crash tests, for the one step no provider call marks (after
// the config write, before the WAL delete), and is only ever set through
// `vault plugin register -env`, which takes root in Vault.
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
