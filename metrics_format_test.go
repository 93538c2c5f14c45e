package apitokens

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// textSamples reads the sample lines of the Prometheus text format: the text before the
// value, and the value.
func textSamples(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// A metrics read answers by default one key per sample, named exactly as the Prometheus
// text format names it (a histogram's buckets, sum and count included), each with its value
// as a number, and the timestamp: what `vault read` prints as a table.
func TestMetricsFlatByDefault(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	h.creds("ob")
	h.creds("ops")
	h.sim.Inject(simulator.RouteOpsNowToken, simulator.Fault{Status: 401})
	_, _ = h.do(logical.ReadOperation, "creds/ops", nil)

	flat := h.mustDo(logical.ReadOperation, "metrics", nil).Data
	text := textSamples(t, h.scrape())
	if _, ok := flat["timestamp"].(string); !ok {
		t.Errorf("timestamp = %#v, want a string", flat["timestamp"])
	}
	for key, want := range text {
		got, ok := flat[key].(float64)
		// The scrape in between counts nothing and sets each gauge the same way.
		if !ok || got != want {
			t.Errorf("%s = %#v, want %v (as in the text format)", key, flat[key], want)
		}
	}
	if len(flat) != len(text)+1 {
		t.Errorf("%d keys, want the %d samples of the text format and timestamp", len(flat), len(text))
	}
	for key, want := range map[string]float64{
		`apitokens_configs{provider="bloq"}`:                                                                     0,
		`apitokens_configs{provider="offblocks"}`:                                                                1,
		`apitokens_tokens_issued_total{kind="fresh",provider="opsnow"}`:                                          1,
		`apitokens_provider_calls_total{operation="mint_token",provider="opsnow",status="401"}`:                  1,
		`apitokens_provider_call_duration_seconds_bucket{operation="mint_token",provider="offblocks",le="+Inf"}`: 1,
		`apitokens_provider_call_duration_seconds_count{operation="mint_token",provider="offblocks"}`:            1,
	} {
		if got, ok := flat[key].(float64); !ok || got != want {
			t.Errorf("%s = %#v, want %v", key, flat[key], want)
		}
	}
	for _, key := range []string{
		`apitokens_provider_call_duration_seconds_bucket{operation="mint_token",provider="offblocks",le="0.5"}`,
		`apitokens_provider_call_duration_seconds_sum{operation="mint_token",provider="offblocks"}`,
		`apitokens_mint_failing_since_timestamp_seconds{config="ops",provider="opsnow"}`,
		`apitokens_periodic_pass_seconds`,
	} {
		if _, ok := flat[key].(float64); !ok {
			t.Errorf("%s = %#v, want a number", key, flat[key])
		}
	}
	if _, ok := flat["metrics"]; ok {
		t.Error("the default answer still nests the series under metrics")
	}
}

// format=json answers the series as nested JSON, as 0.1.0 did by default.
func TestMetricsFormatJSON(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.creds("ob")
	data := h.mustDo(logical.ReadOperation, "metrics", map[string]any{"format": "json"}).Data
	raw, err := json.Marshal(data["metrics"])
	if err != nil {
		t.Fatal(err)
	}
	var families []struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		Samples []struct {
			Labels map[string]string `json:"labels"`
			Value  *float64          `json:"value"`
		} `json:"samples"`
	}
	if err := json.Unmarshal(raw, &families); err != nil {
		t.Fatalf("format=json: %v\n%s", err, raw)
	}
	for _, f := range families {
		if f.Name != "apitokens_configs" {
			continue
		}
		for _, s := range f.Samples {
			if s.Labels["provider"] == "offblocks" && s.Value != nil && *s.Value == 1 && f.Type == "GAUGE" {
				return
			}
		}
	}
	t.Fatalf("format=json lacks apitokens_configs{provider=\"offblocks\"} 1:\n%s", raw)
}

// An unknown format is a 400 that names the field and the formats there are; none is
// answered with JSON and a 200.
func TestMetricsFormatUnknown(t *testing.T) {
	h := newHarness(t)
	for _, format := range []string{"xml", "JSON", "text"} {
		resp, err := h.do(logical.ReadOperation, "metrics", map[string]any{"format": format})
		msg := fmt.Sprint(respErr(resp))
		if !errors.Is(err, logical.ErrInvalidRequest) || !strings.HasPrefix(msg, "format: ") ||
			!strings.Contains(msg, "flat") || !strings.Contains(msg, "json") || !strings.Contains(msg, "prometheus") {
			t.Errorf("format=%s: err=%v message=%q, want a 400 starting with format: and naming flat, json and prometheus", format, err, msg)
		}
	}
	for _, format := range []string{"", "flat", "json", "prometheus"} {
		h.mustDo(logical.ReadOperation, "metrics", map[string]any{"format": format})
	}
}

// The OpenAPI document has format as a query parameter of the read (GET) with its values.
func TestMetricsFormatInOpenAPI(t *testing.T) {
	h := newHarness(t)
	resp, err := h.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.HelpOperation,
		Path: "metrics", Storage: h.storage, MountPoint: "apitokens/"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(resp.Data["openapi"])
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]struct {
			Get *struct {
				Parameters []struct {
					Name, In string
					Schema   struct {
						Enum []string `json:"enum"`
					} `json:"schema"`
				} `json:"parameters"`
			} `json:"get"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if get := doc.Paths["/metrics"].Get; get != nil {
		for _, p := range get.Parameters {
			if p.Name == "format" && p.In == "query" && strings.Join(p.Schema.Enum, ",") == "flat,json,prometheus" {
				return
			}
		}
	}
	t.Fatalf("GET /metrics has no query parameter format with its values:\n%s", raw)
}

// A value JSON cannot hold as a number keeps its text form; the rest are numbers.
func TestFlatSamplesNonFinite(t *testing.T) {
	gauge := func(name string, v float64) *dto.MetricFamily {
		return &dto.MetricFamily{Name: proto.String(name), Help: proto.String("h"), Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(v)}}}}
	}
	flat, err := flatSamples([]*dto.MetricFamily{gauge("a", math.NaN()), gauge("b", math.Inf(1)),
		gauge("c", math.Inf(-1)), gauge("d", 1795950000)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": "NaN", "b": "+Inf", "c": "-Inf", "d": 1795950000.0}
	if fmt.Sprintf("%#v", flat) != fmt.Sprintf("%#v", want) {
		t.Fatalf("flat = %v, want %v", flat, want)
	}
	if _, err := json.Marshal(flat); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
}
