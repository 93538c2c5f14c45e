package apitokens

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// periodic runs the backend's PeriodicFunc as Vault's rollback manager does.
func (h *harness) periodic() {
	h.t.Helper()
	if err := h.b.periodic(context.Background(), &logical.Request{Storage: h.storage}); err != nil {
		h.t.Fatal(err)
	}
}

// rotated reports whether the provider's OffBlocks pair is no longer key.
func (h *harness) rotatedFrom(key string) bool {
	k, _ := h.sim.OffBlocksPair(h.obID)
	return k != key
}

func (h *harness) nextRotation(name string) string {
	h.t.Helper()
	v, _ := h.mustDo(logical.ReadOperation, "config/"+name, nil).Data["next_vault_rotation"].(string)
	return v
}

func (h *harness) scheduledOffBlocks(extra map[string]any) {
	h.t.Helper()
	cfg := h.offblocksConfig()
	for k, v := range extra {
		cfg[k] = v
	}
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
}

// rotation_period counts from the time the schedule is set, then from each rotation.
func TestScheduleRotationPeriod(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	start := h.clock.Now()
	if got := h.nextRotation("ob"); got != start.Add(time.Hour).Format(time.RFC3339) {
		t.Fatalf("next_vault_rotation = %s", got)
	}
	h.clock.Advance(59 * time.Minute)
	h.periodic()
	if h.rotatedFrom(obKey) {
		t.Fatal("rotated a minute early")
	}
	h.clock.Advance(time.Minute)
	h.periodic()
	if !h.rotatedFrom(obKey) {
		t.Fatal("not rotated when due")
	}
	h.assertStoredIsProviders("ob")
	data := h.mustDo(logical.ReadOperation, "config/ob", nil).Data
	if data["last_vault_rotation"] != h.clock.Now().Format(time.RFC3339) ||
		data["next_vault_rotation"] != h.clock.Now().Add(time.Hour).Format(time.RFC3339) {
		t.Fatalf("after the rotation: last %v next %v", data["last_vault_rotation"], data["next_vault_rotation"])
	}
}

// rotation_schedule (cron, UTC): due at each slot; with a rotation_window a slot missed by
// more than the window is skipped for the next one; without one, a missed slot runs at once.
func TestScheduleCronAndWindow(t *testing.T) {
	h := newHarness(t) // the clock starts at 2026-11-23T12:00Z
	h.scheduledOffBlocks(map[string]any{"rotation_schedule": "0 0 * * *", "rotation_window": "1h"})
	if got := h.nextRotation("ob"); got != "2026-11-24T00:00:00Z" {
		t.Fatalf("next_vault_rotation = %s", got)
	}
	h.clock.Advance(14 * time.Hour) // 02:00: the 00:00 slot's window closed at 01:00
	h.periodic()
	if h.rotatedFrom(obKey) {
		t.Fatal("rotated outside the window of a missed slot")
	}
	if got := h.nextRotation("ob"); got != "2026-11-25T00:00:00Z" {
		t.Fatalf("after a missed slot, next_vault_rotation = %s", got)
	}
	h.clock.Advance(22*time.Hour + 30*time.Minute) // 00:30, inside the window
	h.periodic()
	if !h.rotatedFrom(obKey) {
		t.Fatal("not rotated inside the window")
	}

	// Without a window, a missed slot is caught up at once.
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"rotation_window": 0, "rotation_schedule": "0 6 * * *"})
	key, _ := h.sim.OffBlocksPair(h.obID)
	h.clock.Advance(8 * time.Hour) // 08:30: the 06:00 slot was missed
	h.periodic()
	if !h.rotatedFrom(key) {
		t.Fatal("a missed slot without a window was not caught up")
	}
}

// A failed scheduled rotation is retried with backoff (1 min, 2 min, ...), not every minute,
// and its error shows on the config read; a success clears it.
func TestScheduleFailureBackoff(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1})
	h.clock.Advance(time.Hour)
	h.periodic()
	data := h.mustDo(logical.ReadOperation, "config/ob", nil).Data
	if data["rotation_failures"] != 1 || !strings.Contains(data["last_rotation_error"].(string), "status 503") {
		t.Fatalf("after a failure: %v %v", data["rotation_failures"], data["last_rotation_error"])
	}
	if data["next_vault_rotation"] != h.clock.Now().Add(time.Minute).Format(time.RFC3339) {
		t.Fatalf("next try %v, want in 1 minute", data["next_vault_rotation"])
	}
	assertNoSecrets(t, "config read", data["last_rotation_error"].(string), obSecret)
	calls := h.sim.Calls(simulator.RouteOffBlocksToken)
	h.clock.Advance(30 * time.Second)
	h.periodic()
	if h.sim.Calls(simulator.RouteOffBlocksToken) != calls {
		t.Fatal("retried before the backoff ended")
	}
	h.clock.Advance(30 * time.Second)
	h.periodic() // second failure: next try in 2 minutes
	if got := h.nextRotation("ob"); got != h.clock.Now().Add(2*time.Minute).Format(time.RFC3339) {
		t.Fatalf("after a second failure, next try %s, want in 2 minutes", got)
	}
	h.sim.ClearFaults()
	h.clock.Advance(2 * time.Minute)
	h.periodic()
	if !h.rotatedFrom(obKey) {
		t.Fatal("not retried after the backoff")
	}
	data = h.mustDo(logical.ReadOperation, "config/ob", nil).Data
	if _, ok := data["rotation_failures"]; ok {
		t.Fatalf("a success did not clear the failures: %v", data)
	}
}

