package apitokens

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A config whose creds reads fail on the provider is listed with when the failures began,
// the first of the run kept across reads and scrapes, while its last failed read is recent;
// a missing config lists nothing; a successful read ends the run, a shared one too; a write
// or a delete, here or on another node, forgets it.
func TestMetricsMintFailing(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	const series = "apitokens_mint_failing_since_timestamp_seconds{"
	since := h.clock.Now()
	sinceLine := series + `config="ops",provider="opsnow"} ` + promUnix(since)
	if strings.Contains(h.scrape(), series) {
		t.Fatal("a config listed as failing before any read")
	}
	h.sim.Inject(simulator.RouteOpsNowToken, simulator.Fault{Status: 503, Times: -1})
	if _, err := h.do(logical.ReadOperation, "creds/ops", nil); err == nil {
		t.Fatal("the fault does not make the read fail: the test would prove nothing")
	}
	h.scrape() // a scrape keeps the run: the next one still shows its start
	h.clock.Advance(3 * time.Minute)
	_, _ = h.do(logical.ReadOperation, "creds/ops", nil) // fails again: the first failure is kept
	_, _ = h.do(logical.ReadOperation, "creds/missing", nil)
	text := h.scrape()
	for _, want := range []string{sinceLine,
		`apitokens_configs_needing_attention{provider="opsnow",reason="mint_failing"} 1`,
		`apitokens_configs_needing_attention{provider="offblocks",reason="mint_failing"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if got := strings.Count(text, series); got != 1 {
		t.Errorf("%d configs listed as failing, want 1 (ops):\n%s", got, text)
	}
	if _, ok := h.b.metrics.reads.runs["missing"]; ok {
		t.Error("a read of a missing config counted as failing on the provider")
	}

	// Not read any more: no longer failing once its last failed read is mintFailingRecent old.
	h.clock.Advance(mintFailingRecent - time.Second)
	if !strings.Contains(h.scrape(), sinceLine) {
		t.Fatalf("failing %s after its last failed read: no longer listed", mintFailingRecent-time.Second)
	}
	h.clock.Advance(time.Second)
	if text := h.scrape(); strings.Contains(text, series) || !strings.Contains(text, `reason="mint_failing"} 0`) {
		t.Fatalf("a config not read for %s is still failing:\n%s", mintFailingRecent, text)
	}
	_, _ = h.do(logical.ReadOperation, "creds/ops", nil) // read and failing again: the run goes on
	if !strings.Contains(h.scrape(), sinceLine) {
		t.Fatal("a run of failed reads lost its start")
	}

	// A successful read ends the run; the next failure starts a new one.
	h.sim.ClearFaults()
	h.creds("ops")
	if text := h.scrape(); strings.Contains(text, series) || !strings.Contains(text, `reason="mint_failing"} 0`) {
		t.Fatalf("a config that minted again is still failing:\n%s", text)
	}
	h.sim.Inject(simulator.RouteOpsNowToken, simulator.Fault{Status: 502, Times: -1})
	_, _ = h.do(logical.ReadOperation, "creds/ops", nil)
	again := series + `config="ops",provider="opsnow"} ` + promUnix(h.clock.Now())
	if text := h.scrape(); !strings.Contains(text, again) {
		t.Fatalf("a new run of failures keeps the old start, want %s:\n%s", again, text)
	}
	// A write of the config ends it: its reads failed with what it held before.
	h.mustDo(logical.UpdateOperation, "config/ops", map[string]any{"request_timeout": "20s"})
	if strings.Contains(h.scrape(), series) {
		t.Fatal("a config written again is still failing")
	}

	// Deleted on another node: gone at the next scrape, and not inherited by a new config.
	_, _ = h.do(logical.ReadOperation, "creds/ops", nil)
	if err := h.storage.Delete(context.Background(), configKey("ops")); err != nil {
		t.Fatal(err)
	}
	h.b.invalidate(context.Background(), configKey("ops"))
	h.clock.Advance(time.Second) // the next scrape's LIST is after the failure
	if text := h.scrape(); strings.Contains(text, `config="ops"`) {
		t.Fatalf("a config deleted elsewhere is still failing:\n%s", text)
	}
	if _, ok := h.b.metrics.reads.runs["ops"]; ok {
		t.Fatal("a config deleted elsewhere keeps its run after a scrape")
	}
	// Deleted here: forgotten at once.
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	_, _ = h.do(logical.ReadOperation, "creds/ops", nil)
	if _, ok := h.b.metrics.reads.runs["ops"]; !ok {
		t.Fatal("the failing read was not recorded: the delete check would prove nothing")
	}
	h.mustDo(logical.DeleteOperation, "config/ops", nil)
	if _, ok := h.b.metrics.reads.runs["ops"]; ok {
		t.Fatal("a deleted config's failing reads are still held")
	}
}

// A shared token handed out ends a run of failed reads, as a fresh one does.
func TestMetricsMintFailingEndsWithSharedToken(t *testing.T) {
	h := newHarness(t)
	cfg := h.offblocksConfig()
	cfg["token_reuse"] = true
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
	h.creds("ob")
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1})
	// A min_ttl no shared token meets makes the read mint, and fail.
	if _, err := h.do(logical.ReadOperation, "creds/ob", map[string]any{"min_ttl": "24h"}); err == nil {
		t.Fatal("the read with a long min_ttl did not mint: the test would prove nothing")
	}
	if _, ok := h.b.metrics.reads.runs["ob"]; !ok {
		t.Fatal("the failed read was not recorded")
	}
	if resp := h.creds("ob"); resp.Data["token"] == nil {
		t.Fatal("no shared token")
	}
	if _, ok := h.b.metrics.reads.runs["ob"]; ok {
		t.Fatal("a shared token handed out did not end the run of failed reads")
	}
}

// Only the provider's failures count: its answers and failures to answer, and a rotation it
// left unsettled; not bad input, a missing config, storage, or a caller that gave up.
func TestFailedOnProvider(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&apiclient.Error{Provider: "opsnow", Status: 503}, true},
		{fmt.Errorf("mint: %w", &apiclient.Error{Provider: "opsnow", Err: errors.New("transport error: connection refused")}), true},
		{&unsettledError{name: "ob", provider: "offblocks"}, true},
		{&apiclient.Error{Provider: "opsnow", Err: fmt.Errorf("no answer within the request timeout: %w", context.Canceled)}, false},
		{&fieldError{Field: "min_ttl", Msg: "bad"}, false},
		{errConfigNotFound("x"), false},
		{errors.New("storage down"), false},
		{logical.ErrReadOnly, false},
	} {
		if got := failedOnProvider(c.err); got != c.want {
			t.Errorf("failedOnProvider(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// promUnix is t's unix seconds as the Prometheus text format writes a sample.
func promUnix(t time.Time) string { return strconv.FormatFloat(float64(t.Unix()), 'g', -1, 64) }

// The failing-reads list is capped like the others, with the exact count beside.
func TestMetricsMintFailingCap(t *testing.T) {
	h := newHarness(t)
	const n = attentionCap + 2
	h.sim.Inject(simulator.RouteOpsNowToken, simulator.Fault{Status: 401, Times: -1}) // not retried: quick
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("c%03d", i)
		h.mustDo(logical.CreateOperation, "config/"+name, h.opsnowConfig())
		_, _ = h.do(logical.ReadOperation, "creds/"+name, nil)
	}
	h.checkCapped("apitokens_mint_failing_since_timestamp_seconds", "mint_failing", n)
}

// checkCapped checks that a scrape lists n configs needing attention for reason in series
// by their count, but only attentionCap of them one by one, and all n with per-config detail.
func (h *harness) checkCapped(series, reason string, n int) {
	h.t.Helper()
	text := h.scrape()
	if got := strings.Count(text, series+"{"); got != attentionCap {
		h.t.Fatalf("%d configs listed in %s by default, want %d", got, series, attentionCap)
	}
	if want := fmt.Sprintf(`reason="%s"} %d`, reason, n); !strings.Contains(text, want) {
		h.t.Fatalf("metrics lack %s", want)
	}
	h.mustDo(logical.UpdateOperation, "settings", map[string]any{"metrics_per_config": true})
	defer h.mustDo(logical.UpdateOperation, "settings", map[string]any{"metrics_per_config": false})
	if got := strings.Count(h.scrape(), series+"{"); got != n {
		h.t.Fatalf("%d configs listed in %s with per-config detail, want %d", got, series, n)
	}
}

// A scheduled config is overdue once more than rotationOverdueAfter past its next rotation
// with nothing rotating it; not while it is due within that grace, nor while a failed
// rotation waits for its retry, nor once it has rotated.
func TestMetricsRotationOverdue(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	const series = "apitokens_rotation_overdue_seconds{"
	h.clock.Advance(time.Hour + rotationOverdueAfter) // due, but only just past the grace
	if text := h.scrape(); strings.Contains(text, series) || !strings.Contains(text, `reason="rotation_overdue"} 0`) {
		t.Fatalf("a config within the grace is overdue:\n%s", text)
	}
	h.clock.Advance(time.Minute) // no periodic pass ran: nothing rotates it
	text := h.scrape()
	late := rotationOverdueAfter + time.Minute
	for _, want := range []string{
		fmt.Sprintf(`apitokens_rotation_overdue_seconds{config="ob",provider="offblocks"} %g`, late.Seconds()),
		`apitokens_configs_needing_attention{provider="offblocks",reason="rotation_overdue"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}

	// Failing: the next try is the retry, so it is failing, not overdue (yet).
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1})
	h.periodic()
	if h.stored("ob").Rotation.Failures != 1 {
		t.Fatal("the scheduled rotation did not fail: the test would prove nothing")
	}
	if text := h.scrape(); strings.Contains(text, series) || !strings.Contains(text, `reason="rotation_failing"} 1`) {
		t.Fatalf("a failing rotation waiting for its retry counts as overdue:\n%s", text)
	}

	// Its retry overdue in turn: overdue again, failures or not.
	h.clock.Advance(rotationRetryMin + rotationOverdueAfter + time.Second)
	if text := h.scrape(); !strings.Contains(text, `apitokens_rotation_overdue_seconds{config="ob",provider="offblocks"} `) {
		t.Fatalf("a config whose retry is overdue is not:\n%s", text)
	}
	// Holding a fallback: unsettled, not overdue.
	next := h.stored("ob").ob()
	next.APISecret = strings.Repeat("f", 40)
	h.holdFallback("ob", next)
	if text := h.scrape(); strings.Contains(text, series) || !strings.Contains(text, `reason="unsettled"} 1`) {
		t.Fatalf("an unsettled config counts as overdue:\n%s", text)
	}
}

