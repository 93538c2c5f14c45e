package apitokens

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// scrape reads metrics in the Prometheus text format.
func (h *harness) scrape() string {
	h.t.Helper()
	resp := h.mustDo(logical.ReadOperation, "metrics", map[string]any{"format": "prometheus"})
	if ct := resp.Data[logical.HTTPContentType].(string); !strings.HasPrefix(ct, "text/plain") {
		h.t.Fatalf("content type %q", ct)
	}
	return string(resp.Data[logical.HTTPRawBody].([]byte))
}

// Every series the mount promises, with figures that follow what happened: by default
// aggregated by provider (a series per config only for configs that need attention), and
// with metrics_per_config a series per config too; never a secret; two mounts never mix
// their figures.
func TestMetrics(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h", "token_reuse": true})
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	h.creds("ob")
	h.creds("ob") // shared
	h.creds("ops")
	h.mustDo(logical.UpdateOperation, "rotate-root/ob", nil)
	h.clock.Advance(time.Hour)
	h.periodic() // scheduled
	h.sim.Inject(simulator.RouteOpsNowToken, simulator.Fault{Status: 401})
	_, _ = h.do(logical.ReadOperation, "creds/ops", nil)
	// An unsettled rotation, then recovered.
	h.sim.SetOffBlocksLag(2 * time.Hour)
	_, _ = h.do(logical.UpdateOperation, "rotate-root/ob", nil)

	text := h.scrape()
	for _, want := range []string{
		`apitokens_provider_calls_total{operation="mint_token",provider="offblocks",status="200"}`,
		`apitokens_provider_calls_total{operation="mint_token",provider="opsnow",status="401"} 1`,
		`apitokens_provider_calls_total{operation="update_credentials",provider="offblocks",status="204"} 3`,
		`apitokens_provider_call_duration_seconds_count{operation="mint_token",provider="offblocks"}`,
		`apitokens_tokens_issued_total{kind="fresh",provider="offblocks"} 1`,
		`apitokens_tokens_issued_total{kind="shared",provider="offblocks"} 1`,
		`apitokens_tokens_issued_total{kind="fresh",provider="opsnow"} 1`,
		`apitokens_rotations_total{outcome="success",provider="offblocks",trigger="manual"} 1`,
		`apitokens_rotations_total{outcome="success",provider="offblocks",trigger="scheduled"} 1`,
		`apitokens_rotations_total{outcome="unsettled",provider="offblocks",trigger="manual"} 1`,
		`apitokens_configs{provider="offblocks"} 1`,
		`apitokens_configs{provider="opsnow"} 1`,
		`apitokens_configs{provider="bloq"} 0`,
		`apitokens_configs_needing_attention{provider="offblocks",reason="unsettled"} 1`,
		`apitokens_configs_needing_attention{provider="offblocks",reason="rotation_failing"} 0`,
		`apitokens_unsettled_rotations{config="ob",provider="offblocks"} 1`,
		`apitokens_configs_needing_attention{provider="opsnow",reason="mint_failing"} 1`,
		`apitokens_mint_failing_since_timestamp_seconds{config="ops",provider="opsnow"} `,
		`apitokens_periodic_pass_configs 2`,
		`apitokens_periodic_pass_seconds `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, `config="`) && !strings.HasPrefix(line, "apitokens_unsettled_rotations{") &&
			!strings.HasPrefix(line, "apitokens_mint_failing_since_timestamp_seconds{") {
			t.Errorf("a series per config by default: %s", line)
		}
	}

	// Per-config detail on: a series per config for calls, tokens, rotations, next rotation.
	h.mustDo(logical.UpdateOperation, "settings", map[string]any{"metrics_per_config": true})
	if got := h.mustDo(logical.ReadOperation, "settings", nil).Data["metrics_per_config"]; got != true {
		t.Fatalf("settings read metrics_per_config=%v", got)
	}
	h.clock.Advance(2 * time.Hour)
	h.sim.SetOffBlocksLag(0) // the rollback's periodic call rotates again (it is due): at once
	h.rollback()
	h.creds("ob")
	next, _ := time.Parse(time.RFC3339, h.nextRotation("ob"))
	text = h.scrape()
	for _, want := range []string{
		`apitokens_rotations_total{outcome="success",provider="offblocks",trigger="recovered"} 1`,
		`apitokens_config_rotations_total{config="ob",outcome="success",provider="offblocks",trigger="recovered"} 1`,
		`apitokens_config_provider_calls_total{config="ob",operation="mint_token",provider="offblocks",status="200"}`,
		`apitokens_config_tokens_issued_total{config="ob",kind="fresh",provider="offblocks"} 1`,
		`apitokens_configs_needing_attention{provider="offblocks",reason="unsettled"} 0`,
		`apitokens_next_rotation_timestamp_seconds{config="ob",provider="offblocks"} ` +
			strconv.FormatFloat(float64(next.Unix()), 'g', -1, 64),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, `apitokens_unsettled_rotations{`) {
		t.Error("a settled config is still listed as unsettled")
	}
	key, secret := h.sim.OffBlocksPair(h.obID)
	assertNoSecrets(t, "metrics", text, secret, obSecret, opsAPIKey)
	if strings.Contains(text, key) {
		t.Error("metrics carry an api_key")
	}

	// The flat default and format=json: the same series.
	flat := h.mustDo(logical.ReadOperation, "metrics", nil).Data
	if got := flat[`apitokens_rotations_total{outcome="success",provider="offblocks",trigger="recovered"}`]; got != 1.0 {
		t.Fatalf("flat metrics: recovered rotations = %#v", got)
	}
	data := h.mustDo(logical.ReadOperation, "metrics", map[string]any{"format": "json"}).Data
	raw, _ := json.Marshal(data["metrics"])
	if !strings.Contains(string(raw), `"name":"apitokens_rotations_total"`) || !strings.Contains(string(raw), `"trigger":"recovered"`) {
		t.Fatalf("JSON metrics: %s", raw)
	}

	// Off again: the per-config series go, the aggregates stay.
	h.mustDo(logical.UpdateOperation, "settings", map[string]any{"metrics_per_config": false})
	h.creds("ob")
	text = h.scrape()
	if strings.Contains(text, `config="ob"`) || !strings.Contains(text, `apitokens_tokens_issued_total{kind="fresh",provider="offblocks"} 2`) {
		t.Fatalf("per-config detail off:\n%s", text)
	}
	if resp, err := h.do(logical.UpdateOperation, "settings", map[string]any{"metrics_per_config": "maybe"}); err != nil ||
		!resp.IsError() || !strings.Contains(fmt.Sprint(respErr(resp)), "metrics_per_config") {
		t.Fatalf("a bad metrics_per_config: err=%v resp=%v", err, respErr(resp))
	}

	other := newHarness(t)
	if text := other.scrape(); strings.Contains(text, "apitokens_rotations_total{") || strings.Contains(text, `config="ob"`) {
		t.Fatalf("a second mount sees the first's figures:\n%s", text)
	}
}

