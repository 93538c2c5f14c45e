package apitokens

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Rotation triggers and outcomes, as labels and event metadata.
const (
	triggerManual    = "manual"
	triggerScheduled = "scheduled"
	triggerPlanned   = "planned"
	triggerRecovered = "recovered"

	outcomeSuccess   = "success"
	outcomeFailure   = "failure"
	outcomeUnsettled = "unsettled"
	outcomeKeptOld   = "kept_old"
)

// attentionCap bounds, with per-config detail off, how many configs each series of configs
// needing attention lists (apitokens_unsettled_rotations, apitokens_rotation_failures,
// apitokens_rotation_overdue_seconds, apitokens_mint_failing_since_timestamp_seconds): a
// provider outage must not turn a scrape into one series per config. The
// apitokens_configs_needing_attention counts beside them are always exact.
const attentionCap = 100

// words says a whole number of minutes as the README does: "5 minutes".
func words(d time.Duration) string { return fmt.Sprintf("%d minutes", int(d.Minutes())) }

// rotationOverdueAfter is how long past its next scheduled rotation a config counts as
// overdue: five passes of Vault's periodic function, which runs due rotations every minute.
const rotationOverdueAfter = 5 * time.Minute

// metrics are the mount's own figures, on a registry of its own (never the global one, so
// two mounts never mix them). Labels are the provider, fixed words and, only where said, the
// config name: never anything secret. Figures are per node and start at zero with the plugin.
//
// Their size does not grow with the number of configs by default: what is counted or timed
// is aggregated by provider and operation, and a series per config exists only for the
// configs an operator alerts on one by one (holding a fallback credential, failing its
// scheduled rotations, overdue for one, failing its creds reads on the provider), at most
// attentionCap of each. The mount setting metrics_per_config adds a series per config for
// calls, tokens, rotations and the next rotation (path_settings.go).
type metrics struct {
	registry *prometheus.Registry
	// perConfig is the mount setting metrics_per_config.
	perConfig atomic.Bool
	// scrapeMu serialises scrapes, from the reset of the config gauges to the gather.
	scrapeMu sync.Mutex
	// detailMu guards detailNames, the configs that have per-config detail series.
	detailMu    sync.Mutex
	detailNames map[string]struct{}

	calls        *prometheus.CounterVec
	callDuration *prometheus.HistogramVec
	tokens       *prometheus.CounterVec
	rotations    *prometheus.CounterVec
	configs      *prometheus.GaugeVec
	attention    *prometheus.GaugeVec
	periodicTook prometheus.Gauge
	periodicSaw  prometheus.Gauge

	// Configs needing attention, one series each.
	unsettled   *prometheus.GaugeVec
	failing     *prometheus.GaugeVec
	overdue     *prometheus.GaugeVec
	mintFailing *prometheus.GaugeVec

	// reads are the runs of creds reads that failed on the provider, per config.
	reads failingReads

	// Per-config detail, only with metrics_per_config.
	configCalls     *prometheus.CounterVec
	configTokens    *prometheus.CounterVec
	configRotations *prometheus.CounterVec
	nextRotation    *prometheus.GaugeVec
}

func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		calls: counter("apitokens_provider_calls_total",
			"Calls to the providers' APIs, by operation and the HTTP status of the last answer (none: no answer).",
			"provider", "operation", "status"),
		callDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "apitokens_provider_call_duration_seconds",
			Help:    "How long calls to the providers' APIs took, retries included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"provider", "operation"}),
		tokens: counter("apitokens_tokens_issued_total",
			"Tokens handed out by creds reads: fresh (minted for the read) or shared (token_reuse).",
			"provider", "kind"),
		rotations: counter("apitokens_rotations_total",
			"Root credential rotations by trigger (manual, planned, scheduled, recovered) and outcome.",
			"provider", "trigger", "outcome"),
		configs: gauge("apitokens_configs", "Configs of the mount.", "provider"),
		attention: gauge("apitokens_configs_needing_attention",
			fmt.Sprintf("Configs holding a fallback credential (reason unsettled), whose last scheduled or planned rotation failed (rotation_failing), "+
				"past their next scheduled or planned rotation by more than %s (rotation_overdue), or whose creds reads fail on the provider (mint_failing).",
				words(rotationOverdueAfter)),
			"provider", "reason"),
		periodicTook: prometheus.NewGauge(prometheus.GaugeOpts{Name: "apitokens_periodic_pass_seconds",
			Help: "How long the last pass of the periodic function (settling, scheduled rotations) took."}),
		periodicSaw: prometheus.NewGauge(prometheus.GaugeOpts{Name: "apitokens_periodic_pass_configs",
			Help: "How many configs the last pass of the periodic function looked at."}),
		unsettled: gauge("apitokens_unsettled_rotations",
			"Fallback credentials a config holds (an unsettled rotation); only configs holding one.",
			"provider", "config"),
		failing: gauge("apitokens_rotation_failures",
			"Scheduled rotations of a config failed in a row; only configs whose last one failed.",
			"provider", "config"),
		overdue: gauge("apitokens_rotation_overdue_seconds",
			fmt.Sprintf("How long a config is past its next scheduled or planned rotation; only configs overdue by more than %s and "+
				"not unsettled (a failed rotation moves the next one to its retry, so overdue means no rotation ran).",
				words(rotationOverdueAfter)),
			"provider", "config"),
		mintFailing: gauge("apitokens_mint_failing_since_timestamp_seconds",
			fmt.Sprintf("When the first of a config's creds reads that failed on the provider in a row ran (unix seconds); "+
				"only configs whose last creds read failed on the provider, less than %s ago.", words(mintFailingRecent)),
			"provider", "config"),
		configCalls: counter("apitokens_config_provider_calls_total",
			"Calls to the providers' APIs per config (metrics_per_config), by operation and status.",
			"provider", "config", "operation", "status"),
		configTokens: counter("apitokens_config_tokens_issued_total",
			"Tokens handed out per config (metrics_per_config), fresh or shared.",
			"provider", "config", "kind"),
		configRotations: counter("apitokens_config_rotations_total",
			"Root credential rotations per config (metrics_per_config), by trigger and outcome.",
			"provider", "config", "trigger", "outcome"),
		nextRotation: gauge("apitokens_next_rotation_timestamp_seconds",
			"When a config's next scheduled or planned rotation is due (unix seconds; metrics_per_config).",
			"provider", "config"),
	}
	m.registry.MustRegister(m.calls, m.callDuration, m.tokens, m.rotations, m.configs, m.attention,
		m.periodicTook, m.periodicSaw, m.unsettled, m.failing, m.overdue, m.mintFailing,
		m.configCalls, m.configTokens, m.configRotations, m.nextRotation)
	return m
}

