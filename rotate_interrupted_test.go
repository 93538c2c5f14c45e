package apitokens

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// assertStoredIsProviders checks storage alone, with no creds read (which could settle a
// rotation itself): the stored pair is the one the provider accepts, no fallback is held and
// no WAL entry is left.
func (h *harness) assertStoredIsProviders(name string) {
	h.t.Helper()
	key, secret := h.sim.OffBlocksPair(h.obID)
	c := h.stored(name)
	if c.ob().APIKey != key || c.ob().APISecret != secret {
		h.t.Fatalf("stored pair %s is not the provider's %s: the credential is lost", c.ob().APIKey, key)
	}
	if len(c.Fallbacks) != 0 {
		h.t.Fatalf("%d fallbacks left", len(c.Fallbacks))
	}
	if n := h.walCount(); n != 0 {
		h.t.Fatalf("%d WAL entries left", n)
	}
}

// Every step of an OffBlocks rotation, interrupted, and recovered once by creds reads and
// once by Vault's rollback alone (no read first, so its periodic function must do the work).
// Afterwards the stored pair is the one the provider accepts, whether the rotation took or
// not, and no fallback is left.
func TestRotateOffBlocksInterrupted(t *testing.T) {
	cases := []struct {
		name  string
		setup func(h *harness)
		// wantRotated: the provider ends up with a new pair.
		wantRotated bool
		// wantErr: the rotate request itself fails.
		wantErr bool
		// heal runs after the failed request.
		heal func(h *harness)
		// advance: time that passes (after a first, too early recovery attempt that must
		// settle nothing wrongly) before the final recovery.
		advance time.Duration
		// wantWarning is in the successful rotation's warnings.
		wantWarning string
	}{
		// Storing the new pair as a fallback fails: nothing is sent.
		{name: "fallback write fails", wantErr: true,
			setup: func(h *harness) { h.failConfigPutsAfter(0) }},
		{name: "bearer mint fails", wantErr: true,
			setup: func(h *harness) {
				h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 500, Times: 5})
			}},
		{name: "PUT refused with 401", wantErr: true,
			setup: func(h *harness) { h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 401}) }},
		// A 500 may or may not have been applied: the new pair is kept, and recovery sends the
		// PUT again, which completes the rotation.
		{name: "PUT answered 500, not applied", wantErr: true, wantRotated: true,
			setup: func(h *harness) { h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 500}) }},
		{name: "PUT applied, response lost", wantRotated: true, wantWarning: "answer to the change was lost",
			setup: func(h *harness) {
				h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{AfterApply: true, Status: 502})
			}},
		{name: "PUT applied, connection hangs", wantRotated: true,
			setup: func(h *harness) {
				h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"request_timeout": 1})
				h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{AfterApply: true, Hang: true})
			}},
		{name: "confirmation mint refused once", wantRotated: true,
			setup: func(h *harness) {
				h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{AfterApply: true,
					OnHit: func() { h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 401}) }})
			}},
		{name: "PUT applied, provider then unreachable", wantRotated: true, wantErr: true,
			setup: func(h *harness) {
				h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{AfterApply: true, Status: 500,
					OnHit: func() { h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1}) }})
			},
			heal: func(h *harness) { h.sim.ClearFaults() }},
		// The fallback is stored and the PUT confirmed, but storing the new pair as the
		// current one fails: the fallback holds it.
		{name: "config write fails after PUT", wantRotated: true, wantErr: true,
			setup: func(h *harness) { h.failConfigPutsAfter(1) }},
		// The provider answers 204 and switches 5 s later: confirmed within request_timeout.
		{name: "provider applies the PUT 5s late", wantRotated: true,
			setup: func(h *harness) { h.sim.SetOffBlocksLag(5 * time.Second) }},
		// It switches 2 minutes later, past request_timeout: the new pair must survive every
		// refusal until then, in the request, on reads and in the rollback.
		{name: "provider applies the PUT 2m late", wantRotated: true, wantErr: true, advance: 2 * time.Minute,
			setup: func(h *harness) { h.sim.SetOffBlocksLag(2 * time.Minute) }},
	}
	for _, tc := range cases {
		for _, recovery := range []string{"creds", "rollback"} {
			t.Run(tc.name+"/"+recovery, func(t *testing.T) {
				h := newHarness(t)
				h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
				tc.setup(h)

				resp, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil)
				failed := err != nil || (resp != nil && resp.IsError())
				if failed != tc.wantErr {
					t.Fatalf("rotate failed=%v (err=%v resp=%v), want failed=%v", failed, err, respErr(resp), tc.wantErr)
				}
				if err != nil {
					assertNoSecrets(t, "rotate error", err.Error(), obSecret)
				}
				if tc.wantWarning != "" && (resp == nil || !strings.Contains(strings.Join(resp.Warnings, " "), tc.wantWarning)) {
					t.Errorf("warnings lack %q: %v", tc.wantWarning, resp)
				}
				h.storage.setFailPut(nil)
				h.sim.ClearFaults()
				if tc.heal != nil {
					tc.heal(h)
				}
				if tc.advance > 0 {
					// Too early: the provider has not switched; nothing may be given up, and
					// a read gets no token of the old pair, which may die at any moment.
					if recovery == "rollback" {
						h.rollback()
					} else {
						h.wantUnsettledRead("ob")
					}
					if n := h.fallbacks("ob"); n != 1 {
						t.Fatalf("an early recovery settled a rotation the provider had not settled (%d fallbacks)", n)
					}
					h.clock.Advance(tc.advance)
				}
				if recovery == "rollback" {
					h.rollback()
				} else {
					h.assertOffBlocksConsistent("ob") // a read settles it all
				}
				h.assertStoredIsProviders("ob")
				if key, _ := h.sim.OffBlocksPair(h.obID); (key != obKey) != tc.wantRotated {
					t.Fatalf("provider rotated=%v, want %v", key != obKey, tc.wantRotated)
				}
				// And a later rotation works.
				h.sim.SetOffBlocksLag(0)
				h.mustDo(logical.UpdateOperation, "rotate-root/ob", nil)
				h.assertOffBlocksConsistent("ob")
			})
		}
	}
}