// A config update that changes the schedule restarts it; disable_automated_rotation pauses it.
func TestScheduleUpdatedAndPaused(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.clock.Advance(30 * time.Minute)
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"rotation_period": "2h"})
	if got := h.nextRotation("ob"); got != h.clock.Now().Add(2*time.Hour).Format(time.RFC3339) {
		t.Fatalf("next_vault_rotation after the update = %s", got)
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"max_ttl": "5m"})
	if got := h.nextRotation("ob"); got != h.clock.Now().Add(2*time.Hour).Format(time.RFC3339) {
		t.Fatalf("an update that left the schedule alone moved it: %s", got)
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"disable_automated_rotation": true})
	h.clock.Advance(3 * time.Hour)
	h.periodic()
	if h.rotatedFrom(obKey) || h.nextRotation("ob") != "" {
		t.Fatal("a paused schedule rotated or shows a next rotation")
	}
}

// Only a node that can write rotates: a performance standby's periodic call does nothing.
func TestScheduleNotOnStandby(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1m"})
	h.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	h.clock.Advance(2 * time.Minute)
	h.periodic()
	if h.rotatedFrom(obKey) {
		t.Fatal("a performance standby rotated")
	}
	if _, err := h.do(logical.ReadOperation, "creds/ob", nil); err != logical.ErrReadOnly {
		t.Fatalf("a read on a standby that finds a rotation due: %v, want it forwarded", err)
	}
}

// Leases end no later than the next scheduled rotation, and a read that finds one due
// performs it first, then mints from the new credential; with token_reuse the shared token
// is dropped at the rotation.
func TestScheduleLeasesAndReadTriggeredRotation(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "10m", "token_reuse": true})
	first := h.creds("ob")
	if first.Secret.TTL != 10*time.Minute-2*time.Second {
		t.Fatalf("lease %s, want 9m58s (2 s before the next rotation may run), not the token's 59m", first.Secret.TTL)
	}
	h.clock.Advance(9*time.Minute + 59*time.Second + 500*time.Millisecond)
	second := h.creds("ob") // half a second before the rotation: it is due, done first
	if !h.rotatedFrom(obKey) || second.Data["token"] == first.Data["token"] {
		t.Fatal("the read did not perform the due rotation first")
	}
	if _, err := h.sim.Validate(first.Data["token"].(string)); err == nil {
		t.Fatal("the old token outlived the rotation")
	}
	h.clock.Advance(4 * time.Minute)
	if ttl := h.creds("ob").Secret.TTL; ttl != 6*time.Minute-2*time.Second {
		t.Fatalf("lease %s, want 5m58s", ttl)
	}
}

// Bad schedules are 400s naming the field, as are schedules on configs that cannot rotate.
func TestScheduleValidation(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(map[string]any{"username": "", "password": ""}))
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	cases := []struct {
		path  string
		data  map[string]any
		field string
		why   string
	}{
		{"config/ops", map[string]any{"rotation_period": "1h"}, "rotation_period", "no rotation API"},
		{"config/ops", map[string]any{"rotation_schedule": "0 * * * *"}, "rotation_schedule", "no rotation API"},
		{"config/ops", map[string]any{"disable_automated_rotation": true}, "disable_automated_rotation", "cannot rotate"},
		{"config/bq", map[string]any{"rotation_period": "1h"}, "rotation_period", "account login"},
		{"config/bq", map[string]any{"rotation_schedule": "0 * * * *"}, "rotation_schedule", "account login"},
		{"config/ob", map[string]any{"rotation_period": "30s"}, "rotation_period", "at least 1m (or 0"},
		{"config/ob", map[string]any{"rotation_period": "1h", "rotation_schedule": "0 * * * *"}, "rotation_schedule", "both given"},
		{"config/ob", map[string]any{"rotation_schedule": "not cron"}, "rotation_schedule", "not a cron schedule"},
		{"config/ob", map[string]any{"rotation_schedule": " 0 * * * *"}, "rotation_schedule", "white space"},
		{"config/ob", map[string]any{"rotation_window": "2h"}, "rotation_window", "rotation_schedule"},
		{"config/ob", map[string]any{"rotation_schedule": "0 * * * *", "rotation_window": "10m"}, "rotation_window", "3600"},
		{"config/ob", map[string]any{"rotation_policy": "retry-3"}, "rotation_policy", "Enterprise"},
	}
	for _, tc := range cases {
		resp, err := h.do(logical.UpdateOperation, tc.path, tc.data)
		if !errors.Is(err, logical.ErrInvalidRequest) || !strings.HasPrefix(respErr(resp).(string), tc.field+":") ||
			!strings.Contains(respErr(resp).(string), tc.why) {
			t.Errorf("%s %v: want a 400 naming %s with %q, got %v %v", tc.path, tc.data, tc.field, tc.why, err, respErr(resp))
		}
	}
	if h.stored("ob").scheduled() {
		t.Fatal("a refused write stored a schedule")
	}
}

