package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"
)

// Mutant statuses. KILLED and TIMED OUT count as killed, LIVED and NOT COVERED as lived;
// NOT VIABLE (does not compile) and EQUIVALENT (argued in equivalent.txt) leave the count.
const (
	stKilled     = "KILLED"
	stLived      = "LIVED"
	stTimedOut   = "TIMED OUT"
	stNotCovered = "NOT COVERED"
	stNotViable  = "NOT VIABLE"
	stEquivalent = "EQUIVALENT"
)

// compileAllowance is how long a mutant's build may take on top of its tests' timeout
// before the whole go test is stopped (two builds at once on two cores can be slow).
const compileAllowance = 5 * time.Minute

// runner runs mutants against the tests that cover them.
type runner struct {
	root, scratch, gocache string
	seeds                  int
	tps                    []*TestPkg
	testPkgsOf             map[*Package][]int // which TestPkgs' tests run against a package's mutants
	cov                    Coverage
	files                  map[string]sourceFile // the loaded packages' files, by module-relative path
	testsOnly              *regexp.Regexp        // only covering tests whose name matches run
	schemas                map[string]*schema    // by module-relative file
	mu                     sync.Mutex
}

// coveringTests returns, per TestPkg index, the tests (in run order) that execute m's
// position in the unmutated code, or, for a mutant of a declaration, a use of what it
// declares. A declaration's exported name may be used anywhere: every test of the package's
// TestPkgs runs.
func (r *runner) coveringTests(m *Mutant) map[int][]string {
	refs := map[testRef]bool{}
	switch {
	case m.Decl && m.Exported && m.Pkg.RelDir != ".":
		for _, i := range r.testPkgsOf[m.Pkg] {
			for _, t := range r.tps[i].Tests {
				refs[testRef{i, t}] = true
			}
		}
	case m.Decl:
		for _, u := range m.Uses {
			rel, err := filepath.Rel(r.root, u.Filename)
			if err != nil {
				continue
			}
			for t := range r.testsFor(filepath.ToSlash(rel), u.Line, u.Column) {
				refs[t] = true
			}
		}
	default:
		refs = r.testsFor(m.File, m.Line, m.Col)
	}
	out := map[int][]string{}
	for _, i := range r.testPkgsOf[m.Pkg] {
		for _, t := range r.tps[i].Tests {
			if refs[testRef{i, t}] && r.testsOnly.MatchString(t) {
				out[i] = append(out[i], t)
			}
		}
	}
	return out
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)

// run judges one mutant: the covering tests of each TestPkg, the package's own first, with
// -failfast; the first failure kills it. A mutant in its file's schema runs in that schema's
// test binary; any other is built alone, in worker's scratch directory, through `go test
// -overlay`, so the tree is never touched and workers never share a file.
func (r *runner) run(m *Mutant, worker int) {
	start := time.Now()
	defer func() { m.Seconds = time.Since(start).Seconds() }()
	tests := r.coveringTests(m)
	for _, ts := range tests {
		m.Tests += len(ts)
	}
	if m.Tests == 0 {
		m.Status = stNotCovered
		return
	}
	overlay := ""
	m.Status = stLived
	for _, i := range r.testPkgsOf[m.Pkg] {
		if len(tests[i]) == 0 {
			continue
		}
		var status, detail string
		s := r.schemas[m.File]
		bin, err := "", error(nil)
		if s != nil && m.Schema > 0 {
			bin, err = r.schemaBinary(s, i)
		}
		switch {
		case bin != "" && err == nil:
			status, detail = r.runBinary(r.tps[i], bin, m.Schema, tests[i])
		default:
			if overlay == "" {
				if overlay, err = r.writeOverlay(m, worker); err != nil {
					m.Status, m.Detail = stNotViable, err.Error()
					return
				}
			}
			status, detail = r.goTest(r.tps[i], overlay, tests[i])
		}
		if status != stLived {
			m.Status, m.Detail = status, detail
			return
		}
	}
}

// writeOverlay writes m's mutated file and an overlay naming it into worker's directory.
func (r *runner) writeOverlay(m *Mutant, worker int) (string, error) {
	dir := filepath.Join(r.scratch, fmt.Sprintf("worker-%d", worker))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	mutated := filepath.Join(dir, m.Base)
	overlay := filepath.Join(dir, "overlay.json")
	ov, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(m.Pkg.Dir, m.Base): mutated}})
	if err := os.WriteFile(mutated, m.apply(m.Pkg.Src[m.Base]), 0o644); err != nil {
		return "", err
	}
	return overlay, os.WriteFile(overlay, ov, 0o644)
}

// goTest builds tp's tests with the overlay and runs the named ones.
func (r *runner) goTest(tp *TestPkg, overlay string, tests []string) (status, detail string) {
	args := []string{"test", "-overlay=" + overlay, "-count=1", "-failfast", "-vet=off",
		"-timeout=" + tp.Timeout.String(), "-run=" + runRegexp(tests), "./" + tp.Rel}
	if tp.SeedsFlag {
		args = append(args, "-args", fmt.Sprintf("-seeds=%d", r.seeds))
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = r.root
	cmd.Env = append(os.Environ(), "GOCACHE="+r.gocache, "GOFLAGS=")
	return runClassified(cmd, tp.Timeout+compileAllowance)
}

// runAll runs every mutant that has no status yet, workers at a time, calling progress
// after each.
func (r *runner) runAll(ms []*Mutant, workers int, progress func(done, total int, m *Mutant)) {
	var todo []*Mutant
	for _, m := range ms {
		if m.Status == "" && !m.Duplicate {
			todo = append(todo, m)
		}
	}
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
		next = make(chan *Mutant)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for m := range next {
				r.run(m, w)
				mu.Lock()
				done++
				progress(done, len(todo), m)
				mu.Unlock()
			}
		}(w)
	}
	for _, m := range todo {
		next <- m
	}
	close(next)
	wg.Wait()
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// worstCase returns how long m takes if it lives: every TestPkg with a covering test pays
// the covering tests' unmutated times, and a build unless m is in a schema build. (A killed
// mutant stops at its first failing test; a NOT COVERED one costs nothing.)
func (r *runner) worstCase(m *Mutant) time.Duration {
	var d time.Duration
	for i, tests := range r.coveringTests(m) {
		if m.Schema == 0 || r.schemas[m.File] == nil {
			d += r.tps[i].Compile
		}
		for _, t := range tests {
			d += r.tps[i].Durations[t]
		}
	}
	return d
}
