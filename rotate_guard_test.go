package apitokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// rotateEvents lists the rotation events sent so far, as "config/provider/trigger/outcome".
func (h *harness) rotateEvents() []string {
	h.events.Lock()
	defer h.events.Unlock()
	var got []string
	for _, e := range h.events.Events {
		if e.Type == "apitokens/"+eventRotate {
			m := e.Event.Metadata.AsMap()
			got = append(got, fmt.Sprintf("%v/%v/%v/%v", m["name"], m["provider"], m["trigger"], m["outcome"]))
		}
	}
	return got
}

// A rotation is counted (metrics and event) once it started, with its outcome: a failure
// as a failure. One refused before it started (no such config, or a node that cannot
// write, which Vault forwards to the active node) counts nothing.
func TestGuardRotationCountedOnceStarted(t *testing.T) {
	h := newHarness(t)
	if _, err := h.do(logical.UpdateOperation, "rotate-root/gone", nil); !errors.Is(err, logical.ErrInvalidRequest) {
		t.Fatalf("rotate-root of a missing config: %v", err)
	}
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 401})
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("a refused rotation succeeded")
	}
	if got := h.rotateEvents(); !slices.Equal(got, []string{"ob/offblocks/manual/failure"}) {
		t.Fatalf("rotation events %q, want the failure alone", got)
	}
	if text := h.scrape(); !strings.Contains(text,
		`apitokens_rotations_total{outcome="failure",provider="offblocks",trigger="manual"} 1`) {
		t.Fatalf("the failed rotation is not counted as one:\n%s", text)
	}
}

// On a node that cannot write, a rotation of a config that holds a fallback is refused with
// logical.ErrReadOnly itself, so that Vault forwards it to the active node (which settles
// it), not with an error that the config is unsettled; and it counts nothing.
func TestGuardRotationOnAStandbyIsForwarded(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.unsettledRotationOf("ob")
	events := len(h.rotateEvents())
	h.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	h.storage.setReadOnly()
	if _, _, err := h.b.rotate(context.Background(), h.storage, "ob", triggerManual); err != logical.ErrReadOnly {
		t.Fatalf("err %v (%T), want logical.ErrReadOnly", err, err)
	}
	if got := h.rotateEvents(); len(got) != events {
		t.Fatalf("a forwarded rotation was counted: %q", got[events:])
	}
}

// The confirmation of a new credential mints with it at once, then after 250 ms, doubling
// up to 5 s, for as long as request_timeout allows (a try due exactly at its end is made).
func TestGuardConfirmationBackoff(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	cfg := h.stored("ob")
	cfg.RequestTimeout = 12750 * time.Millisecond // 0.25+0.5+1+2+4+5 s
	if err := h.b.putConfig(context.Background(), h.storage, "ob", cfg); err != nil {
		t.Fatal(err)
	}
	h.sim.SetOffBlocksLag(time.Hour) // never confirmed within the rotation
	var waits []time.Duration
	h.b.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		h.clock.Advance(d)
		return ctx.Err()
	}
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("an unconfirmed rotation succeeded")
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second,
		4 * time.Second, 5 * time.Second}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits between confirmation mints %v, want %v", waits, want)
	}
}

// A confirmation cut short by its context (the wait between mints ends) reports the
// provider's last answer, not the context's error.
func TestGuardConfirmationCutShortReportsTheProvidersAnswer(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.SetOffBlocksLag(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.b.sleep = func(context.Context, time.Duration) error {
		cancel()
		return context.Canceled
	}
	_, _, err := h.b.rotate(ctx, h.storage, "ob", triggerManual)
	var u *unsettledError
	if !errors.As(err, &u) || u.confirm == nil || errors.Is(u.confirm, context.Canceled) {
		t.Fatalf("err %v; want unsettled, with the provider's refusal of the new pair", err)
	}
}

// A credential the provider refused outright is dropped from the config; only when that
// store fails does an ERROR say the config stays unsettled and how an operator ends it.
func TestGuardRefusedCredentialDropped(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 401})
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("a refused rotation succeeded")
	}
	if h.fallbacks("ob") != 0 || h.logLine("could not drop") != "" {
		t.Fatalf("%d fallbacks; log: %q", h.fallbacks("ob"), h.logLine("could not drop"))
	}

	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 401})
	h.failConfigPutsAfter(1) // the fallback is stored; dropping it is not
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("a refused rotation succeeded")
	}
	h.storage.setFailPut(nil)
	line := h.logLine("could not drop a credential the provider refused outright")
	if h.fallbacks("ob") != 1 || !strings.Contains(line, "[ERROR]") || !strings.Contains(line, "force=true") {
		t.Fatalf("%d fallbacks; log: %q", h.fallbacks("ob"), line)
	}
}