// setPerConfig turns per-config detail on or off; off drops every detail series.
func (m *metrics) setPerConfig(on bool) {
	if m.perConfig.Swap(on) && !on {
		m.dropDetail()
	}
}

// dropDetail drops every per-config detail series.
func (m *metrics) dropDetail() {
	m.detailMu.Lock()
	defer m.detailMu.Unlock()
	m.configCalls.Reset()
	m.configTokens.Reset()
	m.configRotations.Reset()
	m.nextRotation.Reset()
	m.detailNames = nil
}

// detailFor reports whether per-config detail is on, and if so notes that name has detail
// series (pruneDetail drops them once name is gone).
func (m *metrics) detailFor(name string) bool {
	if name == "" || !m.perConfig.Load() {
		return false
	}
	m.detailMu.Lock()
	defer m.detailMu.Unlock()
	if m.detailNames == nil {
		m.detailNames = map[string]struct{}{}
	}
	m.detailNames[name] = struct{}{}
	return true
}

// pruneDetail drops, at a scrape, the detail series a racing observation left (all of them
// when detail is off) and those of configs that are not listed any more: deleted on another
// node (Invalidate cannot tell a delete from a change), or after a call that outlived the
// delete recorded its figures.
func (m *metrics) pruneDetail(perConfig bool, listed map[string]bool) {
	if !perConfig {
		m.dropDetail()
		return
	}
	m.detailMu.Lock()
	var gone []string
	for name := range m.detailNames {
		if !listed[name] {
			gone = append(gone, name)
		}
	}
	m.detailMu.Unlock()
	for _, name := range gone {
		m.forget(name)
	}
}

// configNameKey carries, in a provider call's context, the config the call is for.
type configNameKey struct{}

// withConfigName returns ctx naming the config its provider calls are for.
func withConfigName(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, configNameKey{}, name)
}

// observeCall is apiclient's Observe hook for the clients of provider; the config a call is
// for comes from its context (providerFor puts it there).
func (m *metrics) observeCall(provider string) func(ctx context.Context, call string, status int, took time.Duration) {
	return func(ctx context.Context, call string, status int, took time.Duration) {
		op := strings.ReplaceAll(call, " ", "_")
		s := "none"
		if status != 0 {
			s = strconv.Itoa(status)
		}
		m.calls.WithLabelValues(provider, op, s).Inc()
		m.callDuration.WithLabelValues(provider, op).Observe(took.Seconds())
		if name, _ := ctx.Value(configNameKey{}).(string); m.detailFor(name) {
			m.configCalls.WithLabelValues(provider, name, op, s).Inc()
		}
	}
}

// tokenIssued counts a token handed out by a creds read of config name, which ends any run
// of failed reads.
func (m *metrics) tokenIssued(provider, name string, shared bool) {
	m.reads.end(name)
	kind := "fresh"
	if shared {
		kind = "shared"
	}
	m.tokens.WithLabelValues(provider, kind).Inc()
	if m.detailFor(name) {
		m.configTokens.WithLabelValues(provider, name, kind).Inc()
	}
}

// rotation counts a rotation of config name with its trigger and outcome.
func (m *metrics) rotation(provider, name, trigger, outcome string) {
	m.rotations.WithLabelValues(provider, trigger, outcome).Inc()
	if m.detailFor(name) {
		m.configRotations.WithLabelValues(provider, name, trigger, outcome).Inc()
	}
}

// periodicPass records a pass of the periodic function.
func (m *metrics) periodicPass(took time.Duration, configs int) {
	m.periodicTook.Set(took.Seconds())
	m.periodicSaw.Set(float64(configs))
}

// forget removes every series of a deleted config, so that configs that come and go do not
// pile up series.
func (m *metrics) forget(name string) {
	m.detailMu.Lock()
	delete(m.detailNames, name)
	m.detailMu.Unlock()
	m.reads.end(name)
	l := prometheus.Labels{"config": name}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.unsettled, m.failing, m.overdue, m.mintFailing, m.configCalls, m.configTokens, m.configRotations, m.nextRotation} {
		v.DeletePartialMatch(l)
	}
}