// A cron slot missed and skipped for the next one (its rotation_window passed) stays
// overdue from the missed slot; a config that rotates is not overdue.
func TestMetricsRotationOverdueWindow(t *testing.T) {
	h := newHarness(t) // the clock reads 12:00
	h.scheduledOffBlocks(map[string]any{"rotation_schedule": "0 13 * * *", "rotation_window": "1h"})
	slot := time.Date(2026, 11, 23, 13, 0, 0, 0, time.UTC)
	if !h.clock.Now().Before(slot) {
		t.Fatalf("the harness clock reads %s: the test expects it before %s", h.clock.Now(), slot)
	}
	for _, at := range []time.Duration{6 * time.Minute, 61 * time.Minute, 3 * time.Hour, 23 * time.Hour} {
		h.clock.Advance(slot.Add(at).Sub(h.clock.Now()))
		want := fmt.Sprintf(`apitokens_rotation_overdue_seconds{config="ob",provider="offblocks"} %g`, at.Seconds())
		if text := h.scrape(); !strings.Contains(text, want) {
			t.Fatalf("%s after a missed slot, metrics lack %s:\n%s", at, want, text)
		}
	}
	h.clock.Advance(slot.Add(24 * time.Hour).Sub(h.clock.Now())) // the next slot's window is open
	h.periodic()
	if text := h.scrape(); strings.Contains(text, "apitokens_rotation_overdue_seconds{") {
		t.Fatalf("a config that rotated is still overdue:\n%s", text)
	}
}

