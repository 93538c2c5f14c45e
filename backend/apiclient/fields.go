package apiclient

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Present reports whether a JSON member holds a value: it exists and is not null.
func Present(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && string(raw) != "null"
}

// Number reads a JSON number or a string holding one. It rejects NaN, infinities and
// anything else.
func Number(raw json.RawMessage) (float64, bool) {
	if !Present(raw) {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		var err error
		if f, err = strconv.ParseFloat(s, 64); err != nil {
			return 0, false
		}
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// maxUnixSeconds is year 9999: anything later is not a plausible expiry.
const maxUnixSeconds = 253402300799

// Instant reads an absolute time: unix seconds (or milliseconds, when the number is too
// large to be seconds), as a number or a numeric string, or an RFC 3339 string.
func Instant(raw json.RawMessage) (time.Time, bool) {
	if f, ok := Number(raw); ok {
		if f > maxUnixSeconds {
			f /= 1000
		}
		if f <= 0 || f > maxUnixSeconds {
			return time.Time{}, false
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// maxRelative bounds a relative lifetime: ten years is far past any token's.
const maxRelative = 10 * 365 * 24 * time.Hour

// Duration reads a relative lifetime in seconds, as a number or a numeric string; less than
// one second is not a plausible lifetime.
func Duration(raw json.RawMessage) (time.Duration, bool) {
	f, ok := Number(raw)
	if !ok || f < 1 || f > maxRelative.Seconds() {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

// String reads a non-empty JSON string.
func String(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil || s == "" {
		return "", false
	}
	return s, true
}