// A read that serves a missed cron slot (still inside its rotation_window) just before the
// next slot gets a token and a lease: the rotation serves that next slot too, instead of
// leaving no room for any lease before it (seed 211798: a fault-free read answered 503).
func TestScheduleMissedSlotServedJustBeforeTheNext(t *testing.T) {
	h := newHarness(t) // the clock reads 12:00
	h.scheduledOffBlocks(map[string]any{"rotation_schedule": "*/20 * * * *", "rotation_window": "1h"})
	h.clock.Advance(59*time.Minute + 58*time.Second) // 12:20 and 12:40 missed; 13:00 is 2 s away
	resp := h.creds("ob")
	if !h.rotatedFrom(obKey) {
		t.Fatal("the missed slot was not served")
	}
	if resp.Secret.TTL < minLease {
		t.Fatalf("lease %s", resp.Secret.TTL)
	}
	if got, want := h.nextRotation("ob"), "2026-11-23T13:20:00Z"; got != want {
		t.Fatalf("next_vault_rotation = %s, want %s (13:00 is served by the rotation 2 s before it)", got, want)
	}
}

// slowCreates is a transport whose Bloq key creates take d on the harness clock.
type slowCreates struct {
	h *harness
	d time.Duration
}

func (s slowCreates) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/client-keys") {
		s.h.clock.Advance(s.d)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// A scheduled rotation whose cron rotation_window closes while it creates the new key is
// withdrawn: from then on other nodes lease tokens of the stored key until the next slot, so
// that key stays, and the new one is deleted upstream.
func TestScheduleWindowClosingDuringCreateWithdrawsTheRotation(t *testing.T) {
	h := newHarness(t) // the clock reads 12:00
	h.b.transport = slowCreates{h: h, d: 30 * time.Second}
	cfg := h.bloqConfig(map[string]any{"rotation_schedule": "0 13 * * *", "rotation_window": "1h"})
	h.mustDo(logical.CreateOperation, "config/bq", cfg)
	h.clock.Advance(time.Hour + 59*time.Minute + 50*time.Second) // 13:59:50: the 13:00 slot is due
	h.periodic()
	c := h.stored("bq")
	if c.bq().ClientID != bqClient || c.unsettled() || len(c.Retiring) != 0 {
		t.Fatalf("stored %s with %d fallbacks, %d retiring; want the old key alone", c.bq().ClientID,
			len(c.Fallbacks), len(c.Retiring))
	}
	if ids := h.sim.BloqClientIDs(h.bqUserID); len(ids) != 1 || ids[0] != bqClient {
		t.Fatalf("keys upstream %v, want the old key alone (the withdrawn one deleted)", ids)
	}
	h.creds("bq")
}

// A withdrawn rotation whose store fails keeps the new key as a fallback (the next settle
// decides), and its error says so: nothing is lost, and nothing is deleted upstream.
func TestScheduleWithdrawWhoseStoreFailsKeepsTheFallback(t *testing.T) {
	h := newHarness(t)
	h.b.transport = slowCreates{h: h, d: 30 * time.Second}
	cfg := h.bloqConfig(map[string]any{"rotation_schedule": "0 13 * * *", "rotation_window": "1h"})
	h.mustDo(logical.CreateOperation, "config/bq", cfg)
	h.clock.Advance(time.Hour + 59*time.Minute + 50*time.Second)
	h.failConfigPutsAfter(1) // the fallback's store lands; the withdrawal's does not
	_, err := h.b.rotateScheduled(context.Background(), h.storage, "bq")
	if err == nil || !strings.Contains(err.Error(), "it stays a fallback") {
		t.Fatalf("want the withdrawal's failed store, got %v", err)
	}
	h.storage.setFailPut(nil)
	if n := h.fallbacks("bq"); n != 1 {
		t.Fatalf("%d fallbacks, want the new key kept as one", n)
	}
	if ids := h.sim.BloqClientIDs(h.bqUserID); len(ids) != 2 {
		t.Fatalf("keys upstream %v, want both (nothing deleted)", ids)
	}
}