// A fallback the provider has not confirmed says why it is held: its answer to the change
// was lost, or it acknowledged the change and has not applied it yet.
func TestGuardFallbackSaysWhyItIsHeld(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.unsettledRotationOf("ob") // applied, its answer lost; not confirmed
	if f := h.stored("ob").Fallbacks; len(f) != 1 || f[0].Why != "the provider's answer to the change was lost" {
		t.Fatalf("fallbacks %+v", f)
	}
	h2 := newHarness(t)
	h2.mustDo(logical.CreateOperation, "config/ob", h2.offblocksConfig())
	h2.sim.SetOffBlocksLag(time.Hour)
	if _, err := h2.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("an unconfirmed rotation succeeded")
	}
	if f := h2.stored("ob").Fallbacks; len(f) != 1 || f[0].Why != "the provider acknowledged it but has not applied it yet" {
		t.Fatalf("fallbacks %+v", f)
	}
}

// A Bloq rotation creates no key upstream unless it could first list the account's keys and
// write the WAL marker that names a key orphaned by a crash during the create.
func TestGuardNoKeyCreatedWithoutItsMarker(t *testing.T) {
	for _, tc := range []struct {
		what    string
		breakIt func(h *harness)
	}{
		{"the key list fails", func(h *harness) {
			h.sim.Inject(simulator.RouteBloqKeysList, simulator.Fault{Status: 503, Times: -1})
		}},
		{"the marker cannot be written", func(h *harness) {
			h.storage.setFailPut(func(k string) bool { return strings.HasPrefix(k, framework.WALPrefix) })
		}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			h := newHarness(t)
			h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
			tc.breakIt(h)
			if _, err := h.do(logical.UpdateOperation, "rotate-root/bq", nil); err == nil {
				t.Fatal("the rotation succeeded")
			}
			if n := h.sim.Calls(simulator.RouteBloqKeysCreate); n != 0 {
				t.Fatalf("%d keys created upstream", n)
			}
			if c := h.stored("bq"); c.bq().ClientID != bqClient || c.unsettled() {
				t.Fatalf("stored %s with %d fallbacks", c.bq().ClientID, len(c.Fallbacks))
			}
		})
	}
}

// A rotation refused because an earlier one is unsettled names that rotation: when it began,
// the provider and the credential it sent; and the command that overrides it names the
// mount, or <mount> when the request did not say.
func TestGuardPendingRotationNamesTheEarlierOne(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.unsettledRotationOf("ob") // the provider keeps answering 503: it stays unsettled
	f := h.stored("ob").Fallbacks[0]
	resp, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil)
	msg, _ := respErr(resp).(string)
	want := fmt.Sprintf("a rotation begun at %s to offblocks credential %s", f.Since.UTC().Format(time.RFC3339),
		registry.Identifier(f.cred))
	if err == nil || !strings.Contains(msg, want) {
		t.Fatalf("err %v %q; want it to name %q", err, msg, want)
	}
	e := &pendingRotationError{name: "ob", provider: "offblocks", forDelete: true}
	if msg := e.Error(); !strings.Contains(msg, "vault delete <mount>/config/ob force=true") {
		t.Fatalf("without a mount: %s", msg)
	}
}

// A scheduled rotation withdrawn because its window closed while it created the new key is
// not counted as a rotation: nothing rotated.
func TestGuardWithdrawnRotationCountsNothing(t *testing.T) {
	h := newHarness(t) // the clock reads 12:00
	h.b.transport = slowCreates{h: h, d: 30 * time.Second}
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(map[string]any{"rotation_schedule": "0 13 * * *",
		"rotation_window": "1h"}))
	h.clock.Advance(time.Hour + 59*time.Minute + 50*time.Second) // 13:59:50: the 13:00 slot is due
	h.periodic()
	if h.sim.Calls(simulator.RouteBloqKeysCreate) != 1 || h.stored("bq").bq().ClientID != bqClient {
		t.Fatal("the rotation was not withdrawn: the test would prove nothing")
	}
	if got := h.rotateEvents(); len(got) != 0 {
		t.Fatalf("a withdrawn rotation was counted: %q", got)
	}
}

// A scheduled rotation whose settle adopts a fallback stops there: the credential is new and
// the schedule counts from now, so no key is created upstream (not even one withdrawn later).
func TestGuardScheduledRotationAfterAnAdoptingSettleCreatesNoKey(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(map[string]any{"rotation_period": "1h"}))
	next := h.stored("bq").bq()
	next.ClientID, next.ClientSecret = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12", "fallback-secret-that-works"
	h.sim.AddBloqKey(h.bqUserID, next.ClientID, next.ClientSecret)
	h.holdFallback("bq", next)
	h.clock.Advance(time.Hour)
	h.b.invalidate(context.Background(), configKey("bq")) // the read finds the rotation due first
	h.creds("bq")
	if c := h.stored("bq"); c.bq().ClientID != next.ClientID || c.unsettled() {
		t.Fatalf("stored %s with %d fallbacks; want the adopted fallback", c.bq().ClientID, len(c.Fallbacks))
	}
	if n := h.sim.Calls(simulator.RouteBloqKeysCreate); n != 0 {
		t.Fatalf("%d keys created upstream after the settle adopted a new one", n)
	}
}
