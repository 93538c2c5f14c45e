//go:build !testhooks

package apitokens

import "time"

// crashpoint marks a rotation step the crash tests can kill Vault at. Without the testhooks
// build tag (every binary but the acceptance suite's own test build) it does nothing.
func crashpoint(string) {}

// capLeasesAtRotation reports whether leases end before the next scheduled rotation may run:
// always, but in the acceptance suite's test build (testhooks.go).
func capLeasesAtRotation() bool { return true }

// testDocumentedLifetime overrides the documented token lifetimes in the acceptance suite's
// test build only (testhooks.go); here it is 0: the drivers' documented lifetimes apply.
func testDocumentedLifetime() time.Duration { return 0 }
