//go:build linux

// Command bench measures the plugin in a real Vault dev server (log level warn), beside
// kv-v2 and a floor plugin of its own (bench/floor: a leased constant, no storage, no
// upstream call), against the provider simulator run beside it. It prints one table from one
// run, in interleaved rounds so that machine noise hits all rows alike, and says for each
// row with a target whether it was met; a scale section (many configs, missing names, many
// mounts: scale.go) adds its rows at the end. `make bench` runs it. With -soak=<duration> it
// runs the soak instead (soak.go: reads under scheduled rotations, pass/fail; `make soak`).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	pluginName = "vault-plugin-secrets-apitokens"
	pluginVer  = "v0.0.0-bench"
	floorName  = "floor"
	floorVer   = "v0.0.0-floor"
)

// options are the command line's sizes.
type options struct {
	rounds, perRound, clients int
	tput                      time.Duration
	burstN, burstRounds       int
	scale                     scaleOptions
	// withScale runs the scale section (default); -scale=false skips it.
	withScale bool
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 20, "interleaved latency rounds")
	flag.IntVar(&o.perRound, "per-round", 50, "calls of each row per round")
	flag.IntVar(&o.clients, "clients", 32, "concurrent clients in the throughput rows")
	flag.DurationVar(&o.tput, "throughput", 3*time.Second, "length of one throughput run (5 per row, interleaved)")
	flag.IntVar(&o.burstN, "burst", 1000, "concurrent reads in a burst")
	flag.IntVar(&o.burstRounds, "burst-rounds", 3, "rounds of the three bursts (reuse on, reuse off, floor), in rotating order")
	flag.BoolVar(&o.withScale, "scale", true, "run the scale section (-scale=false: only the rows before it)")
	flag.BoolVar(&o.scale.only, "scale-only", false, "run only the scale section (for development)")
	flag.IntVar(&o.scale.configs, "scale-configs", 10000, "configs in the scale section")
	flag.IntVar(&o.scale.missing, "scale-missing", 100000, "reads of distinct missing names in the scale section")
	flag.DurationVar(&o.scale.idle, "scale-idle", 2*time.Minute, "idle time before the scale section's memory is measured")
	flag.IntVar(&o.scale.mounts, "scale-mounts", 20, "extra mounts of the plugin in the scale section")
	flag.Parse()
	if *soakFor > 0 { // soak.go: a long run under rotations instead of the benchmark
		os.Exit(soak(*soakFor))
	}
	if o.burstRounds < 1 || o.burstN < 1 || o.scale.configs < 1 || o.scale.missing < 1 {
		fmt.Fprintln(os.Stderr, "bench: -burst, -burst-rounds, -scale-configs and -scale-missing must be at least 1")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var started = time.Now()

// progress tells a human on stderr which phase runs, and since when.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %4.0fs: %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

func build(out string, args ...string) error {
	cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

func run(o options) error {
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
	progress("building the simulator, the plugin and the floor plugin")
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
	progress("starting the simulator and Vault")
	sim, err := startSimulator(work)
	if err != nil {
		return err
	}
	defer sim.stop()

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

	r := &report{machine: machine(vaultBin)}
	if !o.scale.only {
		r.rounds, r.perRound, r.burstRounds = o.rounds, o.perRound, o.burstRounds
		if err := coreRows(r, o, v, sim, pluginBin, floorBin); err != nil {
			return err
		}
	}
	if !o.withScale {
		r.print(os.Stdout)
		return nil
	}
	if err := scaleRows(r, o.scale, v, sim, pluginBin); err != nil {
		// The rows measured so far still stand; the table says where the section stopped.
		r.add("scale section", "stopped: "+strings.ReplaceAll(err.Error(), "\n", " "), "", "MISSED")
	}
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
	machine                       string
	rounds, perRound, burstRounds int
	rows                          [][4]string
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
	fmt.Fprintf(w, "\nMachine: %s\n", r.machine)
	if r.rounds > 0 {
		fmt.Fprintf(w, "Latency: %d interleaved rounds of %d calls per row, one client. Bursts: %d rounds in rotating order.\n",
			r.rounds, r.perRound, r.burstRounds)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| row | figure | target | |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, row := range r.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", row[0], row[1], row[2], row[3])
	}
}
