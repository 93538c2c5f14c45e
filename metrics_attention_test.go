package apitokens

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A config whose creds reads fail on the provider is listed with when the failures began,
// the first of the run kept; a read that fails on bad input or a missing config lists
// nothing; a successful read ends the run; a delete, here or on another node, forgets it.
func TestMetricsMintFailing(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	since := h.clock.Now()
	sinceLine := `apitokens_mint_failing_since_timestamp_seconds{config="ops",provider="opsnow"} ` + promUnix(since)
	if strings.Contains(h.scrape(), "apitokens_mint_failing_since_timestamp_seconds{") {
		t.Fatal("a config listed as failing before any read")
	}
	h.sim.Inject(simulator.RouteOpsNowToken, simulator.Fault{Status: 503, Times: -1})
	if _, err := h.do(logical.ReadOperation, "creds/ops", nil); err == nil {
		t.Fatal("the fault does not make the read fail: the test would prove nothing")
	}
	h.clock.Advance(3 * time.Minute)
	_, _ = h.do(logical.ReadOperation, "creds/ops", nil) // fails again: the first failure is kept
	_, _ = h.do(logical.ReadOperation, "creds/missing", nil)
	_, _ = h.do(logical.ReadOperation, "creds/ob", map[string]any{"min_ttl": "nonsense"})
	text := h.scrape()
	for _, want := range []string{sinceLine,
		`apitokens_configs_needing_attention{provider="opsnow",reason="mint_failing"} 1`,
		`apitokens_configs_needing_attention{provider="offblocks",reason="mint_failing"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if got := strings.Count(text, "apitokens_mint_failing_since_timestamp_seconds{"); got != 1 {
		t.Errorf("%d configs listed as failing, want 1 (ops):\n%s", got, text)
	}

	// A successful read ends the run; the next failure starts a new one.
	h.sim.ClearFaults()
	h.creds("ops")
	if text := h.scrape(); strings.Contains(text, "apitokens_mint_failing_since_timestamp_seconds{") ||
		!strings.Contains(text, `reason="mint_failing"} 0`) {
		t.Fatalf("a config that minted again is still failing:\n%s", text)
	}
	h.sim.Inject(simulator.RouteOpsNowToken, simulator.Fault{Status: 502, Times: -1})
	_, _ = h.do(logical.ReadOperation, "creds/ops", nil)
	again := `apitokens_mint_failing_since_timestamp_seconds{config="ops",provider="opsnow"} ` + promUnix(h.clock.Now())
	if text := h.scrape(); !strings.Contains(text, again) {
		t.Fatalf("a new run of failures keeps the old start, want %s:\n%s", again, text)
	}

	// Deleted on another node: gone at the next scrape, and not listed again.
	if err := h.storage.Delete(context.Background(), configKey("ops")); err != nil {
		t.Fatal(err)
	}
	h.b.invalidate(context.Background(), configKey("ops"))
	if text := h.scrape(); strings.Contains(text, `config="ops"`) {
		t.Fatalf("a config deleted elsewhere is still failing:\n%s", text)
	}
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	if text := h.scrape(); strings.Contains(text, `config="ops"`) {
		t.Fatalf("a config written again inherits the old one's failures:\n%s", text)
	}
	// Deleted here: forgotten at once.
	_, _ = h.do(logical.ReadOperation, "creds/ops", nil)
	if !strings.Contains(h.scrape(), `apitokens_mint_failing_since_timestamp_seconds{config="ops"`) {
		t.Fatal("the failing read was not recorded: the delete check would prove nothing")
	}
	h.mustDo(logical.DeleteOperation, "config/ops", nil)
	if _, ok := h.b.metrics.mintFailingSince("ops"); ok {
		t.Fatal("a deleted config's failing reads are still held")
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
	text := h.scrape()
	if got := strings.Count(text, "apitokens_mint_failing_since_timestamp_seconds{"); got != attentionCap {
		t.Fatalf("%d failing configs listed by default, want %d", got, attentionCap)
	}
	if want := fmt.Sprintf(`reason="mint_failing"} %d`, n); !strings.Contains(text, want) {
		t.Fatalf("metrics lack %s", want)
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

	// Failing: the next try is the retry, so it is failing, not overdue.
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1})
	h.periodic()
	if h.stored("ob").Rotation.Failures != 1 {
		t.Fatal("the scheduled rotation did not fail: the test would prove nothing")
	}
	if text := h.scrape(); strings.Contains(text, series) || !strings.Contains(text, `reason="rotation_failing"} 1`) {
		t.Fatalf("a failing rotation waiting for its retry counts as overdue:\n%s", text)
	}

	// Rotated: neither.
	h.sim.ClearFaults()
	h.clock.Advance(rotationRetryMin)
	h.periodic()
	if text := h.scrape(); strings.Contains(text, series) || strings.Contains(text, "apitokens_rotation_failures{") {
		t.Fatalf("a config that rotated is still overdue or failing:\n%s", text)
	}
}
