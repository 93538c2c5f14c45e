package apitokens

import (
	"fmt"
	"time"
)

// maxSafetyMargin is the most a lease is shortened before the provider's expiry, so that a
// client never holds a lease on a token that is already dead.
const maxSafetyMargin = 60 * time.Second

// minLease is the shortest lease worth issuing; a token with less life left is refused.
const minLease = time.Second

// leaseTTL returns the lease for a token that expires at expiresAt, read at now: the time
// left minus a safety margin (a tenth of the time left, at most maxSafetyMargin), capped by
// maxTTL when positive, and truncated to whole seconds (Vault's lease unit), so the lease
// never outlives the token. Vault itself caps it further by the mount's maximum lease. A
// token with less than minLease left after the margin is an error: it is expired, or the
// clocks disagree.
func leaseTTL(now, expiresAt time.Time, maxTTL time.Duration) (time.Duration, error) {
	left := expiresAt.Sub(now)
	ttl := leaseEndAt(now, expiresAt, maxTTL).Sub(now).Truncate(time.Second)
	if ttl < minLease {
		return 0, fmt.Errorf("the provider's token expires at %s, %s from now by this server's clock: "+
			"too soon for a lease (check the clocks)", expiresAt.UTC().Format(time.RFC3339), formatDuration(left.Round(time.Second)))
	}
	return ttl, nil
}

// leaseEndAt returns when the lease of a token that expires at expiresAt, read at now, ends at
// the latest: now plus leaseTTL's lease before its truncation to whole seconds (the time left
// minus the safety margin, capped by maxTTL). A lease handed out later than now is truncated
// from the time left until it (issueLease), so that time passing in between costs no second.
func leaseEndAt(now, expiresAt time.Time, maxTTL time.Duration) time.Time {
	left := expiresAt.Sub(now)
	ttl := left - min(left/10, maxSafetyMargin)
	if maxTTL > 0 && ttl > maxTTL {
		ttl = maxTTL
	}
	return now.Add(ttl)
}
