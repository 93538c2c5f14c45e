package apitokens

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// hostileToken is what a Vault Agent template such as `export TOKEN={{ .Data.token }}` would
// write into a file an application sources, were it handed out.
const hostileToken = "abc\nexport LD_PRELOAD=/tmp/x.so\r\n\x1b[2J"

// A token that is no valid Bearer token is never handed out, by any provider or grant: the
// read is a 502 naming the provider and the call, and neither it nor the log quotes the value.
func TestCredsRefusesHostileToken(t *testing.T) {
	h := newHarness(t)
	h.everyGrant()
	for _, value := range []string{hostileToken, "two words", "tok\x00en", "\xff\xfe", `tok"en`} {
		h.sim.SetHostileTokens(func(_, kind string) string {
			if kind == "refresh" {
				return "" // a refresh token is stored, never handed out
			}
			return value
		})
		for name, call := range map[string]string{"ob": "offblocks: mint token (POST /auth/token)",
			"bq": "bloq: client token (POST /auth/token)", "bq-acct": "bloq: account token (POST /auth)",
			"bq-rt": "bloq: refresh token (POST /auth/token)", "ops": "opsnow: mint token (POST /platform/v2/identity/api-keys/token)"} {
			resp, err := h.do(logical.ReadOperation, "creds/"+name, nil)
			coded, ok := err.(logical.HTTPCodedError)
			if !ok || coded.Code() != 502 || !strings.Contains(err.Error(), call+": status 200 OK: malformed response: ") ||
				!strings.Contains(err.Error(), "the token is not a valid Bearer token") {
				t.Fatalf("creds/%s with token %q: %v %v", name, value, err, respErr(resp))
			}
			if strings.Contains(err.Error(), value) {
				t.Fatalf("creds/%s: the error quotes the token: %v", name, err)
			}
		}
	}
	h.sim.SetHostileTokens(nil)
	for _, name := range []string{"ob", "bq", "bq-acct", "bq-rt", "ops"} {
		h.creds(name)
	}
	if strings.Contains(h.logs.String(), "LD_PRELOAD") {
		t.Fatal("the log quotes the hostile token")
	}
}

// A rotation whose confirmation gets a 200 that carries no usable token has not seen the new
// credential work: the answer proves nothing (it may not come from the provider at all), so
// under the one rule it is unknown, and the new credential stays a fallback, unsettled, until
// a usable answer settles it. (Taking it for seen-working would drop the old credential from
// storage: the deterministic simulation finds that loss with its impostor-200 fault.)
func TestRotationConfirmedOnlyByAUsableToken(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	var issued atomic.Int32
	h.sim.SetHostileTokens(func(string, string) string {
		if issued.Add(1) == 1 {
			return "" // the Bearer of the current pair that authorises the PUT
		}
		return hostileToken // every confirmation mint of the new pair
	})
	_, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil)
	if coded, ok := err.(logical.HTTPCodedError); !ok || coded.Code() != 502 || !strings.Contains(err.Error(), "unsettled") ||
		!strings.Contains(err.Error(), "not a valid Bearer token") {
		t.Fatalf("rotate-root with unusable confirmations: %v", err)
	}
	if h.fallbacks("ob") != 1 || h.stored("ob").ob().APIKey != obKey {
		t.Fatalf("the new pair is not held as a fallback beside the old one: %+v", h.stored("ob").publicData(h.clock.Now()))
	}
	h.wantUnsettledRead("ob")
	h.sim.SetHostileTokens(nil)
	h.assertOffBlocksConsistent("ob")
	if h.fallbacks("ob") != 0 || h.stored("ob").ob().APIKey == obKey {
		t.Fatal("a usable answer did not settle the rotation on the new pair")
	}
}

// An expiry further away than the documented lifetime of the token's kind (a JWT exp or an
// expiresAt in year 9999, or a year away) is capped at the issue time plus that lifetime: the
// lease ends before it, a shared token is not handed out past it, the cap is logged, and
// tokenLifeBound is that same bound.
func TestFarExpiryCappedAtDocumentedLifetime(t *testing.T) {
	h := newHarness(t)
	h.everyGrant()
	year9999 := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, c := range []struct {
		claim func(time.Time) time.Time
		shape simulator.OpsNowShape
	}{
		{func(time.Time) time.Time { return year9999 }, simulator.ShapeWrappedExpiresAt},
		{func(real time.Time) time.Time { return real.AddDate(1, 0, 0) }, simulator.ShapeWrappedExpiresAt},
		// OpsNow's relative expiresIn of a year: as far past the documented lifetime, capped
		// the same way (year 9999 is more than the 10 years a relative expiry may say).
		{func(real time.Time) time.Time { return real.AddDate(1, 0, 0) }, simulator.ShapeWrappedExpiresIn},
	} {
		h.sim.SetClaimedExpiry(func(_, _ string, real time.Time) time.Time { return c.claim(real) })
		h.sim.SetOpsNowShape(c.shape)
		for name, life := range map[string]time.Duration{"ob": time.Hour, "bq": time.Hour, "bq-acct": 12 * time.Hour,
			"bq-rt": time.Hour, "ops": time.Hour} {
			now := h.clock.Now()
			resp := h.creds(name)
			exp, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
			if !exp.Equal(now.Add(life)) || resp.Secret.TTL > life || resp.Secret.TTL < life-time.Minute {
				t.Fatalf("creds/%s: expires_at %s, lease %s; want %s, a lease under %s", name, exp, resp.Secret.TTL, now.Add(life), life)
			}
			if b := h.stored(name).tokenLifeBound(); b != life {
				t.Fatalf("config %s: tokenLifeBound %s, the cap %s", name, b, life)
			}
		}
	}
	if line := h.logLine("claims a later expiry than the documented lifetime"); !strings.Contains(line, "[WARN]") ||
		!strings.Contains(line, "claimed_expiry") {
		t.Fatalf("the cap is not logged as a warning: %q", line)
	}
	// Shared: not handed out once the capped expiry is near, though the claim is far.
	h.sim.SetClaimedExpiry(func(string, string, time.Time) time.Time { return year9999 })
	h.mustDo(logical.CreateOperation, "config/ob-shared", map[string]any{"provider": "offblocks",
		"base_url": h.url + simulator.OffBlocksPrefix, "api_key": obKey, "api_secret": obSecret, "token_reuse": true})
	first := h.creds("ob-shared").Data["token"]
	h.clock.Advance(45 * time.Minute)
	if again := h.creds("ob-shared").Data["token"]; again == first {
		t.Fatal("a token with 15 of its capped 60 minutes left was shared: its year-9999 claim was believed")
	}
}

// A few seconds past the documented lifetime is the provider's clock a little ahead: capped,
// and logged at debug level only.
func TestSlightlyLongerExpiryCappedQuietly(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.SetClaimedExpiry(func(_, _ string, real time.Time) time.Time { return real.Add(5 * time.Second) })
	h.creds("ob")
	if line := h.logLine("claims a later expiry"); !strings.Contains(line, "[DEBUG]") {
		t.Fatalf("a 5-second cap: %q", line)
	}
}
