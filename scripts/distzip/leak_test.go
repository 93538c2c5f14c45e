package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them, as in every unit suite.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
