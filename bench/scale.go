//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"
)

// scaleOptions size the scale section.
type scaleOptions struct {
	only                     bool
	configs, missing, mounts int
	idle                     time.Duration
}

const (
	scaleMount   = "scale"
	scaleWorkers = 32
	// endpointBound is the plugin's global bound on connections to one provider endpoint.
	endpointBound = 64
)

// The scale section's rows, in the order they are printed.
const (
	rowRSS = iota
	rowSockets
	rowMissing
	rowPeriodic
	rowList
	rowMetrics
	rowMetricsDetail
	rowMounts
	scaleRowCount
)

// scale is the scale section: many OpsNow configs on a mount of their own (scale/), on the
// same Vault and so in the same (multiplexed) plugin process as the other rows' mount.
type scale struct {
	o         scaleOptions
	v         *server
	pluginBin string
	base, key string // OpsNow base URL and API key, from the simulator
	port      int    // the simulator's port
	web       *http.Client
	rows      [scaleRowCount][4]string
}

// scaleRows runs the scale section and adds its rows to r, also those measured before a
// phase that failed.
func scaleRows(r *report, o scaleOptions, v *server, sim *simProcess, pluginBin string) error {
	s := &scale{o: o, v: v, pluginBin: pluginBin, base: sim.env["OPSNOW_BASE_URL"], key: sim.env["OPSNOW_API_KEY"]}
	u, err := url.Parse(s.base)
	if err != nil {
		return fmt.Errorf("simulator's OpsNow URL %q: %w", s.base, err)
	}
	if s.port, err = strconv.Atoi(u.Port()); err != nil {
		return fmt.Errorf("simulator's OpsNow URL %q has no port", s.base)
	}
	s.web = cleanhttp.DefaultPooledClient()
	s.web.Transport.(*http.Transport).MaxIdleConnsPerHost = 2 * scaleWorkers
	s.web.Timeout = 5 * time.Minute
	defer func() {
		for _, row := range s.rows {
			if row[0] != "" {
				r.add(row[0], row[1], row[2], row[3])
			}
		}
	}()
	return s.run()
}

func (s *scale) configName(i int) string { return fmt.Sprintf("c%05d", i) }

func (s *scale) run() error {
	n, logical := s.o.configs, s.v.client.Logical()
	progress("scale: mounting %s/", scaleMount)
	if err := s.v.mount(scaleMount, pluginName, pluginVer); err != nil {
		return err
	}
	if _, err := logical.List(scaleMount + "/config"); err != nil { // the mount answers
		return err
	}
	// The baseline is the plugin at rest before any config. After the other rows' bursts the
	// process still holds memory it has freed but not returned to the OS (an idle Go process
	// collects only 2 minutes after its last collection), which the configs could then reuse
	// unseen: it then settles for the idle after the reads and 20 s more.
	settle := 10 * time.Second
	if !s.o.only {
		settle = max(settle, s.o.idle+20*time.Second)
	}
	progress("scale: settling %s, then the plugin's RSS before any config", settle)
	time.Sleep(10 * time.Second)
	pids := pluginPIDs(s.pluginBin)
	if len(pids) == 0 {
		return fmt.Errorf("no process runs %s", s.pluginBin)
	}
	baseline := vmRSS(pids)
	if settle > 10*time.Second {
		time.Sleep(settle - 10*time.Second)
		early := baseline
		baseline = vmRSS(pids)
		progress("scale: plugin RSS %.1f MiB after 10 s, %.1f MiB after %s", mib(early), mib(baseline), settle)
	}

	progress("scale: writing %s OpsNow configs (%d writers)", thousands(n), scaleWorkers)
	failed, first := forEach(n, scaleWorkers, func(i int) error {
		_, err := logical.Write(scaleMount+"/config/"+s.configName(i), map[string]any{
			"provider": "opsnow", "base_url": s.base, "api_key": s.key, "token_reuse": true})
		return err
	})
	if failed > 0 {
		return fmt.Errorf("%d of %d config writes failed, the first: %s", failed, n, oneLine(first))
	}

	progress("scale: reading creds of each config once (%d readers), counting sockets to the provider every 20 ms", scaleWorkers)
	socketsBefore := socketsTo(pids, s.port)
	sampler := sampleSockets(pids, s.port)
	readStart := time.Now()
	readFailed, readFirst := forEach(n, scaleWorkers, func(i int) error {
		_, err := logical.Read(scaleMount + "/creds/" + s.configName(i))
		return err
	})
	readTook := time.Since(readStart)
	peak := sampler.stop()

	progress("scale: idle %s (Go returns freed memory to the OS in the background)", s.o.idle)
	time.Sleep(s.o.idle)
	pids = pluginPIDs(s.pluginBin)
	after, socketsIdle := vmRSS(pids), socketsTo(pids, s.port)
	perConfig := float64(after-baseline) / float64(n)
	s.rows[rowRSS] = [4]string{
		fmt.Sprintf("%s configs, each read once, then %s idle: plugin RSS growth per config", thousands(n), span(s.o.idle)),
		fmt.Sprintf("%.2f KiB (%.1f → %.1f MiB; reads took %s%s)", perConfig/1024, mib(baseline), mib(after),
			wholeMs(readTook), failures(readFailed, readFirst)),
		"≤ 4 KiB", verdict(perConfig <= 4<<10 && readFailed == 0)}
	s.rows[rowSockets] = [4]string{
		"the same, during the reads: plugin's open sockets to the provider, peak",
		fmt.Sprintf("%d (%d before the reads, %d after the idle)", peak, socketsBefore, socketsIdle),
		fmt.Sprintf("≤ %d (the global bound per provider endpoint)", endpointBound), verdict(peak <= endpointBound)}

	progress("scale: waiting for a periodic pass over %s configs (up to 150 s)", thousands(n))
	pass := s.waitPass(time.Now().Add(150*time.Second), nil)
	// The plugin is at rest now: the missing names' reads start from its resting RSS.
	s.missingRow()
	s.listRow()
	s.metricsRows()
	if err := s.mountsRow(); err != nil {
		return err
	}
	if pass.err == nil && pass.configs >= float64(n) {
		if wait := time.Until(pass.at.Add(60 * time.Second)); wait > 0 {
			progress("scale: waiting %s for the next periodic pass", wait.Round(time.Second))
			time.Sleep(wait)
		}
		next := s.waitPass(pass.at.Add(150*time.Second), &pass)
		s.periodicRow(pass, &next)
	} else {
		s.periodicRow(pass, nil)
	}
	return nil
}

