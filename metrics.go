package apitokens

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Rotation triggers and outcomes, as labels and event metadata.
const (
	triggerManual    = "manual"
	triggerScheduled = "scheduled"
	triggerRecovered = "recovered"

	outcomeSuccess   = "success"
	outcomeFailure   = "failure"
	outcomeUnsettled = "unsettled"
	outcomeKeptOld   = "kept_old"
)

// metrics are the mount's own figures, on a registry of its own (never the global one, so
// two mounts never mix them). Labels are the provider, the config name and fixed words:
// never anything secret. Figures are per node and start at zero with the plugin.
type metrics struct {
	registry     *prometheus.Registry
	calls        *prometheus.CounterVec
	callDuration *prometheus.HistogramVec
	tokens       *prometheus.CounterVec
	rotations    *prometheus.CounterVec
	unsettled    *prometheus.GaugeVec
	nextRotation *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apitokens_provider_calls_total",
			Help: "Calls to the providers' APIs, by operation and the HTTP status of the last answer (none: no answer)."},
			[]string{"provider", "config", "operation", "status"}),
		callDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "apitokens_provider_call_duration_seconds",
			Help:    "How long calls to the providers' APIs took, retries included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"provider", "config", "operation"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apitokens_tokens_issued_total",
			Help: "Tokens handed out by creds reads: fresh (minted for the read) or shared (token_reuse)."},
			[]string{"provider", "config", "kind"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apitokens_rotations_total",
			Help: "Root credential rotations by trigger (manual, scheduled, recovered) and outcome."},
			[]string{"provider", "config", "trigger", "outcome"}),
		unsettled: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "apitokens_unsettled_rotations",
			Help: "Interrupted rotations whose WAL entry is not settled yet."},
			[]string{"provider", "config"}),
		nextRotation: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "apitokens_next_rotation_timestamp_seconds",
			Help: "When the next scheduled rotation is due (unix seconds); absent for configs without a schedule."},
			[]string{"provider", "config"}),
	}
	m.registry.MustRegister(m.calls, m.callDuration, m.tokens, m.rotations, m.unsettled, m.nextRotation)
	return m
}

// observeCall is apiclient's Observe hook for config name of provider.
func (m *metrics) observeCall(provider, name string) func(call string, status int, took time.Duration) {
	return func(call string, status int, took time.Duration) {
		op := strings.ReplaceAll(call, " ", "_")
		s := "none"
		if status != 0 {
			s = strconv.Itoa(status)
		}
		m.calls.WithLabelValues(provider, name, op, s).Inc()
		m.callDuration.WithLabelValues(provider, name, op).Observe(took.Seconds())
	}
}

func (m *metrics) tokenIssued(provider, name string, shared bool) {
	kind := "fresh"
	if shared {
		kind = "shared"
	}
	m.tokens.WithLabelValues(provider, name, kind).Inc()
}

func (m *metrics) rotation(provider, name, trigger, outcome string) {
	m.rotations.WithLabelValues(provider, name, trigger, outcome).Inc()
}

// forget removes every series of a deleted config, so that configs that come and go do not
// pile up series.
func (m *metrics) forget(name string) {
	l := prometheus.Labels{"config": name}
	m.calls.DeletePartialMatch(l)
	m.callDuration.DeletePartialMatch(l)
	m.tokens.DeletePartialMatch(l)
	m.rotations.DeletePartialMatch(l)
	m.unsettled.DeletePartialMatch(l)
	m.nextRotation.DeletePartialMatch(l)
}
