package apitokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

const pathMetricsHelpDesc = `
Reading metrics returns what this mount has been doing on this node since the plugin
started: provider calls by operation and status and their duration, tokens handed out
(fresh or shared), rotations by trigger and outcome, the number of configs, and the last
pass of the periodic function, each by provider; and, one series per config, the configs
that need attention (holding a fallback credential, failing their scheduled rotations, more
than 5 minutes past their next scheduled rotation, failing their creds reads on the
provider; at most 100 of each, with exact counts beside). With metrics_per_config=true on
the settings path, calls, tokens, rotations and the next scheduled rotation have a series
per config too. Labels never carry a secret.

format=flat (the default) answers one key per sample, named exactly as in the Prometheus
text format (apitokens_configs{provider="<name>"}; a histogram's _bucket{...,le="0.5"},
_sum and _count), its value the number, and timestamp: vault read prints it as a table.
format=json answers each series as nested JSON (name, help, type and samples, each with
its labels and value, or a histogram's count, sum and buckets), the default of 0.1.0.
format=prometheus answers the Prometheus text format, like Vault's sys/metrics. The vault
CLI cannot print it (the CLI expects JSON: "invalid character '#'"); read it over HTTP,
with this mount's path in place of apitokens:

  curl -H "X-Vault-Token: $VAULT_TOKEN" "$VAULT_ADDR/v1/apitokens/metrics?format=prometheus"
`

// The formats of a metrics read.
const (
	metricsFlat       = "flat"
	metricsJSON       = "json"
	metricsPrometheus = "prometheus"
)

func pathMetrics(b *backend) *framework.Path {
	return &framework.Path{
		Pattern:      "metrics",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "apitokens", OperationSuffix: "metrics"},
		Fields: map[string]*framework.FieldSchema{
			"format": {Type: framework.TypeString, Query: true, Default: metricsFlat,
				AllowedValues: []any{metricsFlat, metricsJSON, metricsPrometheus},
				Description: "flat (the default: one key per sample, named as in the Prometheus text format), " +
					"json (each series as nested JSON) or prometheus (the Prometheus text format; over HTTP, " +
					"not through the vault CLI, which cannot print it)."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathMetricsRead,
				Summary: "The mount's metrics: one key per sample, as nested JSON, or in the Prometheus text format."},
		},
		HelpSynopsis:    "The mount's metrics.",
		HelpDescription: pathMetricsHelpDesc,
	}
}

func (b *backend) pathMetricsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	format := d.Get("format").(string)
	switch format {
	case "", metricsFlat, metricsJSON, metricsPrometheus:
	default: // the framework does not hold a string to its AllowedValues
		return errorResponse(fieldErrorf("format", "must be %s (the default), %s or %s",
			metricsFlat, metricsJSON, metricsPrometheus))
	}
	// A settings change this node missed applies from here on; one it cannot read leaves
	// the settings it has.
	if err := b.loadSettings(ctx, req.Storage); err != nil {
		b.Logger().Warn("could not read the mount's settings; the metrics follow the ones this node has", "error", err)
	}
	families, err := b.gather(ctx, req.Storage)
	if err != nil {
		return errorResponse(err)
	}
	switch format {
	case metricsPrometheus:
		text, err := promText(families)
		if err != nil {
			return nil, err
		}
		return &logical.Response{Data: map[string]any{
			logical.HTTPContentType: string(promTextFormat),
			logical.HTTPRawBody:     text,
			logical.HTTPStatusCode:  http.StatusOK,
		}}, nil
	case metricsJSON:
		return &logical.Response{Data: map[string]any{
			"timestamp": b.now().UTC().Format(time.RFC3339),
			"metrics":   jsonFamilies(families),
		}}, nil
	}
	data, err := flatSamples(families)
	if err != nil {
		return nil, err
	}
	data["timestamp"] = b.now().UTC().Format(time.RFC3339)
	return &logical.Response{Data: data}, nil
}

// configCounts is what a scrape finds in the configs.
type configCounts struct {
	configs, unsettled, failing, overdue, mintFailing map[string]int // by provider
	// The configs needing attention for each reason, and the scheduled ones' next rotation
	// (per-config detail only).
	unsettledOf, failingOf, overdueOf, mintFailingOf, next []configFigure
	// listed are the configs the scrape's LIST found, at listedAt.
	listed   map[string]bool
	listedAt time.Time
}

type configFigure struct {
	provider, name string
	value          float64
}