// A scrape's size does not grow with the configs by default: configs needing attention are
// listed one by one up to attentionCap, and counted exactly beside; with per-config detail,
// all of them are listed.
func TestMetricsAttentionCap(t *testing.T) {
	h := newHarness(t)
	const n = attentionCap + 5
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("c%03d", i)
		h.mustDo(logical.CreateOperation, "config/"+name, h.offblocksConfig())
		next := h.stored(name).ob()
		next.APISecret = fmt.Sprintf("%040x", i)
		h.holdFallback(name, next)
	}
	text := h.scrape()
	if got := strings.Count(text, "apitokens_unsettled_rotations{"); got != attentionCap {
		t.Fatalf("%d unsettled configs listed by default, want %d", got, attentionCap)
	}
	want := fmt.Sprintf(`apitokens_configs_needing_attention{provider="offblocks",reason="unsettled"} %d`, n)
	if !strings.Contains(text, want) || !strings.Contains(text, fmt.Sprintf(`apitokens_configs{provider="offblocks"} %d`, n)) {
		t.Fatalf("metrics lack %s:\n%s", want, text)
	}
	h.mustDo(logical.UpdateOperation, "settings", map[string]any{"metrics_per_config": true})
	if got := strings.Count(h.scrape(), "apitokens_unsettled_rotations{"); got != n {
		t.Fatalf("%d unsettled configs listed with per-config detail, want %d", got, n)
	}
}

// Events: config writes and deletes, rotations with trigger and outcome; metadata is the
// config name and provider (and trigger, outcome), never a secret.
func TestEvents(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.mustDo(logical.UpdateOperation, "rotate-root/ob", nil)
	h.clock.Advance(time.Hour)
	h.periodic()
	h.unsettledRotationOf("ob")
	h.sim.ClearFaults()
	h.rollback()
	secret := h.stored("ob").ob().APISecret
	h.mustDo(logical.DeleteOperation, "config/ob", nil)

	var got []string
	h.events.Lock()
	for _, e := range h.events.Events {
		meta := e.Event.Metadata.AsMap()
		got = append(got, fmt.Sprintf("%s %v/%v/%v/%v", e.Type, meta["name"], meta["provider"], meta["trigger"], meta["outcome"]))
		raw, _ := json.Marshal(meta)
		assertNoSecrets(t, "event metadata", string(raw), obSecret, secret)
	}
	h.events.Unlock()
	want := []string{
		"apitokens/config-write ob/offblocks/<nil>/<nil>",
		"apitokens/rotate ob/offblocks/manual/success",
		"apitokens/rotate ob/offblocks/scheduled/success",
		"apitokens/rotate ob/offblocks/manual/unsettled",
		"apitokens/rotate ob/offblocks/recovered/success",
		"apitokens/config-delete ob/offblocks/<nil>/<nil>",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// unsettledRotationOf leaves a rotation of name applied upstream while the provider became
// unreachable.
func (h *harness) unsettledRotationOf(name string) {
	h.t.Helper()
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{AfterApply: true, Status: 500,
		OnHit: func() { h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1}) }})
	if _, err := h.do(logical.UpdateOperation, "rotate-root/"+name, nil); err == nil {
		h.t.Fatal("the rotation should be unsettled")
	}
}
