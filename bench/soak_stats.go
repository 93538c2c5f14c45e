//go:build linux

package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// soakSamplesPerKind is how many texts of each kind of failed read the soak keeps to print.
const soakSamplesPerKind = 10

// soakStats are the soak's figures, recorded by the readers, the checker and the observer.
type soakStats struct {
	d       time.Duration
	readers int
	took    time.Duration // from the first read to the last reader's end
	checker *checker
	obs     *observer
	metrics map[string]string // config → rotations by trigger and outcome, from the metrics path

	mu       sync.Mutex
	reads    map[string]int      // config → reads
	failed   map[string]int      // "503", "no answer", ... → reads
	texts    map[string][]string // the same → the first soakSamplesPerKind texts
	leases   int                 // leases sampled for checks
	fresh    int                 // of which of a token new to its reader
	outcomes [checkOutcomes]int
	dead     []deadToken
	late     []string // the first soakSamplesPerKind checks sent after their lease's end
	gone     []string // the first soakSamplesPerKind sampled leases gone before their lookup
	goneN    int
	// Of the reads answered with a token: the longest read, and the reads that took 1 s or
	// more; the shortest lease, and the leases under 5 s.
	slowest         time.Duration
	slow            int
	shortest, short int
}

func newSoakStats(d time.Duration, readers int) *soakStats {
	return &soakStats{d: d, readers: readers, reads: map[string]int{}, failed: map[string]int{}, texts: map[string][]string{}}
}

// answer records one creds read of config, sent and answered at the times given: status 200
// with text "" is a token with a lease of leaseSecs; anything else (status 0: no answer) a
// failed read, whose text is kept if it is among the first of its kind.
func (st *soakStats) answer(config string, status int, text string, sent, at time.Time, leaseSecs int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.reads[config]++
	if status == 200 && text == "" {
		took := at.Sub(sent)
		st.slowest = max(st.slowest, took)
		if took >= time.Second {
			st.slow++
		}
		if st.shortest == 0 || leaseSecs < st.shortest {
			st.shortest = leaseSecs
		}
		if leaseSecs < 5 {
			st.short++
		}
		return
	}
	kind := fmt.Sprint(status)
	switch status {
	case 0:
		kind = "no answer"
	case 200:
		kind = "200 without a token"
	}
	st.failed[kind]++
	if len(st.texts[kind]) < soakSamplesPerKind {
		st.texts[kind] = append(st.texts[kind], fmt.Sprintf("%s %s: %s", stamp(at), config, text))
	}
}

func (st *soakStats) sampled(l lease) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.leases++
	if l.fresh {
		st.fresh++
	}
}

func (st *soakStats) checkOutcome(o int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.outcomes[o]++
}

// leaseGone records a sampled lease that sys/leases/lookup no longer found.
func (st *soakStats) leaseGone(text string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.goneN++
	if len(st.gone) < soakSamplesPerKind {
		st.gone = append(st.gone, text)
	}
}

// lateCheck records a check that ran only after its lease's end (a timer fired late).
func (st *soakStats) lateCheck(text string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.outcomes[checkLate]++
	if len(st.late) < soakSamplesPerKind {
		st.late = append(st.late, text)
	}
}

// deadToken records, and reports at once on stderr, a token refused inside its lease.
func (st *soakStats) deadToken(l lease, sentAt time.Time, last bool, why string) {
	d := deadToken{config: l.config, start: l.start, end: l.end, sentAt: sentAt, last: last, why: why}
	if st.obs != nil {
		d.rotations, d.lastRotation = st.obs.rotationsOf(l.config)
	}
	progress("soak: DEAD INSIDE ITS LEASE: %s", d)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dead = append(st.dead, d)
}

func (st *soakStats) totals() (reads, failed int) {
	for _, n := range st.reads {
		reads += n
	}
	for _, n := range st.failed {
		failed += n
	}
	return reads, failed
}

// progressLine is the figures so far, for a human watching stderr.
func (st *soakStats) progressLine(obs *observer) string {
	st.mu.Lock()
	reads, failed := st.totals()
	checks, dead := st.outcomes[checkValid]+st.outcomes[checkRefusedAtEnd]+len(st.dead), len(st.dead)
	st.mu.Unlock()
	var rot []string
	for _, name := range soakConfigs {
		n, _ := obs.rotationsOf(name)
		rot = append(rot, fmt.Sprintf("%s %d", name, n))
	}
	return fmt.Sprintf("%s reads, %d failed; %s checks, %d dead inside their lease; rotations: %s; plugin RSS peak %.1f MiB",
		thousands(reads), failed, thousands(checks), dead, strings.Join(rot, ", "), mib(obs.peakRSS()))
}

