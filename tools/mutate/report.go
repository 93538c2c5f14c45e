package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// equivalent is one entry of equivalent.txt: a mutant argued to behave exactly as the
// original, which leaves the count.
type equivalent struct {
	id, mutated, reason string
	used                bool
}

// loadEquivalents reads equivalent.txt: one mutant a line, as
//
//	ID | mutated line, as the report prints it | why no test can tell it from the original
//
// with # comments and blank lines ignored. A missing file is an empty list.
func loadEquivalents(path string) (map[string]*equivalent, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string]*equivalent{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]*equivalent{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, " | ", 3)
		if len(parts) != 3 || strings.TrimSpace(parts[2]) == "" {
			return nil, fmt.Errorf("%s:%d: want `ID | mutated line | reason`", path, n)
		}
		out[strings.TrimSpace(parts[0])] = &equivalent{id: strings.TrimSpace(parts[0]),
			mutated: strings.TrimSpace(parts[1]), reason: strings.TrimSpace(parts[2])}
	}
	return out, sc.Err()
}

// markEquivalents gives the mutants equivalent.txt names the status EQUIVALENT, and warns
// of entries that name no mutant or one whose mutated line has changed (the code moved on:
// the argument must be made again).
func markEquivalents(ms []*Mutant, eq map[string]*equivalent, files map[string]bool, warn func(string, ...any)) {
	for _, m := range ms {
		e, ok := eq[m.ID]
		if !ok {
			continue
		}
		e.used = true
		if e.mutated != m.Mutated {
			warn("equivalent.txt: %s now mutates to %q, not %q: not applied", m.ID, m.Mutated, e.mutated)
			continue
		}
		m.Status, m.Reason = stEquivalent, e.reason
	}
	for _, id := range sortedKeys(eq) {
		file := id[:strings.IndexByte(id+":", ':')]
		if !eq[id].used && files[file] {
			warn("equivalent.txt: %s names no mutant of this run", id)
		}
	}
}

// fileCounts are one file's figures.
type fileCounts struct {
	killed, timedOut, lived, notCovered, notViable, equivalent, duplicate int
}

// scored is the mutants that count: killed (with timed out) plus lived (with not covered).
func (c fileCounts) scored() int { return c.killed + c.timedOut + c.lived + c.notCovered }

// percent is the share killed, NOT COVERED counting as lived.
func (c fileCounts) percent() string {
	if c.scored() == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(c.killed+c.timedOut)/float64(c.scored()))
}

func (c *fileCounts) add(m *Mutant) {
	if m.Duplicate {
		c.duplicate++
		return
	}
	switch m.Status {
	case stKilled:
		c.killed++
	case stTimedOut:
		c.timedOut++
	case stLived:
		c.lived++
	case stNotCovered:
		c.notCovered++
	case stNotViable:
		c.notViable++
	case stEquivalent:
		c.equivalent++
	}
}

// countByFile counts ms per file of files, and in all.
func countByFile(ms []*Mutant, files []string) (map[string]*fileCounts, fileCounts) {
	counts := map[string]*fileCounts{}
	for _, f := range files {
		counts[f] = &fileCounts{}
	}
	var total fileCounts
	for _, m := range ms {
		counts[m.File].add(m)
		total.add(m)
	}
	return counts, total
}

// summarize writes the per-file table, the totals and the list of survivors to w.
func summarize(w io.Writer, ms []*Mutant, files []string) {
	counts, total := countByFile(ms, files)
	fmt.Fprintf(w, "\n%-32s %7s %7s %9s %6s %11s %10s %10s %8s\n", "file", "mutants", "killed", "timed out",
		"lived", "not covered", "not viable", "equivalent", "% killed")
	row := func(name string, c *fileCounts) {
		fmt.Fprintf(w, "%-32s %7d %7d %9d %6d %11d %10d %10d %8s\n", name, c.scored(), c.killed, c.timedOut,
			c.lived, c.notCovered, c.notViable, c.equivalent, c.percent())
	}
	for _, f := range files {
		row(f, counts[f])
	}
	row("total", &total)
	fmt.Fprintf(w, "(mutants = killed + timed out + lived + not covered; %% killed counts timed out as killed and not covered as lived;"+
		" %d duplicate mutants were run once)\n", total.duplicate)
	fmt.Fprintf(w, "\nSurvivors (LIVED and NOT COVERED):\n")
	for _, m := range ms {
		if !m.Duplicate && (m.Status == stLived || m.Status == stNotCovered) {
			fmt.Fprintf(w, "  %s:%d  %-11s %-22s %s  →  %s\n", m.File, m.Line, m.Status, m.Operator, m.Orig, m.Mutated)
		}
	}
}

