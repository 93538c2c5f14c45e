//go:build linux

// Command bench measures the plugin in a real Vault dev server (log level warn), beside
// kv-v2 and a floor plugin of its own (bench/floor: a leased constant, no storage, no
// upstream call), against the provider simulator served from this process. It prints one
// table from one run, in interleaved rounds so that machine noise hits all rows alike, and
// says for each row with a target whether it was met. `make bench` runs it.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
)

const (
	pluginName = "vault-plugin-secrets-apitokens"
	pluginVer  = "v0.0.0-bench"
	floorName  = "floor"
	floorVer   = "v0.0.0-floor"
)

func main() {
	rounds := flag.Int("rounds", 20, "interleaved latency rounds")
	perRound := flag.Int("per-round", 50, "calls of each row per round")
	clients := flag.Int("clients", 32, "concurrent clients in the throughput rows")
	tput := flag.Duration("throughput", 3*time.Second, "length of one throughput run (5 per row, interleaved)")
	burstN := flag.Int("burst", 1000, "concurrent reads in a burst")
	flag.Parse()
	if err := run(*rounds, *perRound, *clients, *tput, *burstN); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func build(out string, args ...string) error {
	cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

func run(rounds, perRound, clients int, tput time.Duration, burstN int) error {
	vaultBin := os.Getenv("VAULT_BIN")
	if vaultBin == "" {
		return fmt.Errorf("VAULT_BIN is not set: run `make bench` (scripts/vault.sh finds or builds Vault)")
	}
	work, err := os.MkdirTemp("", "apitokens-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	plugins := filepath.Join(work, "plugins")
	pluginBin, floorBin := filepath.Join(plugins, pluginName), filepath.Join(plugins, floorName)
	if err := build(filepath.Join(work, "apitokens-simulator"), "./cmd/apitokens-simulator"); err != nil {
		return fmt.Errorf("build simulator: %w", err)
	}
	if err := build(pluginBin, "-ldflags", "-X github.com/apitokens/vault-plugin-secrets-apitokens.Version="+pluginVer,
		"./cmd/"+pluginName); err != nil {
		return fmt.Errorf("build plugin: %w", err)
	}
	if err := build(floorBin, "./bench/floor"); err != nil {
		return fmt.Errorf("build floor plugin: %w", err)
	}

	// The simulator runs in a process of its own, as a provider would: the plugin's calls
	// and the round-trip reference row both cross a process boundary.
	sim, err := startSimulator(work)
	if err != nil {
		return err
	}
	defer sim.stop()
	key, secret, base := sim.env["OFFBLOCKS_API_KEY"], sim.env["OFFBLOCKS_API_SECRET"], sim.env["OFFBLOCKS_BASE_URL"]

	v, err := startVault(vaultBin, work, plugins)
	if err != nil {
		return err
	}
	defer v.stop()
	if err := v.register(plugins, pluginName, pluginName, pluginVer); err != nil {
		return err
	}
	if err := v.register(plugins, floorName, floorName, floorVer); err != nil {
		return err
	}
	logical := v.client.Logical()
	config := func(name string, reuse bool) error {
		_, err := logical.Write("apitokens/config/"+name, map[string]any{"provider": "offblocks", "base_url": base,
			"api_key": key, "api_secret": secret, "token_reuse": reuse})
		return err
	}

	// The first mount starts the plugin process: enable → config → first token.
	start := time.Now()
	if err := v.mount("apitokens", pluginName, pluginVer); err != nil {
		return err
	}
	if err := config("fresh", false); err != nil {
		return err
	}
	if _, err := logical.Read("apitokens/creds/fresh"); err != nil {
		return err
	}
	firstToken := time.Since(start)
	if err := v.mount("floor", floorName, floorVer); err != nil {
		return err
	}
	for _, c := range []struct {
		name  string
		reuse bool
	}{{"shared", true}, {"burst-on", true}, {"burst-off", false}} {
		if err := config(c.name, c.reuse); err != nil {
			return err
		}
	}
	if _, err := logical.Write("secret/data/bench", map[string]any{"data": map[string]any{"k": "v"}}); err != nil {
		return err
	}

	read := func(path string) func() error {
		return func() error { _, err := logical.Read(path); return err }
	}
	hc := cleanhttp.DefaultPooledClient()
	body := []byte(fmt.Sprintf(`{"apiKey":%q,"apiSecret":%q}`, key, secret))
	provider := func() error {
		resp, err := hc.Post(base+"/auth/token", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	kv := &series{name: "kv-v2 read", op: read("secret/data/bench")}
	floor := &series{name: "floor plugin leased read", op: read("floor/read")}
	rt := &series{name: "provider round trip (kept-alive token call)", op: provider}
	fresh := &series{name: "creds read, fresh", op: read("apitokens/creds/fresh")}
	shared := &series{name: "creds read, shared token", op: read("apitokens/creds/shared")}
	interleave([]*series{kv, floor, rt, fresh, shared}, rounds, perRound)

	var floorOps, shapedOps, sharedOps []float64
	var tputErrs int64
	shapedOp := read("floor/shaped")
	for i := 0; i < 5; i++ {
		f, e1 := throughput(floor.op, clients, tput)
		sh, e2 := throughput(shapedOp, clients, tput)
		s, e3 := throughput(shared.op, clients, tput)
		floorOps, shapedOps, sharedOps = append(floorOps, f), append(shapedOps, sh), append(sharedOps, s)
		tputErrs += e1 + e2 + e3
	}

	// An unrecorded burst first: the first one Vault and this client ever see pays for
	// starting up (goroutines, a thousand connections) whatever it reads.
	burst(kv.op, burstN)
	callsBefore, err := sim.tokenCalls()
	if err != nil {
		return err
	}
	onWall, onErrs := burst(read("apitokens/creds/burst-on"), burstN)
	callsAfter, err := sim.tokenCalls()
	if err != nil {
		return err
	}
	onCalls := callsAfter - callsBefore
	offWall, offErrs := burst(read("apitokens/creds/burst-off"), burstN)
	callsLast, err := sim.tokenCalls()
	if err != nil {
		return err
	}
	offCalls := callsLast - callsAfter
	floorWall, floorErrs := burst(floor.op, burstN)

	r := report{machine: machine(vaultBin), rounds: rounds, perRound: perRound}
	r.latency(kv, "reference", "")
	r.latency(floor, "reference: the physical limit for an external plugin", "")
	r.add(rt.name+" p50", ms(quantile(rt.samples, .5)), "reference", "")
	limit := quantile(floor.samples, .5) + quantile(rt.samples, .5) + 300*time.Microsecond
	r.latency(fresh, "p50 ≤ floor + provider round trip + 0.3 ms = "+ms(limit), verdict(quantile(fresh.samples, .5) <= limit))
	sharedLimit := time.Duration(1.1 * float64(quantile(floor.samples, .5)))
	r.latency(shared, "p50 ≤ 1.1 × floor = "+ms(sharedLimit), verdict(quantile(shared.samples, .5) <= sharedLimit))
	fOps, shOps, sOps := median(floorOps), median(shapedOps), median(sharedOps)
	r.add(fmt.Sprintf("throughput, %d clients: floor / shared creds", clients),
		fmt.Sprintf("%.0f / %.0f reads/s (%.2f×; %d errors)", fOps, sOps, sOps/fOps, tputErrs),
		"shared ≥ 0.9 × floor", verdict(sOps >= 0.9*fOps && tputErrs == 0))
	r.add(fmt.Sprintf("throughput, %d clients: floor returning a creds-shaped response", clients),
		fmt.Sprintf("%.0f reads/s (shared creds: %.2f× of it)", shOps, sOps/shOps),
		"reference: what the response itself costs Vault", "")
	r.add(fmt.Sprintf("burst of %d reads, new config, reuse on", burstN),
		fmt.Sprintf("%d provider call(s), %d errors, %s", onCalls, onErrs, ms(onWall)),
		"exactly 1 provider call, 0 errors", verdict(onCalls == 1 && onErrs == 0))
	r.add(fmt.Sprintf("burst of %d reads, new config, reuse off", burstN),
		fmt.Sprintf("%d provider calls, %d errors, %s", offCalls, offErrs, ms(offWall)), "none: shows why reuse exists", "")
	r.add(fmt.Sprintf("burst of %d reads, floor plugin", burstN),
		fmt.Sprintf("%d errors, %s", floorErrs, ms(floorWall)), "reference: the same load on the floor", "")
	pRSS, fRSS := peakRSS(pluginBin), peakRSS(floorBin)
	r.add("peak RSS (VmHWM) after the bursts: plugin / floor plugin",
		fmt.Sprintf("%.1f / %.1f MiB", mib(pRSS), mib(fRSS)), "plugin ≤ floor + 8 MiB", verdict(pRSS > 0 && fRSS > 0 && pRSS <= fRSS+8<<20))
	r.add("secrets enable → config → first token", ms(firstToken), "reported", "")
	r.print(os.Stdout)
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func formatFloat(f float64, prec int) string { return strconv.FormatFloat(f, 'f', prec, 64) }

// machine describes where the figures come from.
func machine(vaultBin string) string {
	out, _ := exec.Command(vaultBin, "version").Output()
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name\t: "); ok {
				cpu = name
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs (%s), %s, %s", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), cpu,
		strings.TrimSpace(string(out)), runtime.Version())
}

type report struct {
	machine          string
	rounds, perRound int
	rows             [][4]string
}

func (r *report) add(row, figure, target, verdict string) {
	r.rows = append(r.rows, [4]string{row, figure, target, verdict})
}

func (r *report) latency(s *series, target, verdict string) {
	fig := fmt.Sprintf("%s / %s", ms(quantile(s.samples, .5)), ms(quantile(s.samples, .99)))
	if s.errors > 0 {
		fig += fmt.Sprintf(" (%d errors)", s.errors)
		verdict = "MISSED"
	}
	r.add(s.name+" p50 / p99", fig, target, verdict)
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nMachine: %s\nLatency: %d interleaved rounds of %d calls per row, one client.\n\n", r.machine, r.rounds, r.perRound)
	fmt.Fprintln(w, "| row | figure | target | |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, row := range r.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", row[0], row[1], row[2], row[3])
	}
}
