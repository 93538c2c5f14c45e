package apitokens

import (
	"strconv"
	"strings"
	"time"
)

// formatDuration writes d the way the README and the vault CLI write durations: hours,
// minutes and seconds with the zero ones left out (1m, 10m, 1h, 1h30m, 720h, 1m30s; 0s for
// zero), the form `vault read` shows for max_ttl and that every duration field accepts
// back. From a second up, a fraction of a second is kept to the millisecond (1.5s, 1m0.25s);
// under a second, Go's own units are used (500ms, 1.5µs).
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	if d > -time.Second && d < time.Second {
		return d.String()
	}
	sign := ""
	if d < 0 {
		sign, d = "-", -d // the smallest Duration stays negative, but is right as a uint64
	}
	u := (uint64(d) + uint64(time.Millisecond)/2) / uint64(time.Millisecond) // whole milliseconds, rounded
	ms := u % 1000
	secs := u / 1000
	h, m, s := secs/3600, secs/60%60, secs%60

	var b strings.Builder
	b.WriteString(sign)
	if h > 0 {
		b.WriteString(strconv.FormatUint(h, 10) + "h")
	}
	if m > 0 {
		b.WriteString(strconv.FormatUint(m, 10) + "m")
	}
	switch {
	case ms > 0:
		frac := strings.TrimRight(strconv.FormatUint(1000+ms, 10)[1:], "0") // 250 → "25"
		b.WriteString(strconv.FormatUint(s, 10) + "." + frac + "s")
	case s > 0:
		b.WriteString(strconv.FormatUint(s, 10) + "s")
	}
	return b.String()
}