// A rotation whose provider has not switched within request_timeout fails with a 502 that
// says it is unsettled and acknowledged. Until the provider switches, reads answer 502 (they
// used to serve tokens of the old pair, which dies the moment the provider switches) and
// another rotation is refused; the first read after the switch adopts the new pair.
func TestRotateLaggingProviderUnsettled(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.SetOffBlocksLag(2 * time.Minute)
	_, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil)
	wantCoded(t, err, 502, `rotation of "ob" is unsettled: new offblocks credential `)
	if msg := err.Error(); !strings.Contains(msg, ": the provider acknowledged the change (offblocks: mint token") || strings.Count(msg, "status 401") != 1 {
		t.Fatalf("the unsettled error does not say, once, why: %s", msg)
	}
	pendingKey, _ := h.sim.OffBlocksPair(h.obID)
	if pendingKey != obKey || !h.sim.OffBlocksPending(h.obID) {
		t.Fatal("the simulator applied the lagged update early")
	}
	h.wantUnsettledRead("ob") // the old pair still mints, but its tokens may die at any moment
	resp, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil)
	if err == nil || !strings.Contains(respErr(resp).(string), "unsettled") {
		t.Fatalf("a second rotation was not refused while the first is unsettled: %v %v", err, respErr(resp))
	}
	if h.fallbacks("ob") != 1 {
		t.Fatalf("%d fallbacks while unsettled, want the one", h.fallbacks("ob"))
	}
	h.clock.Advance(2 * time.Minute)
	h.creds("ob") // the provider has switched: the read settles, adopting the new pair
	h.assertStoredIsProviders("ob")
	if h.stored("ob").ob().APIKey == obKey {
		t.Fatal("the new pair was not adopted")
	}
}

// A crash between storing the new pair and its PUT leaves a fallback the provider never
// received: Vault's rollback sends the change again (whether the provider got it is
// unknown) and the rotation completes. A rotation WAL entry written by an earlier plugin
// version (old and new pair) is turned into such a fallback by the rollback, and completed
// the same way.
func TestRotateCrashBeforePUTRollsForward(t *testing.T) {
	t.Run("fallback", func(t *testing.T) {
		h := newHarness(t)
		next := h.pendingOffBlocks()
		h.rollback()
		h.assertStoredIsProviders("ob")
		if h.stored("ob").ob().APIKey != next.APIKey {
			t.Fatal("the rollback did not complete the rotation")
		}
	})
	t.Run("earlier version's WAL entry", func(t *testing.T) {
		h := newHarness(t)
		h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
		cur := h.stored("ob").ob()
		next, _ := offblocks.GenerateCredentials()
		h.legacyRotationWAL("ob", "offblocks", cur, next)
		h.rollback() // converts the entry: the new pair is held (as a fallback, or adopted)
		c := h.stored("ob")
		if h.walCount() != 0 || !(registry.SameRoot(c.cred, next) || (len(c.Fallbacks) == 1 && registry.SameRoot(c.Fallbacks[0].cred, next))) {
			t.Fatalf("WAL %d, %d fallbacks: the entry was not turned into a fallback", h.walCount(), len(c.Fallbacks))
		}
		h.rollback() // the next run settles it
		h.assertStoredIsProviders("ob")
		if h.stored("ob").ob().APIKey != next.APIKey {
			t.Fatal("the rollback did not complete the rotation")
		}
	})
}

// An acknowledged change is never given up, however long the provider takes to apply it:
// each rollback keeps the fallback (sending the change again, which a lagging provider may
// apply in any order), and the one after the switch adopts it.
func TestAcknowledgedRotationNeverKeepsOld(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.SetOffBlocksLag(3 * time.Hour)
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("the rotation should be unsettled")
	}
	next := h.stored("ob").Fallbacks[0].cred.(offblocks.Credentials)
	for i := 0; i < 5; i++ { // rollbacks, every half hour: nothing to do but wait
		h.clock.Advance(30 * time.Minute)
		h.rollback()
		if h.fallbacks("ob") != 1 || h.stored("ob").ob().APIKey != obKey {
			t.Fatalf("an acknowledged rotation was given up (%d fallbacks)", h.fallbacks("ob"))
		}
	}
	h.clock.Advance(31 * time.Minute)
	h.rollback()
	h.assertStoredIsProviders("ob")
	if h.stored("ob").ob().APIKey != next.APIKey {
		t.Fatal("the acknowledged pair was not adopted")
	}
}
