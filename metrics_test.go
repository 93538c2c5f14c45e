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

// Every series the mount promises, with figures that follow what happened, labelled by
// provider and config (never a secret); and two mounts never mix their figures.
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

	next, _ := time.Parse(time.RFC3339, h.nextRotation("ob"))
	text := h.scrape()
	for _, want := range []string{
		`apitokens_provider_calls_total{config="ob",operation="mint_token",provider="offblocks",status="200"}`,
		`apitokens_provider_calls_total{config="ops",operation="mint_token",provider="opsnow",status="401"} 1`,
		`apitokens_provider_calls_total{config="ob",operation="update_credentials",provider="offblocks",status="204"} 3`,
		`apitokens_provider_call_duration_seconds_count{config="ob",operation="mint_token",provider="offblocks"}`,
		`apitokens_tokens_issued_total{config="ob",kind="fresh",provider="offblocks"} 1`,
		`apitokens_tokens_issued_total{config="ob",kind="shared",provider="offblocks"} 1`,
		`apitokens_tokens_issued_total{config="ops",kind="fresh",provider="opsnow"} 1`,
		`apitokens_rotations_total{config="ob",outcome="success",provider="offblocks",trigger="manual"} 1`,
		`apitokens_rotations_total{config="ob",outcome="success",provider="offblocks",trigger="scheduled"} 1`,
		`apitokens_rotations_total{config="ob",outcome="unsettled",provider="offblocks",trigger="manual"} 1`,
		`apitokens_unsettled_rotations{config="ob",provider="offblocks"} 1`,
		`apitokens_next_rotation_timestamp_seconds{config="ob",provider="offblocks"} ` +
			strconv.FormatFloat(float64(next.Unix()), 'g', -1, 64),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	h.clock.Advance(2 * time.Hour)
	h.sim.SetOffBlocksLag(0) // the rollback's periodic call rotates again (it is due): at once
	h.rollback()
	text = h.scrape()
	for _, want := range []string{
		`apitokens_rotations_total{config="ob",outcome="success",provider="offblocks",trigger="recovered"} 1`,
		`apitokens_unsettled_rotations{config="ob",provider="offblocks"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	key, secret := h.sim.OffBlocksPair(h.obID)
	assertNoSecrets(t, "metrics", text, secret, obSecret, opsAPIKey)
	if strings.Contains(text, key) {
		t.Error("metrics carry an api_key")
	}

	// JSON: the same series.
	data := h.mustDo(logical.ReadOperation, "metrics", nil).Data
	raw, _ := json.Marshal(data["metrics"])
	if !strings.Contains(string(raw), `"name":"apitokens_rotations_total"`) || !strings.Contains(string(raw), `"trigger":"recovered"`) {
		t.Fatalf("JSON metrics: %s", raw)
	}

	other := newHarness(t)
	if text := other.scrape(); strings.Contains(text, "apitokens_rotations_total{") || strings.Contains(text, `config="ob"`) {
		t.Fatalf("a second mount sees the first's figures:\n%s", text)
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
	secret := h.stored("ob").APISecret
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