// countConfigs reads every config as it is now: from memory when this node holds it
// (peekConfig), so a scrape costs a LIST and no storage read per config once the configs are
// in memory. Configs needing attention are listed up to attentionCap each, unless perConfig.
func (b *backend) countConfigs(ctx context.Context, s logical.Storage, perConfig bool) (*configCounts, error) {
	listedAt := b.now()
	names, err := s.List(ctx, configPrefix)
	if err != nil {
		return nil, err
	}
	c := &configCounts{configs: map[string]int{}, unsettled: map[string]int{}, failing: map[string]int{},
		overdue: map[string]int{}, mintFailing: map[string]int{}, listed: make(map[string]bool, len(names)), listedAt: listedAt}
	now := b.now()
	// note counts a config of provider p that needs attention, and lists it up to the cap.
	note := func(counts map[string]int, list *[]configFigure, p, name string, value float64) {
		if counts[p]++; perConfig || len(*list) < attentionCap {
			*list = append(*list, configFigure{p, name, value})
		}
	}
	for _, name := range names {
		c.listed[name] = true
		cfg, err := b.peekConfig(ctx, s, name)
		if err != nil || cfg == nil {
			continue
		}
		p := cfg.Provider
		c.configs[p]++
		if n := len(cfg.Fallbacks); n > 0 {
			note(c.unsettled, &c.unsettledOf, p, name, float64(n))
		}
		if n := cfg.Rotation.Failures; n > 0 {
			note(c.failing, &c.failingOf, p, name, float64(n))
		}
		if due := cfg.rotationOwed(now); !due.IsZero() && len(cfg.Fallbacks) == 0 && now.Sub(due) > rotationOverdueAfter {
			note(c.overdue, &c.overdueOf, p, name, now.Sub(due).Seconds())
		}
		if since, ok := b.metrics.reads.since(name, now); ok {
			note(c.mintFailing, &c.mintFailingOf, p, name, float64(since.Unix()))
		}
		if perConfig {
			if next := cfg.nextRotation(now); !next.IsZero() {
				c.next = append(c.next, configFigure{p, name, float64(next.Unix())})
			}
		}
	}
	return c, nil
}

// gather sets the gauges that describe the configs as they are now (how many there are,
// which need attention and, with per-config detail, each one's next scheduled rotation),
// drops the per-config series of configs that are gone (deleted on another node, or by a
// delete a call in flight outlived) and gathers every series. Scrapes are serialised from
// the reset of the gauges to the gather, so none sees another's half-filled gauges.
func (b *backend) gather(ctx context.Context, s logical.Storage) ([]*dto.MetricFamily, error) {
	m := b.metrics
	perConfig := m.perConfig.Load()
	c, err := b.countConfigs(ctx, s, perConfig)
	if err != nil {
		return nil, err
	}
	m.scrapeMu.Lock()
	defer m.scrapeMu.Unlock()
	for _, v := range []*prometheus.GaugeVec{m.configs, m.attention, m.unsettled, m.failing, m.overdue,
		m.mintFailing, m.nextRotation} {
		v.Reset()
	}
	for _, p := range registry.Names() { // every provider has its counts, 0 included: alerts need no absent()
		m.configs.WithLabelValues(p).Set(float64(c.configs[p]))
		m.attention.WithLabelValues(p, "unsettled").Set(float64(c.unsettled[p]))
		m.attention.WithLabelValues(p, "rotation_failing").Set(float64(c.failing[p]))
		m.attention.WithLabelValues(p, "rotation_overdue").Set(float64(c.overdue[p]))
		m.attention.WithLabelValues(p, "mint_failing").Set(float64(c.mintFailing[p]))
	}
	for _, l := range []struct {
		gauge   *prometheus.GaugeVec
		figures []configFigure
	}{{m.unsettled, c.unsettledOf}, {m.failing, c.failingOf}, {m.overdue, c.overdueOf},
		{m.mintFailing, c.mintFailingOf}, {m.nextRotation, c.next}} {
		for _, f := range l.figures {
			l.gauge.WithLabelValues(f.provider, f.name).Set(f.value)
		}
	}
	m.pruneDetail(perConfig, c.listed)
	m.reads.prune(c.listed, c.listedAt)
	families, err := m.registry.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather metrics: %w", err)
	}
	return families, nil
}

// jsonFamilies turns gathered metrics into plain JSON: for each series its name, help, type
// and samples, each with its labels and value (counters, gauges) or count, sum and
// cumulative buckets (histograms).
func jsonFamilies(families []*dto.MetricFamily) []map[string]any {
	out := make([]map[string]any, 0, len(families))
	for _, f := range families {
		samples := make([]map[string]any, 0, len(f.Metric))
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			s := map[string]any{"labels": labels}
			switch {
			case m.Counter != nil:
				s["value"] = m.Counter.GetValue()
			case m.Gauge != nil:
				s["value"] = m.Gauge.GetValue()
			case m.Histogram != nil:
				buckets := map[string]uint64{}
				for _, bk := range m.Histogram.Bucket {
					buckets[fmt.Sprint(bk.GetUpperBound())] = bk.GetCumulativeCount()
				}
				s["count"], s["sum"], s["buckets"] = m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum(), buckets
			}
			samples = append(samples, s)
		}
		out = append(out, map[string]any{"name": f.GetName(), "help": f.GetHelp(),
			"type": f.GetType().String(), "samples": samples})
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["name"].(string) < out[j]["name"].(string) })
	return out
}

var promTextFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

// promText encodes gathered metrics in the Prometheus text format.
func promText(families []*dto.MetricFamily) ([]byte, error) {
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, promTextFormat)
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return nil, fmt.Errorf("encode metrics: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// flatSamples turns gathered metrics into one entry per sample, keyed exactly as the
// Prometheus text format writes the sample (its name, with its labels in braces: a
// histogram's _bucket{...,le="0.5"}, _sum and _count), the keys taken from that format's own
// encoder so that the two never differ. A value is a number, or its text form ("NaN",
// "+Inf", "-Inf") where JSON has no number for it.
func flatSamples(families []*dto.MetricFamily) (map[string]any, error) {
	text, err := promText(families)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, line := range strings.Split(string(text), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The value is the last field: no sample carries a timestamp, and a label value's
		// spaces are inside the braces, before it.
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, errors.New("encode metrics: a sample line without a value")
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("encode metrics: a sample's value: %w", err)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			out[line[:i]] = line[i+1:]
		} else {
			out[line[:i]] = v
		}
	}
	return out, nil
}
