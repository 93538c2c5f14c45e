//go:build testhooks

package apitokens

import (
	"os"
	"syscall"
)

// This file exists only in the binary the acceptance suite builds for its crash and
// scheduling tests (go build -tags testhooks), never in a release. Its switches are set
// through `vault plugin register -env`, which takes root in Vault.

// crashpointEnv names a rotation step at which the plugin kills its parent (Vault) with
// SIGKILL, for the one step no provider call marks (after the new credential is stored as
// the current one, before the old one is retired).
const crashpointEnv = "APITOKENS_CRASHPOINT"

// noLeaseCapEnv, set to 1, stops leases from being capped at the next scheduled rotation:
// the suite measures what that cap is worth.
const noLeaseCapEnv = "APITOKENS_TEST_NO_ROTATION_LEASE_CAP"

// crashpoint kills Vault, and waits to be killed with it, when step is the one named by
// crashpointEnv; otherwise it does nothing.
func crashpoint(step string) {
	if os.Getenv(crashpointEnv) != step {
		return
	}
	_ = syscall.Kill(os.Getppid(), syscall.SIGKILL)
	select {}
}

// capLeasesAtRotation reports whether leases end before the next scheduled rotation may run.
func capLeasesAtRotation() bool { return os.Getenv(noLeaseCapEnv) != "1" }