// The overdue list is capped like the others, with the exact count beside.
func TestMetricsRotationOverdueCap(t *testing.T) {
	h := newHarness(t)
	const n = attentionCap + 2
	for i := 0; i < n; i++ {
		cfg := h.offblocksConfig()
		cfg["rotation_period"] = "1h"
		h.mustDo(logical.CreateOperation, fmt.Sprintf("config/c%03d", i), cfg)
	}
	h.clock.Advance(time.Hour + rotationOverdueAfter + time.Second)
	h.checkCapped("apitokens_rotation_overdue_seconds", "rotation_overdue", n)
}

// A scrape prunes the runs of configs its LIST did not find, but not one that began after
// the LIST: a config created and failing while the scrape ran.
func TestFailingReadsPruneAfterList(t *testing.T) {
	var f failingReads
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.failed("old", t0)
	f.failed("new", t0.Add(time.Second))
	f.prune(map[string]bool{}, t0.Add(time.Millisecond))
	if _, ok := f.runs["old"]; ok {
		t.Error("a run of an unlisted config that began before the LIST survived the prune")
	}
	if _, ok := f.runs["new"]; !ok {
		t.Error("a run that began after the LIST was pruned")
	}
	if f.n.Load() != 1 {
		t.Errorf("n = %d after the prune, want 1", f.n.Load())
	}
	f.end("new")
	if f.n.Load() != 0 || len(f.runs) != 0 {
		t.Errorf("after end: n = %d, %d runs", f.n.Load(), len(f.runs))
	}
}

// The metrics path's help says the overdue grace that the code applies.
func TestMetricsHelpSaysTheGrace(t *testing.T) {
	if !strings.Contains(strings.Join(strings.Fields(pathMetricsHelpDesc), " "), "more than "+words(rotationOverdueAfter)+" past") {
		t.Fatalf("the metrics path's help does not say %s:\n%s", words(rotationOverdueAfter), pathMetricsHelpDesc)
	}
}