// print writes the soak's table, the texts of failed reads and the dead tokens to w, and
// returns why the soak failed (nothing when it passed), also printed.
func (st *soakStats) print(w io.Writer) []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	reads, failed := st.totals()
	var perConfig, rotations, metrics []string
	var reasons []string
	for _, name := range soakConfigs {
		perConfig = append(perConfig, fmt.Sprintf("%s %s", name, thousands(st.reads[name])))
		n, _ := st.obs.rotationsOf(name)
		rot := fmt.Sprintf("%s %d", name, n)
		if f := st.obs.failures[name]; f > 0 {
			rot += fmt.Sprintf(" (rotation_failures up to %d)", f)
		}
		rotations = append(rotations, rot)
		metrics = append(metrics, fmt.Sprintf("%s: %s", name, st.metrics[name]))
		if n == 0 && st.d >= 2**soakRotation {
			reasons = append(reasons, fmt.Sprintf("config %s never rotated (rotation_period %s)", name, *soakRotation))
		}
	}
	var kinds []string
	for k, n := range st.failed {
		kinds = append(kinds, fmt.Sprintf("%s: %s", k, thousands(n)))
	}
	sort.Strings(kinds)
	failedFig := "0"
	if failed > 0 {
		failedFig = fmt.Sprintf("%s (%s)", thousands(failed), strings.Join(kinds, ", "))
		reasons = append(reasons, fmt.Sprintf("%s of %s reads answered other than 200 with a token", thousands(failed), thousands(reads)))
	}
	if len(st.dead) > 0 {
		reasons = append(reasons, fmt.Sprintf("%d tokens dead inside their lease", len(st.dead)))
	}
	o := st.outcomes
	checks := o[checkValid] + o[checkRefusedAtEnd] + len(st.dead)
	rows := [][2]string{
		{"duration", fmt.Sprintf("%s (reads for %s)", st.d, st.took.Round(time.Millisecond))},
		{"readers", fmt.Sprintf("%d, alternately on %s; rotation_period %s, token_reuse on", st.readers,
			strings.Join(soakConfigs, " and "), *soakRotation)},
		{"reads", fmt.Sprintf("%s (%s)", thousands(reads), strings.Join(perConfig, ", "))},
		{"reads/s", formatFloat(float64(reads)/st.took.Seconds(), 1)},
		{"reads answered other than 200 with a token", failedFig},
		{"of the others: the longest read; reads of 1 s or more", fmt.Sprintf("%s; %d", st.slowest.Round(time.Millisecond), st.slow)},
		{"of the others: the shortest lease; leases under 5 s", fmt.Sprintf("%d s; %d", st.shortest, st.short)},
		{"leases checked at the provider", fmt.Sprintf("%s (%s of a token new to its reader, the others 1 in %d)",
			thousands(st.leases), thousands(st.fresh), *soakSample)},
		{"sampled leases already gone at their lookup (not checked)", fmt.Sprint(st.goneN)},
		{"checks answered before the lease's end (one at a random moment, one ≤ 1 s before the end)", thousands(checks)},
		{"tokens dead inside their lease", fmt.Sprint(len(st.dead))},
		{"checks refused, answered after the lease's end (sent before it)", fmt.Sprint(o[checkRefusedAtEnd])},
		{"checks not made: sent after the lease's end / no answer", fmt.Sprintf("%d / %d", o[checkLate], o[checkError])},
		{"rotations observed (config reads' last_vault_rotation)", strings.Join(rotations, ", ")},
		{"rotations by the metrics path (trigger outcome=count)", strings.Join(metrics, "; ")},
		{"config reads that failed (rotation watch)", fmt.Sprint(st.obs.pollErrors) + firstText(st.obs.firstErr)},
		{"plugin RSS start → end (peak, sampled every 10 s)", fmt.Sprintf("%.1f → %.1f MiB (%.1f MiB)",
			mib(st.obs.rssStart), mib(st.obs.rssEnd), mib(st.obs.rssPeak))},
	}
	fmt.Fprintf(w, "\nMachine: %s\n\n| soak | figure |\n|---|---|\n", machine(os.Getenv("VAULT_BIN")))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s |\n", r[0], r[1])
	}
	for _, k := range slices.Sorted(maps.Keys(st.texts)) {
		fmt.Fprintf(w, "\nReads answered %s (the first %d at most):\n", k, soakSamplesPerKind)
		for _, t := range st.texts[k] {
			fmt.Fprintln(w, "  "+t)
		}
	}
	if len(st.gone) > 0 {
		fmt.Fprintf(w, "\nSampled leases already gone at their lookup (the first %d at most):\n", soakSamplesPerKind)
		for _, t := range st.gone {
			fmt.Fprintln(w, "  "+t)
		}
	}
	if len(st.late) > 0 {
		fmt.Fprintf(w, "\nChecks sent only after their lease's end (the first %d at most):\n", soakSamplesPerKind)
		for _, t := range st.late {
			fmt.Fprintln(w, "  "+t)
		}
	}
	if len(st.dead) > 0 {
		fmt.Fprintln(w, "\nTokens dead inside their lease (times UTC):")
		for _, d := range st.dead {
			fmt.Fprintln(w, "  "+d.String())
		}
	}
	if len(reasons) == 0 {
		fmt.Fprintln(w, "\nsoak: PASS")
	} else {
		fmt.Fprintln(w, "\nsoak: FAIL: "+strings.Join(reasons, "; "))
	}
	return reasons
}

func firstText(s string) string {
	if s == "" {
		return ""
	}
	return " (the first: " + s + ")"
}
