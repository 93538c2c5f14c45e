//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/go-cleanhttp"
)

// coreRows measures the latency, throughput, burst, memory and first-token rows.
func coreRows(r *report, o options, v *server, sim *simProcess, pluginBin, floorBin string) error {
	key, secret, base := sim.env["OFFBLOCKS_API_KEY"], sim.env["OFFBLOCKS_API_SECRET"], sim.env["OFFBLOCKS_BASE_URL"]
	logical := v.client.Logical()
	config := func(name string, reuse bool) error {
		_, err := logical.Write("apitokens/config/"+name, map[string]any{"provider": "offblocks", "base_url": base,
			"api_key": key, "api_secret": secret, "token_reuse": reuse})
		return err
	}

	// The first mount starts the plugin process: enable → config → first token.
	progress("first mount, config and token")
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
	if err := config("shared", true); err != nil {
		return err
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
	progress("latency: %d interleaved rounds of %d calls per row", o.rounds, o.perRound)
	interleave([]*series{kv, floor, rt, fresh, shared}, o.rounds, o.perRound)

	progress("throughput: 5 × 3 runs of %s, %d clients", o.tput, o.clients)
	var floorOps, shapedOps, sharedOps []float64
	var tputErrs int64
	shapedOp := read("floor/shaped")
	// Where the time goes: the CPU each process spends per read, over all the runs.
	floorCPU, pluginCPU := cpuMeter{v.cmd.Process.Pid, pluginPIDs(floorBin)}, cpuMeter{v.cmd.Process.Pid, pluginPIDs(pluginBin)}
	var floorShare, shapedShare, sharedShare cpuShare
	timed := func(op func() error, m cpuMeter, share *cpuShare, errs *int64) float64 {
		var rate, ops float64
		share.add(m.measure(&ops, func() {
			var e int64
			rate, e = throughput(op, o.clients, o.tput)
			*errs += e
			ops = rate * o.tput.Seconds()
		}))
		return rate
	}
	for i := 0; i < 5; i++ {
		f := timed(floor.op, floorCPU, &floorShare, &tputErrs)
		sh := timed(shapedOp, floorCPU, &shapedShare, &tputErrs)
		s := timed(shared.op, pluginCPU, &sharedShare, &tputErrs)
		floorOps, shapedOps, sharedOps = append(floorOps, f), append(shapedOps, sh), append(sharedOps, s)
	}

	bursts, err := runBursts(o.burstN, o.burstRounds, sim, config, read, kv.op, floor.op)
	if err != nil {
		return err
	}

	r.latency(kv, "reference", "")
	r.latency(floor, "reference: the physical limit for an external plugin", "")
	r.add(rt.name+" p50", ms(quantile(rt.samples, .5)), "reference", "")
	limit := quantile(floor.samples, .5) + quantile(rt.samples, .5) + 300*time.Microsecond
	r.latency(fresh, "p50 ≤ floor + provider round trip + 0.3 ms = "+ms(limit), verdict(quantile(fresh.samples, .5) <= limit))
	sharedLimit := time.Duration(1.1 * float64(quantile(floor.samples, .5)))
	r.latency(shared, "p50 ≤ 1.1 × floor = "+ms(sharedLimit), verdict(quantile(shared.samples, .5) <= sharedLimit))
	fOps, shOps, sOps := median(floorOps), median(shapedOps), median(sharedOps)
	r.add(fmt.Sprintf("throughput, %d clients: floor / shared creds", o.clients),
		fmt.Sprintf("%.0f / %.0f reads/s (%.2f×; %d errors)", fOps, sOps, sOps/fOps, tputErrs),
		"shared ≥ 0.9 × floor", verdict(sOps >= 0.9*fOps && tputErrs == 0))
	r.add(fmt.Sprintf("throughput, %d clients: floor returning a creds-shaped response", o.clients),
		fmt.Sprintf("%.0f reads/s (shared creds: %.2f× of it)", shOps, sOps/shOps),
		"reference: what the response itself costs Vault", "")
	r.add("CPU per read in those runs, Vault / plugin process / clients: floor; shaped floor; shared creds",
		fmt.Sprintf("%s; %s; %s", floorShare.perOp(), shapedShare.perOp(), sharedShare.perOp()),
		"reference: where the time goes (2 cores: about 800 µs of CPU per read at 2,500 reads/s)", "")
	bursts.rows(r, o.burstN)
	pRSS, fRSS := peakRSS(pluginBin), peakRSS(floorBin)
	r.add("peak RSS (VmHWM) after the bursts: plugin / floor plugin",
		fmt.Sprintf("%.1f / %.1f MiB", mib(pRSS), mib(fRSS)), "plugin ≤ floor + 8 MiB", verdict(pRSS > 0 && fRSS > 0 && pRSS <= fRSS+8<<20))
	r.add("secrets enable → config → first token", ms(firstToken), "reported", "")
	return nil
}
