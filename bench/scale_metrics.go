//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	passSecondsGauge = "apitokens_periodic_pass_seconds"
	passConfigsGauge = "apitokens_periodic_pass_configs"
)

// scrape reads the scale mount's metrics in the Prometheus text format.
func (s *scale) scrape() ([]byte, time.Duration, error) {
	start := time.Now()
	status, body, err := s.get("/v1/" + scaleMount + "/metrics?format=prometheus")
	took := time.Since(start)
	if err != nil {
		return nil, took, err
	}
	if status != 200 {
		return nil, took, fmt.Errorf("status %d: %s", status, bytes.TrimSpace(body[:min(len(body), 200)]))
	}
	return body, took, nil
}

// promSamples counts the sample lines of a Prometheus text exposition.
func promSamples(body []byte) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}

// promValue returns the value of the series of metric name (the largest, if it has several).
func promValue(body []byte, name string) (float64, bool) {
	var v float64
	found := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (!strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "{")) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if x, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && (!found || x > v) {
			v, found = x, true
		}
	}
	return v, found
}

// passObs is what the periodic-pass gauges said at one moment.
type passObs struct {
	at            time.Time
	secs, configs float64
	err           error // the scrape failed, or the gauges are not exposed
}

func (s *scale) observePass() passObs {
	body, _, err := s.scrape()
	o := passObs{at: time.Now(), err: err}
	if err != nil {
		return o
	}
	var ok1, ok2 bool
	o.secs, ok1 = promValue(body, passSecondsGauge)
	o.configs, ok2 = promValue(body, passConfigsGauge)
	if !ok1 || !ok2 {
		o.err = fmt.Errorf("%s / %s not exposed", passSecondsGauge, passConfigsGauge)
	}
	return o
}

// waitPass scrapes every 10 s until a pass has looked at all the configs (and, if prev is
// set, differs from prev: a later pass), or until deadline; it returns the last observation.
func (s *scale) waitPass(deadline time.Time, prev *passObs) passObs {
	for {
		o := s.observePass()
		later := prev == nil || o.secs != prev.secs || o.configs != prev.configs
		if o.err != nil || (o.configs >= float64(s.o.configs) && later) || !time.Now().Before(deadline) {
			return o
		}
		time.Sleep(10 * time.Second)
	}
}

// periodicRow reports the periodic function's pass: the one seen first (it may have loaded
// the configs from storage) and one seen at least 60 s later, if any.
func (s *scale) periodicRow(first passObs, next *passObs) {
	n := s.o.configs
	row := fmt.Sprintf("periodic function's pass over %s configs (none due)", thousands(n))
	target := "≤ 1 s"
	switch {
	case first.err != nil:
		s.rows[rowPeriodic] = [4]string{row, "not measured: " + oneLine(first.err), target, "not measured"}
		return
	case first.configs < float64(n):
		s.rows[rowPeriodic] = [4]string{row, fmt.Sprintf("no pass over all configs within 150 s; the last: %s over %s configs",
			secs(first.secs), thousands(int(first.configs))), target, "MISSED"}
		return
	}
	worst := first.secs
	fig := secs(first.secs)
	switch {
	case next == nil:
	case next.err != nil:
		fig += "; the next pass not seen: " + oneLine(next.err)
	case next.secs == first.secs && next.configs == first.configs:
		fig += fmt.Sprintf("; no later pass seen by %.0f s later", next.at.Sub(first.at).Seconds())
	default:
		worst = max(worst, next.secs)
		fig = fmt.Sprintf("%s, then %s (%.0f s later, over %s configs)", secs(first.secs), secs(next.secs),
			next.at.Sub(first.at).Seconds(), thousands(int(next.configs)))
	}
	s.rows[rowPeriodic] = [4]string{row, fig, target, verdict(worst <= 1)}
}

// metricsRows scrapes the mount's metrics with the default settings, then with per-config
// detail on (and turns it off again).
func (s *scale) metricsRows() {
	n := s.o.configs
	progress("scale: metrics scrapes")
	s.rows[rowMetrics] = s.metricsRow(fmt.Sprintf("metrics scrape of a mount with %s configs: samples, bytes", thousands(n)),
		"≤ 2,000 samples (default settings)", func(samples int) bool { return samples <= 2000 })
	settings := scaleMount + "/settings"
	row := "the same with metrics_per_config=true, each config read once more"
	if _, err := s.v.client.Logical().Write(settings, map[string]any{"metrics_per_config": true}); err != nil {
		s.rows[rowMetricsDetail] = [4]string{row, "not measured: writing " + settings + ": " + oneLine(err), "reported", ""}
		return
	}
	// Turning it on starts the per-config series at zero: each config is read once more so
	// that every config has its series, as it would if the setting had been on all along.
	progress("scale: metrics_per_config on, reading creds of each config once more")
	failed, first := forEach(n, scaleWorkers, func(i int) error {
		_, err := s.v.client.Logical().Read(scaleMount + "/creds/" + s.configName(i))
		return err
	})
	s.rows[rowMetricsDetail] = s.metricsRow(row, "reported", nil)
	s.rows[rowMetricsDetail][1] += failures(failed, first)
	if _, err := s.v.client.Logical().Write(settings, map[string]any{"metrics_per_config": false}); err != nil {
		s.rows[rowMetricsDetail][1] += "; turning it off again failed: " + oneLine(err)
	}
}

func (s *scale) metricsRow(row, target string, ok func(samples int) bool) [4]string {
	body, took, err := s.scrape()
	if err != nil {
		return [4]string{row, "scrape failed: " + oneLine(err), target, "MISSED"}
	}
	samples := promSamples(body)
	v := ""
	if ok != nil {
		v = verdict(ok(samples))
	}
	return [4]string{row, fmt.Sprintf("%s samples, %s, %s", thousands(samples), size(len(body)), ms(took)), target, v}
}

func size(b int) string {
	if b < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// secs writes a gauge's seconds as milliseconds.
func secs(x float64) string { return ms(time.Duration(x * float64(time.Second))) }
