package apitokens

import (
	"math"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
)

// formatDuration writes durations as the README does, never Go's 1m0s or 10m0s, and what
// it writes reads back as the same duration through Vault's own duration parsing.
func TestFormatDuration(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{time.Second, "1s"},
		{30 * time.Second, "30s"},
		{time.Minute, "1m"},
		{90 * time.Second, "1m30s"},
		{10 * time.Minute, "10m"},
		{58*time.Minute + 59*time.Second, "58m59s"},
		{time.Hour, "1h"},
		{time.Hour + time.Second, "1h1s"},
		{90 * time.Minute, "1h30m"},
		{2*time.Hour + 3*time.Minute + 4*time.Second, "2h3m4s"},
		{12 * time.Hour, "12h"},
		{720 * time.Hour, "720h"},
		{-time.Minute, "-1m"},
		{-90 * time.Minute, "-1h30m"},
		// Sub-second: Go's units under a second, milliseconds kept from a second up.
		{500 * time.Millisecond, "500ms"},
		{1500 * time.Microsecond, "1.5ms"},
		{time.Nanosecond, "1ns"},
		{-250 * time.Millisecond, "-250ms"},
		{1500 * time.Millisecond, "1.5s"},
		{time.Minute + 250*time.Millisecond, "1m0.25s"},
		{time.Hour + 5*time.Millisecond, "1h0.005s"},
		{time.Second + 400*time.Microsecond, "1s"},            // rounded to the millisecond
		{59*time.Second + 999600*time.Microsecond, "1m"},      // rounding carries into the minute
		{time.Duration(math.MaxInt64), "2562047h47m16.855s"},  // rounded, no overflow
		{time.Duration(math.MinInt64), "-2562047h47m16.855s"}, // -d would overflow
		{-(time.Hour + time.Minute + time.Second), "-1h1m1s"}, // the sign once, in front
		{3*time.Hour + 500*time.Millisecond, "3h0.5s"},        // no zero minutes
		{100 * time.Hour * 24 * 365, "876000h"},               // a century: hours, as 720h
	}
	for _, tc := range cases {
		if got := formatDuration(tc.d); got != tc.want {
			t.Errorf("formatDuration(%d) = %q, want %q", int64(tc.d), got, tc.want)
		}
	}
	// Whole seconds, as every duration field holds them, read back exactly as Vault reads
	// a duration field (TypeDurationSecond parses with parseutil).
	for _, secs := range []int64{0, 1, 59, 60, 61, 90, 599, 600, 3599, 3600, 3661, 5400, 86399, 86400, 2592000, 31536000} {
		d := time.Duration(secs) * time.Second
		back, err := parseField("max_ttl", &framework.FieldSchema{Type: framework.TypeDurationSecond}, formatDuration(d))
		if err != nil || back != int(secs) {
			t.Errorf("%ds: formatDuration gives %q, which reads back as %v (%v)", secs, formatDuration(d), back, err)
		}
	}
}