// listRow times a LIST of the mount's configs.
func (s *scale) listRow() {
	progress("scale: LIST %s/config", scaleMount)
	start := time.Now()
	sec, err := s.v.client.Logical().List(scaleMount + "/config")
	took := time.Since(start)
	row := fmt.Sprintf("LIST of %s configs", thousands(s.o.configs))
	if err != nil {
		s.rows[rowList] = [4]string{row, "failed: " + oneLine(err), "reported (ms)", "MISSED"}
		return
	}
	got := 0
	if sec != nil {
		if keys, ok := sec.Data["keys"].([]any); ok {
			got = len(keys)
		}
	}
	v := ""
	if got != s.o.configs {
		v = "MISSED"
	}
	s.rows[rowList] = [4]string{row, fmt.Sprintf("%s (%s names)", ms(took), thousands(got)), "reported (ms)", v}
}

// mountsRow mounts the plugin s.o.mounts more times, writes and reads one config on each,
// and counts the processes running the plugin and their resident memory.
func (s *scale) mountsRow() error {
	if s.o.mounts < 1 {
		return nil
	}
	progress("scale: %d more mounts, one config and one read each", s.o.mounts)
	logical := s.v.client.Logical()
	for i := 1; i <= s.o.mounts; i++ {
		m := fmt.Sprintf("m%02d", i)
		if err := s.v.mount(m, pluginName, pluginVer); err != nil {
			return err
		}
		if _, err := logical.Write(m+"/config/c", map[string]any{
			"provider": "opsnow", "base_url": s.base, "api_key": s.key, "token_reuse": true}); err != nil {
			return err
		}
		if _, err := logical.Read(m + "/creds/c"); err != nil {
			return err
		}
	}
	total := 0
	if mounts, err := s.v.client.Sys().ListMounts(); err == nil {
		for _, m := range mounts {
			if m.Type == pluginName {
				total++
			}
		}
	}
	pids := pluginPIDs(s.pluginBin)
	s.rows[rowMounts] = [4]string{
		fmt.Sprintf("%d more mounts (%d of the plugin in all): plugin processes, total RSS", s.o.mounts, total),
		fmt.Sprintf("%s, %.1f MiB", plural(len(pids), "process", "processes"), mib(vmRSS(pids))),
		"1 process; RSS reported", verdict(len(pids) == 1)}
	return nil
}

// missingRow reads distinct names that do not exist and measures what the plugin keeps. It
// runs when the plugin is at rest (after the idle), so that the reads start from its
// resting RSS, not from garbage other phases left that the reads would then reuse unseen.
func (s *scale) missingRow() {
	m := s.o.missing
	progress("scale: %s reads of distinct missing names (%d readers)", thousands(m), scaleWorkers)
	before := vmRSS(pluginPIDs(s.pluginBin))
	start := time.Now()
	failed, first := forEach(m, scaleWorkers, func(i int) error {
		status, _, err := s.get(fmt.Sprintf("/v1/%s/creds/missing-%d", scaleMount, i))
		if err != nil {
			return err
		}
		if status < 400 || status > 499 {
			return fmt.Errorf("status %d", status)
		}
		return nil
	})
	rate := float64(m) / time.Since(start).Seconds()
	progress("scale: settling 30 s")
	time.Sleep(30 * time.Second)
	after := vmRSS(pluginPIDs(s.pluginBin))
	s.rows[rowMissing] = [4]string{
		fmt.Sprintf("%s reads of distinct names that do not exist: plugin RSS growth", thousands(m)),
		fmt.Sprintf("%+.1f MiB (%.1f → %.1f MiB, 30 s after; %.0f reads/s%s)", mib(after-before), mib(before), mib(after),
			rate, failures(failed, first)),
		"≤ 4 MiB, all answers 4xx", verdict(after-before <= 4<<20 && failed == 0)}
}

// get sends a GET to Vault with the root token and returns the status and body.
func (s *scale) get(path string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, s.v.addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Vault-Token", "root")
	resp, err := s.web.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// forEach calls f(0) … f(n-1) from workers goroutines and returns how many calls failed
// and the first failure.
func forEach(n, workers int, f func(int) error) (int64, error) {
	var next, failed atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					failed.Add(1)
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load(), first
}

// failures says "; N errors, the first: …" when there were any.
func failures(n int64, first error) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %s errors, the first: %s", thousands(int(n)), oneLine(first))
}

// oneLine fits an error (Vault's span several lines) in a table cell.
func oneLine(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if re := (*api.ResponseError)(nil); errors.As(err, &re) {
		msg = fmt.Sprintf("%d %s", re.StatusCode, strings.Join(re.Errors, "; "))
	}
	msg = strings.ReplaceAll(strings.Join(strings.Fields(msg), " "), "|", "/")
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	return msg
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}

// span writes whole minutes as "2 min", other durations as Go does.
func span(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.String()
}