// writeTSV writes every mutant, one a line, to path (machine-readable; the README's table
// is made from it).
func writeTSV(path string, ms []*Mutant) error {
	var sb strings.Builder
	sb.WriteString("id\tfile\tline\tcol\torigin\toperator\tstatus\ttests\tseconds\toriginal\tmutated\tdetail\n")
	clean := func(s string) string { return strings.NewReplacer("\t", " ", "\n", " ").Replace(s) }
	for _, m := range ms {
		status := m.Status
		if m.Duplicate {
			status = "DUPLICATE"
		}
		detail := m.Detail
		if m.Reason != "" {
			detail = m.Reason
		}
		fmt.Fprintf(&sb, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%d\t%.1f\t%s\t%s\t%s\n", m.ID, m.File, m.Line, m.Col, m.Origin,
			m.Operator, status, m.Tests, m.Seconds, clean(m.Orig), clean(m.Mutated), clean(detail))
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// writeMarkdown writes the README's table (file, killed, lived, % killed) to path.
func writeMarkdown(path string, ms []*Mutant, files []string, header string) error {
	counts, total := countByFile(ms, files)
	var sb strings.Builder
	sb.WriteString(header + "\n\n")
	sb.WriteString("| file | killed (timed out) | lived (not covered) | % killed |\n|---|---|---|---|\n")
	for _, f := range append(files, "**total**") {
		c := counts[f]
		if c == nil {
			c = &total
		}
		fmt.Fprintf(&sb, "| %s | %d (%d) | %d (%d) | %s |\n", f, c.killed+c.timedOut, c.timedOut,
			c.lived+c.notCovered, c.notCovered, c.percent())
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// printList prints every mutant and the counts per file and operator (mutate -list).
func printList(ms []*Mutant, files []string) {
	counts := map[string]map[string]int{}
	ops := map[string]bool{}
	for _, m := range ms {
		st := m.Status
		if m.Duplicate {
			st = "DUPLICATE"
		}
		fmt.Printf("%-60s %-11s %s  →  %s  %s\n", m.ID, st, m.Orig, m.Mutated, m.Detail)
		if m.Duplicate || m.Status == stNotViable {
			continue
		}
		if counts[m.File] == nil {
			counts[m.File] = map[string]int{}
		}
		counts[m.File][m.Operator]++
		counts[m.File]["total"]++
		ops[m.Operator] = true
	}
	fmt.Println()
	for _, f := range files {
		var parts []string
		for _, op := range sortedKeys(ops) {
			if n := counts[f][op]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", op, n))
			}
		}
		fmt.Printf("%-32s %4d  %s\n", f, counts[f]["total"], strings.Join(parts, ", "))
	}
}

// printEstimate prints, per file, the mutants to run and the most they can take: as if each
// lived (ran every covering test, in every TestPkg), shared among the workers.
func printEstimate(r *runner, ms []*Mutant, files []string, workers int) {
	per := map[string]time.Duration{}
	n := map[string]int{}
	var total time.Duration
	for _, m := range ms {
		if m.Status == "" && !m.Duplicate {
			d := r.worstCase(m)
			per[m.File] += d
			n[m.File]++
			total += d
		}
	}
	for file, s := range r.schemas { // its builds, and a run of the tests with no mutant on
		for _, i := range r.testPkgsOf[s.ms[0].Pkg] {
			per[file] += r.tps[i].Compile + r.tps[i].Baseline
			total += r.tps[i].Compile + r.tps[i].Baseline
		}
	}
	for _, f := range files {
		logf("estimate: %-32s %4d mutants, at most %s", f, n[f], (per[f] / time.Duration(workers)).Round(time.Second))
	}
	logf("estimate: at most %s for the mutants (every one living; killed ones stop at their first failing test), %d workers",
		(total / time.Duration(workers)).Round(time.Second), workers)
}
