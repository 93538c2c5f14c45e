//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// observer watches the plugin during the soak: each config's rotations, from config reads'
// last_vault_rotation once a second, and the plugin process's resident memory (VmRSS), at the
// start, every 10 s (the peak) and at the end.
type observer struct {
	c         *api.Client
	pluginBin string
	pids      []int

	rssStart, rssPeak, rssEnd int64

	mu         sync.Mutex
	last       map[string]string      // config → last_vault_rotation
	rotations  map[string][]time.Time // config → rotations observed, by last_vault_rotation
	failures   map[string]int         // config → the most rotation_failures seen
	pollErrors int
	firstErr   string

	stopc chan struct{}
	wg    sync.WaitGroup
}

func newObserver(c *api.Client, pluginBin string) *observer {
	return &observer{c: c, pluginBin: pluginBin, last: map[string]string{}, rotations: map[string][]time.Time{},
		failures: map[string]int{}, stopc: make(chan struct{})}
}

// start measures the plugin's RSS, reads each config's last rotation (rotations after it are
// counted) and starts watching.
func (o *observer) start() error {
	if o.pids = pluginPIDs(o.pluginBin); len(o.pids) == 0 {
		return fmt.Errorf("no process runs %s", o.pluginBin)
	}
	o.rssStart = vmRSS(o.pids)
	o.rssPeak = o.rssStart
	for _, name := range soakConfigs {
		last, _, err := o.readConfig(name)
		if err != nil {
			return fmt.Errorf("read config %s: %w", name, err)
		}
		o.last[name] = last
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-o.stopc:
				return
			case <-tick.C:
			}
			o.poll()
			if n%10 == 0 {
				rss := vmRSS(o.pids)
				o.mu.Lock()
				o.rssPeak = max(o.rssPeak, rss)
				o.mu.Unlock()
			}
		}
	}()
	return nil
}

// stop ends the watching and measures the plugin's RSS a last time.
func (o *observer) stop() {
	close(o.stopc)
	o.wg.Wait()
	o.poll()
	o.rssEnd = vmRSS(o.pids)
	o.rssPeak = max(o.peakRSS(), o.rssEnd)
}

// peakRSS is the largest RSS of the plugin measured so far.
func (o *observer) peakRSS() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rssPeak
}

func (o *observer) readConfig(name string) (last string, failures int, err error) {
	sec, err := o.c.Logical().Read(soakMount + "/config/" + name)
	if err != nil {
		return "", 0, err
	}
	if sec == nil {
		return "", 0, fmt.Errorf("config %s is gone", name)
	}
	last, _ = sec.Data["last_vault_rotation"].(string)
	if n, ok := sec.Data["rotation_failures"].(json.Number); ok {
		f, _ := n.Int64()
		failures = int(f)
	}
	return last, failures, nil
}

// poll reads each config and records a rotation when its last_vault_rotation changed.
func (o *observer) poll() {
	for _, name := range soakConfigs {
		last, failures, err := o.readConfig(name)
		o.mu.Lock()
		switch {
		case err != nil:
			o.pollErrors++
			if o.firstErr == "" {
				o.firstErr = oneLine(err)
			}
		case last != o.last[name]:
			o.last[name] = last
			at, _ := time.Parse(time.RFC3339, last)
			o.rotations[name] = append(o.rotations[name], at)
		}
		o.failures[name] = max(o.failures[name], failures)
		o.mu.Unlock()
	}
}

// rotationsOf is how many rotations of config name were observed, and when the last was.
func (o *observer) rotationsOf(name string) (int, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.rotations[name]
	if len(r) == 0 {
		return 0, time.Time{}
	}
	return len(r), r[len(r)-1]
}

// rotationMetrics reads the mount's apitokens_config_rotations_total (metrics_per_config):
// for each config, "trigger outcome=count" pairs in order; on failure, the error in place
// of each config's pairs.
func (o *observer) rotationMetrics() map[string]string {
	out := map[string]string{}
	sec, err := o.c.Logical().Read(soakMount + "/metrics")
	if err != nil || sec == nil {
		for _, name := range soakConfigs {
			out[name] = "metrics read failed: " + oneLine(err)
		}
		return out
	}
	pairs := map[string][]string{}
	for key, v := range sec.Data {
		labels, ok := strings.CutPrefix(key, "apitokens_config_rotations_total{")
		if !ok {
			continue
		}
		l := promLabels(strings.TrimSuffix(labels, "}"))
		pairs[l["config"]] = append(pairs[l["config"]], fmt.Sprintf("%s %s=%v", l["trigger"], l["outcome"], v))
	}
	for _, name := range soakConfigs {
		sort.Strings(pairs[name])
		out[name] = strings.Join(pairs[name], ", ")
		if out[name] == "" {
			out[name] = "none"
		}
	}
	return out
}

// promLabels parses a=\"x\",b=\"y\" (the flat format's label set; the soak's values hold no
// comma or quote).
func promLabels(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}
