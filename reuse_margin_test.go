package apitokens

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// With token_reuse and a min_token_ttl below 2 s, a shared token with just over 1 s left is
// not handed out: its lease would be under minLease once the safety margin is taken off, and
// the read would fail with "too soon for a lease". A fresh token is minted instead (need()'s
// 2*minLease floor).
func TestReuseSharedTokenTooShortForALeaseIsReplaced(t *testing.T) {
	for _, left := range []time.Duration{1050 * time.Millisecond, 1100 * time.Millisecond, 1500 * time.Millisecond} {
		t.Run(left.String(), func(t *testing.T) {
			h := newHarness(t)
			h.reuseConfig(map[string]any{"min_token_ttl": 1})
			first := h.creds("ob")
			exp, err := time.Parse(time.RFC3339, first.Data["expires_at"].(string))
			if err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(exp.Sub(h.clock.Now()) - left)
			resp, err := h.do(logical.ReadOperation, "creds/ob", nil)
			if err != nil || resp.IsError() {
				t.Fatalf("a read with the shared token %s from its expiry failed: %v %v", left, err, respErr(resp))
			}
			if resp.Data["token"] == first.Data["token"] || resp.Secret.TTL < minLease {
				t.Fatalf("the shared token with %s left was handed out again (lease %s)", left, resp.Secret.TTL)
			}
		})
	}
}
