//go:build linux

package main

// The soak (`make soak`, or `go run ./bench -soak=10m`): the plugin in a real Vault dev server
// for a long run, with one OffBlocks and one Bloq config (client key and account login), both
// token_reuse=true and rotating on a schedule (rotation_period, default 1m), read without
// pause by concurrent readers through the Go vault/api client, half of them on each config.
// Every answer is counted; a sample of the leases handed out is checked at the simulator
// before the lease ends (soak_checks.go): a token the provider refuses while its lease still
// runs is "dead inside its lease". It prints one table and exits non-zero if any read
// answered other than 200 with a token, any token died inside its lease, or a config never
// rotated, so that it serves as a pass/fail.

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

var (
	soakFor      = flag.Duration("soak", 0, "run the soak for this long instead of the benchmark (make soak: 10m)")
	soakReaders  = flag.Int("soak-readers", 6, "soak: concurrent readers, alternately on the OffBlocks and the Bloq config")
	soakSample   = flag.Int("soak-sample", 10, "soak: check 1 in N leases at the provider, besides every lease of a token new to its reader")
	soakRotation = flag.Duration("soak-rotation", time.Minute, "soak: rotation_period of both configs (at least 1m)")
)

const soakMount = "apitokens"

// soakConfigs are the soak's configs, in the readers' order (reader i reads soakConfigs[i%2]).
var soakConfigs = []string{"offblocks", "bloq"}

// soak runs the soak for d and returns the process's exit status: 0 when it passed, 1 when it
// failed or could not run (the reasons on stderr and at the end of the table).
func soak(d time.Duration) int {
	if *soakReaders < 1 || *soakSample < 1 || *soakRotation < time.Minute {
		fmt.Fprintln(os.Stderr, "soak: -soak-readers and -soak-sample must be at least 1, -soak-rotation at least 1m")
		return 2
	}
	s, err := startSoak()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	failed := true
	defer func() { s.stop(failed) }()
	st, err := s.run(d)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	reasons := st.print(os.Stdout)
	if failed = len(reasons) > 0; failed {
		return 1
	}
	return 0
}

// soakEnv is what the soak runs against: Vault with the plugin mounted and configured, and
// the simulator.
type soakEnv struct {
	work, pluginBin string
	sim             *simProcess
	v               *server
}

// startSoak builds the simulator and the plugin, starts them and Vault, mounts the plugin at
// soakMount and writes the configs, with metrics_per_config on (the rotation counts).
func startSoak() (_ *soakEnv, err error) {
	vaultBin := os.Getenv("VAULT_BIN")
	if vaultBin == "" {
		return nil, fmt.Errorf("VAULT_BIN is not set: run `make soak` (scripts/vault.sh finds or builds Vault)")
	}
	work, err := os.MkdirTemp("", "apitokens-soak-")
	if err != nil {
		return nil, err
	}
	s := &soakEnv{work: work, pluginBin: filepath.Join(work, "plugins", pluginName)}
	defer func() {
		if err != nil {
			s.stop(false)
		}
	}()
	progress("soak: building the simulator and the plugin")
	if err := build(filepath.Join(work, "apitokens-simulator"), "./cmd/apitokens-simulator"); err != nil {
		return nil, fmt.Errorf("build simulator: %w", err)
	}
	if err := build(s.pluginBin, "-ldflags", "-X github.com/apitokens/vault-plugin-secrets-apitokens.Version="+pluginVer,
		"./cmd/"+pluginName); err != nil {
		return nil, fmt.Errorf("build plugin: %w", err)
	}
	progress("soak: starting the simulator and Vault")
	if s.sim, err = startSimulator(work); err != nil {
		return nil, err
	}
	if s.v, err = startVault(vaultBin, work, filepath.Dir(s.pluginBin)); err != nil {
		return nil, err
	}
	if err := s.v.register(filepath.Dir(s.pluginBin), pluginName, pluginName, pluginVer); err != nil {
		return nil, err
	}
	if err := s.v.mount(soakMount, pluginName, pluginVer); err != nil {
		return nil, err
	}
	logical, e := s.v.client.Logical(), s.sim.env
	if _, err := logical.Write(soakMount+"/settings", map[string]any{"metrics_per_config": true}); err != nil {
		return nil, err
	}
	period := int64(*soakRotation / time.Second)
	configs := map[string]map[string]any{
		"offblocks": {"provider": "offblocks", "base_url": e["OFFBLOCKS_BASE_URL"],
			"api_key": e["OFFBLOCKS_API_KEY"], "api_secret": e["OFFBLOCKS_API_SECRET"]},
		"bloq": {"provider": "bloq", "base_url": e["BLOQ_BASE_URL"], "client_id": e["BLOQ_CLIENT_ID"],
			"client_secret": e["BLOQ_CLIENT_SECRET"], "username": e["BLOQ_USERNAME"], "password": e["BLOQ_PASSWORD"]},
	}
	for _, name := range soakConfigs {
		c := configs[name]
		c["token_reuse"], c["rotation_period"] = true, period
		if _, err := logical.Write(soakMount+"/config/"+name, c); err != nil {
			return nil, fmt.Errorf("write config %s: %w", name, err)
		}
	}
	return s, nil
}

