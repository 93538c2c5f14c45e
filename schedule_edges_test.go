package apitokens

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A read in the last second before a cron slot rotates early; the slot it served is not due
// again (no second rotation a moment later), and the next one is the day after.
func TestScheduleEarlyRotationServesItsSlot(t *testing.T) {
	h := newHarness(t) // 2026-11-23T12:00Z
	h.scheduledOffBlocks(map[string]any{"rotation_schedule": "0 0 * * *"})
	h.clock.Advance(12*time.Hour - 600*time.Millisecond)
	h.creds("ob")
	if !h.rotatedFrom(obKey) {
		t.Fatal("not rotated 0.6 s before the slot")
	}
	key, _ := h.sim.OffBlocksPair(h.obID)
	h.clock.Advance(300 * time.Millisecond)
	h.creds("ob")
	h.clock.Advance(time.Second)
	h.periodic()
	if h.rotatedFrom(key) {
		t.Fatal("the slot was rotated twice")
	}
	if got := h.nextRotation("ob"); got != "2026-11-25T00:00:00Z" {
		t.Fatalf("next_vault_rotation = %s", got)
	}
}

// A read that triggers a due rotation and then gives up does not cut the rotation short:
// it completes, and nothing is recorded as failed.
func TestScheduleRotationOutlivesItsReader(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.clock.Advance(time.Hour)
	// The reader gives up once the rotation's PUT has reached the provider (not after a
	// wall-clock time, which a loaded machine may spend before the rotation even begins).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Delay: 300 * time.Millisecond, OnHit: cancel})
	_, _ = h.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "creds/ob",
		Storage: h.storage, MountPoint: "apitokens/"})
	h.assertStoredIsProviders("ob")
	if !h.rotatedFrom(obKey) {
		t.Fatal("the rotation was cut short with its reader")
	}
	if d := h.mustDo(logical.ReadOperation, "config/ob", nil).Data; d["rotation_failures"] != nil {
		t.Fatalf("a completed rotation was recorded as failed: %v", d["last_rotation_error"])
	}
}

// A due rotation that fails (the provider refuses the change) does not fail the read: the
// token comes from the stored credential, and the rotation is retried after its backoff.
func TestScheduleFailedRotationStillServesReads(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.clock.Advance(time.Hour)
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 401})
	h.creds("ob") // valid at the provider
	if h.rotatedFrom(obKey) || h.mustDo(logical.ReadOperation, "config/ob", nil).Data["rotation_failures"] != 1 {
		t.Fatal("the refused rotation was not recorded")
	}
}

// Failures back off to at most an hour; a recovery that settles the rotation clears them.
func TestScheduleBackoffCapAndRecoveryClearsFailures(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1})
	h.clock.Advance(time.Hour)
	for i := 0; i < 9; i++ {
		h.periodic()
		next, _ := time.Parse(time.RFC3339, h.nextRotation("ob"))
		if wait := next.Sub(h.clock.Now()); wait > time.Hour || wait < time.Minute {
			t.Fatalf("after %d failures the next try is %s away", i+1, wait)
		}
		h.clock.Advance(next.Sub(h.clock.Now()))
	}
	h.periodic() // one more failure: the next try is an hour away, so no rotation masks the recovery's
	h.sim.ClearFaults()
	h.unsettledRotationOf("ob") // a manual rotation left unsettled, as a failure would be
	h.sim.ClearFaults()
	h.rollback()
	if d := h.mustDo(logical.ReadOperation, "config/ob", nil).Data; d["rotation_failures"] != nil {
		t.Fatalf("a settled recovery left the failures: %v", d["rotation_failures"])
	}
}

// A shared token is never handed out while its config holds a fallback, and a settled
// recovery drops it itself (not only a rotation does). A rotation WAL entry of an earlier
// plugin version, found after the upgrade while a token of the old pair is shared, gives a
// config a fallback with a shared token in memory (a rotation forgets it): the rollback
// turns the entry into a fallback, and the next run settles it, which kills that token
// upstream.
func TestReuseDroppedBySettledRecovery(t *testing.T) {
	h := newHarness(t)
	h.reuseConfig(nil)
	before := h.creds("ob").Data["token"] // shared, from the old pair
	cur := h.stored("ob").ob()
	next, _ := offblocks.GenerateCredentials()
	h.legacyRotationWAL("ob", "offblocks", cur, next)
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 503, Times: -1})
	h.rollback() // the entry becomes a fallback; the provider cannot take the change yet (503)
	if h.fallbacks("ob") != 1 {
		t.Fatalf("%d fallbacks: the earlier version's entry was not turned into one", h.fallbacks("ob"))
	}
	h.wantUnsettledRead("ob") // not the shared token, which may die at any moment
	h.sim.ClearFaults()
	h.rollback() // settles: the change is applied (the shared token dies) and the new pair adopted
	if h.stored("ob").ob().APIKey != next.APIKey {
		t.Fatal("the recovery did not settle")
	}
	if after := h.creds("ob").Data["token"]; after == before {
		t.Fatal("the shared token outlived the settled recovery")
	}
}

// Series of a deleted config go (with per-config detail on); a Bloq fallback key the provider refuses, deleted upstream,
// counts as a recovery with outcome kept_old (the one way to keep the old credential now);
// interrupted create markers are not unsettled rotations.
func TestMetricsDeletedConfigsKeptOldAndMarkers(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.UpdateOperation, "settings", map[string]any{"metrics_per_config": true})
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	refused := h.stored("bq").bq()
	refused.ClientID, refused.ClientSecret = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12", "wrong"
	h.sim.AddBloqKey(h.bqUserID, refused.ClientID, "not-the-secret-vault-holds")
	h.holdFallback("bq", refused)
	if text := h.scrape(); !strings.Contains(text, `apitokens_unsettled_rotations{config="bq",provider="bloq"} 1`) {
		t.Fatalf("a held fallback not counted as an unsettled rotation:\n%s", text)
	}
	h.rollback()
	if text := h.scrape(); !strings.Contains(text,
		`apitokens_config_rotations_total{config="bq",outcome="kept_old",provider="bloq",trigger="recovered"} 1`) {
		t.Fatalf("kept_old not counted:\n%s", text)
	}
	h.mustDo(logical.DeleteOperation, "config/bq", nil)
	if text := h.scrape(); strings.Contains(text, `config="bq"`) {
		t.Fatalf("a deleted config's series remain:\n%s", text)
	}

	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	marker := newRotationWAL("bq", "bloq", h.stored("bq").bq(), nil, h.clock.Now())
	marker.Creating = true
	if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation, marker); err != nil {
		t.Fatal(err)
	}
	if text := h.scrape(); strings.Contains(text, `apitokens_unsettled_rotations{config="bq"`) ||
		!strings.Contains(text, `apitokens_configs_needing_attention{provider="bloq",reason="unsettled"} 0`) {
		t.Fatalf("a create marker counted as an unsettled rotation:\n%s", text)
	}
}
