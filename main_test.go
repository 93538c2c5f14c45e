package apitokens

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine (a hung request, a retry loop, a
// connection reader) outlives them. The one ignored is started by package init in the
// sdk's opencensus dependency and lives for the whole process.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"))
}
