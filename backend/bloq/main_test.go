package bloq_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine (a hung request, a retry loop, a
// connection reader) outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
