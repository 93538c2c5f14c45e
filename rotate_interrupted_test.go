package apitokens

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// assertStoredIsProviders checks storage alone, with no creds read (which could settle a
// rotation itself): the stored pair is the one the provider accepts, and no WAL is left.
func (h *harness) assertStoredIsProviders(name string) {
	h.t.Helper()
	key, secret := h.sim.OffBlocksPair(h.obID)
	if c := h.stored(name); c.APIKey != key || c.APISecret != secret {
		h.t.Fatalf("stored pair %s is not the provider's %s: the credential is lost", c.APIKey, key)
	}
	if n := h.walCount(); n != 0 {
		h.t.Fatalf("%d WAL entries left", n)
	}
}

// Every step of an OffBlocks rotation, interrupted, and recovered once by creds reads and
// once by Vault's rollback alone (no read first, so the rollback must do the work).
// Afterwards the stored pair is the one the provider accepts, whether the rotation took or not.
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
		{name: "WAL write fails", wantErr: true,
			setup: func(h *harness) { h.storage.setFailPut(func(k string) bool { return strings.HasPrefix(k, "wal/") }) }},
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
		{name: "config write fails after PUT", wantRotated: true, wantErr: true,
			setup: func(h *harness) {
				h.storage.setFailPut(func(k string) bool { return strings.HasPrefix(k, "config/") })
			},
			heal: func(h *harness) { h.storage.setFailPut(nil) }},
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
					// Too early: the provider has not settled; nothing may be given up.
					if recovery == "rollback" {
						h.rollback()
					} else {
						h.creds("ob")
					}
					if h.walCount() != 1 {
						t.Fatalf("an early recovery settled a rotation the provider had not settled (WAL %d)", h.walCount())
					}
					h.clock.Advance(tc.advance)
				}
				if recovery == "rollback" {
					h.rollback()
					h.assertStoredIsProviders("ob")
				} else {
					h.assertOffBlocksConsistent("ob")
					h.rollback() // clears what a read cannot: an entry whose new pair never took
					if n := h.walCount(); n != 0 {
						t.Fatalf("%d WAL entries left", n)
					}
				}
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
// says it is unsettled and acknowledged, keeps serving tokens from the old pair (which still
// works), refuses another rotation meanwhile, and is adopted by the first read after the switch.
func TestRotateLaggingProviderUnsettled(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.SetOffBlocksLag(2 * time.Minute)
	_, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil)
	wantCoded(t, err, 502, `rotation of "ob" is unsettled: the provider acknowledged the change`)
	pendingKey, _ := h.sim.OffBlocksPair(h.obID)
	if pendingKey != obKey || !h.sim.OffBlocksPending(h.obID) {
		t.Fatal("the simulator applied the lagged update early")
	}
	h.creds("ob") // the old pair still works until the provider switches
	resp, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil)
	if err == nil || !strings.Contains(respErr(resp).(string), "unsettled") {
		t.Fatalf("a second rotation was not refused while the first is unsettled: %v %v", err, respErr(resp))
	}
	h.clock.Advance(2 * time.Minute)
	h.creds("ob") // the old pair is now refused: the read settles, adopting the new one
	h.assertStoredIsProviders("ob")
	if h.stored("ob").APIKey == obKey {
		t.Fatal("the new pair was not adopted")
	}
}

// A crash between the WAL write and the PUT leaves an entry whose new pair never reached
// the provider. Reads go on with the old pair; the rollback sends the PUT again (whether the
// provider got it is unknown), and the rotation completes.
func TestRotateCrashBeforePUTRollsForward(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	cur := h.stored("ob").credential
	next, _ := offblocksProvider{}.Prepare(context.Background(), cur)
	e := newRotationWAL("ob", "offblocks", cur, next, h.clock.Now())
	if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation, e); err != nil {
		t.Fatal(err)
	}
	h.creds("ob") // the stored pair still works: nothing to settle on the read path
	if h.walCount() != 1 {
		t.Fatal("a read settled a rotation it had no reason to")
	}
	h.rollback()
	h.assertStoredIsProviders("ob")
	if h.stored("ob").APIKey != next.APIKey {
		t.Fatal("the rollback did not complete the rotation")
	}
}

// An acknowledged change is never given up, however long the provider takes to apply it.
func TestAcknowledgedRotationNeverKeepsOld(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.SetOffBlocksLag(3 * time.Hour)
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("the rotation should be unsettled")
	}
	puts := h.sim.Calls(simulator.RouteOffBlocksCredentials)
	for i := 0; i < 5; i++ { // rollbacks, every half hour: nothing to do but wait
		h.clock.Advance(30 * time.Minute)
		h.rollback()
		if h.walCount() != 1 {
			t.Fatal("an acknowledged rotation was given up")
		}
	}
	if n := h.sim.Calls(simulator.RouteOffBlocksCredentials); n != puts {
		t.Fatalf("an acknowledged change was sent again (%d PUTs)", n-puts)
	}
	h.clock.Advance(31 * time.Minute)
	h.rollback()
	h.assertStoredIsProviders("ob")
}
