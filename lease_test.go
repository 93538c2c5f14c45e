package apitokens

import (
	"testing"
	"time"
)

func TestLeaseTTL(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		left    time.Duration // expiresAt - now
		maxTTL  time.Duration
		want    time.Duration
		wantErr bool
	}{
		{name: "one hour: margin capped at 60s", left: time.Hour, want: 59 * time.Minute},
		{name: "twelve hours: margin 60s", left: 12 * time.Hour, want: 12*time.Hour - time.Minute},
		{name: "ten minutes: margin 60s", left: 10 * time.Minute, want: 9 * time.Minute},
		{name: "five minutes: margin a tenth", left: 5 * time.Minute, want: 270 * time.Second},
		{name: "30s token: 27s lease", left: 30 * time.Second, want: 27 * time.Second},
		{name: "fractional seconds truncate down", left: 90*time.Second + 999*time.Millisecond, want: 81 * time.Second},
		{name: "max_ttl caps", left: time.Hour, maxTTL: 10 * time.Minute, want: 10 * time.Minute},
		{name: "max_ttl above expiry does not extend", left: 10 * time.Minute, maxTTL: time.Hour, want: 9 * time.Minute},
		{name: "max_ttl 1s still leases", left: time.Hour, maxTTL: time.Second, want: time.Second},
		{name: "already expired", left: -time.Minute, wantErr: true},
		{name: "expires now", left: 0, wantErr: true},
		{name: "clock skew: under a second left", left: 900 * time.Millisecond, wantErr: true},
		{name: "just enough for one second", left: 1200 * time.Millisecond, want: time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := leaseTTL(now, now.Add(tc.left), tc.maxTTL)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error, got lease %s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("lease = %s, want %s", got, tc.want)
			}
			if !now.Add(got).Before(now.Add(tc.left)) {
				t.Fatalf("lease %s does not end before the token (%s)", got, tc.left)
			}
		})
	}
}

// A backend clock ahead of the provider's shortens the lease by the skew, never lengthens it.
func TestLeaseTTLClockSkew(t *testing.T) {
	providerNow := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	exp := providerNow.Add(time.Hour)
	for _, skew := range []time.Duration{0, 30 * time.Second, 5 * time.Minute, -2 * time.Minute} {
		got, err := leaseTTL(providerNow.Add(skew), exp, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Hour - skew - time.Minute; got != want {
			t.Errorf("skew %s: lease %s, want %s", skew, got, want)
		}
	}
}