// stop stops Vault and the simulator and removes the work directory, unless the soak failed:
// then it is kept for Vault's log, and its path printed.
func (s *soakEnv) stop(failed bool) {
	if s.v != nil {
		s.v.stop()
	}
	if s.sim != nil {
		s.sim.stop()
	}
	if failed {
		fmt.Fprintf(os.Stderr, "soak: kept %s (Vault's log: vault.log)\n", s.work)
		return
	}
	_ = os.RemoveAll(s.work)
}

// run reads for d with the readers, checking sampled leases as they go, then waits for the
// checks still due (each before its lease's end) and gathers the figures.
func (s *soakEnv) run(d time.Duration) (*soakStats, error) {
	st := newSoakStats(d, *soakReaders)
	st.checker = newChecker(s.sim.env["SIM_URL"], st)
	obs := newObserver(s.v.client, s.pluginBin)
	st.obs = obs
	// One read of each config first: the plugin process runs, and its RSS is measured after.
	for _, name := range soakConfigs {
		if _, err := s.v.client.Logical().Read(soakMount + "/creds/" + name); err != nil {
			return nil, fmt.Errorf("first read of %s: %w", name, err)
		}
	}
	if err := obs.start(); err != nil {
		return nil, err
	}
	progress("soak: %d readers for %s, rotation_period %s, plugin RSS %.1f MiB", *soakReaders, d, *soakRotation, mib(obs.rssStart))
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := 0; i < *soakReaders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.reader(st, soakConfigs[i%len(soakConfigs)], deadline, rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano()))))
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for tick := time.NewTicker(time.Minute); ; {
		select {
		case <-tick.C:
			progress("soak: %s", st.progressLine(obs))
			continue
		case <-done:
			tick.Stop()
		}
		break
	}
	st.took = time.Since(start)
	obs.stop()
	progress("soak: reads done; waiting for %d checks still due (each before its lease ends)", st.checker.pending())
	st.checker.wait()
	st.metrics = obs.rotationMetrics()
	return st, nil
}

// reader reads config name until deadline, recording every answer, and hands the checker
// every lease of a token it had not seen last on this config, and 1 in -soak-sample others.
func (s *soakEnv) reader(st *soakStats, name string, deadline time.Time, rng *rand.Rand) {
	logical := s.v.client.Logical()
	last := ""
	for time.Now().Before(deadline) {
		sent := time.Now()
		sec, err := logical.Read(soakMount + "/creds/" + name)
		got := time.Now()
		if err != nil {
			status := 0 // no answer
			if re := (*api.ResponseError)(nil); errors.As(err, &re) {
				status = re.StatusCode
			}
			st.answer(name, status, oneLine(err), sent, got, 0)
			continue
		}
		token, _ := secretToken(sec)
		if token == "" || sec.LeaseDuration <= 0 {
			// vault/api answers a 404 (and an empty body) with no secret and no error.
			detail, status := "no secret: a 404 (or an empty answer)", 404
			if sec != nil {
				keys := slices.Sorted(maps.Keys(sec.Data))
				detail, status = fmt.Sprintf("a secret without a token or a lease: lease %d s, data keys %v, warnings %q",
					sec.LeaseDuration, keys, sec.Warnings), 200
			}
			st.answer(name, status, fmt.Sprintf("%s (the read took %s)", detail, got.Sub(sent).Round(time.Millisecond)), sent, got, 0)
			continue
		}
		st.answer(name, 200, "", sent, got, sec.LeaseDuration)
		fresh := token != last
		last = token
		if fresh || rng.IntN(*soakSample) == 0 {
			s.sampleLease(st, lease{config: name, token: token, fresh: fresh}, sec, sent, got, rng)
		}
	}
}

// sampleLease looks up the lease of a sampled read (sys/leases/lookup: its issue and expire
// times, exact where the read's own bounds are not when a read waits seconds) and schedules
// its checks; a lease already gone is counted instead.
func (s *soakEnv) sampleLease(st *soakStats, l lease, sec *api.Secret, sent, got time.Time, rng *rand.Rand) {
	look, err := s.v.client.Sys().Lookup(sec.LeaseID)
	var issued, expires time.Time
	if err == nil && look != nil {
		issued, _ = time.Parse(time.RFC3339Nano, fmt.Sprint(look.Data["issue_time"]))
		expires, _ = time.Parse(time.RFC3339Nano, fmt.Sprint(look.Data["expire_time"]))
	}
	if issued.IsZero() || expires.IsZero() {
		why := "no lease times"
		if err != nil {
			why = oneLine(err)
		}
		st.leaseGone(fmt.Sprintf("%s %s: lease_duration %ds, read took %s, lookup %s after the answer: %s", stamp(sent), l.config,
			sec.LeaseDuration, got.Sub(sent).Round(time.Millisecond), time.Since(got).Round(time.Millisecond), why))
		return
	}
	l.start, l.end = issued, expires
	st.checker.schedule(l, rng)
}

// secretToken is the token of a creds read's answer.
func secretToken(sec *api.Secret) (string, bool) {
	if sec == nil || sec.Data == nil {
		return "", false
	}
	t, ok := sec.Data["token"].(string)
	return t, ok
}
