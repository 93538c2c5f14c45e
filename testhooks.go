//go:build testhooks

package apitokens

import (
	"os"
	"syscall"
	"time"
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

// documentedLifetimeEnv, set to a Go duration (2m), stands for the documented lifetime of
// every kind of token (documentedLifetime) in this build: the bound planned rotations and
// schedules reckon leases by (tokenLifeBound), so that a real-Vault test of a planned
// rotation, against a simulator whose tokens live that long, need not wait an hour. The
// simulator must issue no token that lives longer, or that bound no longer holds.
const documentedLifetimeEnv = "APITOKENS_TEST_DOCUMENTED_LIFETIME"

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

// testDocumentedLifetime returns the lifetime documentedLifetimeEnv sets, or 0 (unset or not a
// positive duration): the drivers' documented lifetimes apply.
func testDocumentedLifetime() time.Duration {
	d, err := time.ParseDuration(os.Getenv(documentedLifetimeEnv))
	if err != nil || d <= 0 {
		return 0
	}
	return d
}
