package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TestPkg is a package whose tests run against mutants: each target package's own tests,
// and the module's root package's, whose tests (the simulation among them) are what drive
// the providers' drivers (backend/bloq/driver.go has no test of its own package).
type TestPkg struct {
	ImportPath string
	Rel        string   // module-relative directory, "." for the root package
	Tests      []string // top-level tests, fuzz targets (their seed corpus) and examples, in run order
	SeedsFlag  bool     // its test binary has the simulation's -seeds flag
	Baseline   time.Duration
	Timeout    time.Duration            // per mutant: factor × Baseline, at least minTimeout
	Durations  map[string]time.Duration // each test's time alone, unmutated (with coverage)
	Compile    time.Duration            // a build of the package's tests after a change, as each mutant needs
}

const minTimeout = 30 * time.Second

// testRef names one top-level test of one TestPkg (an index into the run's list).
type testRef struct {
	pkg  int
	name string
}

// coverBlock is one block of a coverage profile and the tests that executed it.
type coverBlock struct {
	sl, sc, el, ec int
	tests          map[testRef]bool
}

// Coverage maps each module-relative file to its blocks, each with the tests that ran it.
type Coverage map[string]map[[4]int]*coverBlock

// testsAt returns the tests that executed the statement at line:col of file: those of every
// block that holds the position.
func (c Coverage) testsAt(file string, line, col int) map[testRef]bool {
	out := map[testRef]bool{}
	for _, b := range c[file] {
		after := line > b.sl || (line == b.sl && col >= b.sc)
		before := line < b.el || (line == b.el && col <= b.ec)
		if after && before {
			for t := range b.tests {
				out[t] = true
			}
		}
	}
	return out
}

var profileLine = regexp.MustCompile(`^(.+):(\d+)\.(\d+),(\d+)\.(\d+) \d+ (\d+)$`)

// addProfile merges one test's coverage profile into c.
func (c Coverage) addProfile(module string, ref testRef, profile []byte) {
	sc := bufio.NewScanner(bytes.NewReader(profile))
	for sc.Scan() {
		m := profileLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		file := strings.TrimPrefix(m[1], module+"/")
		var k [4]int
		for i := range k {
			k[i], _ = strconv.Atoi(m[2+i])
		}
		if c[file] == nil {
			c[file] = map[[4]int]*coverBlock{}
		}
		b := c[file][k]
		if b == nil {
			b = &coverBlock{sl: k[0], sc: k[1], el: k[2], ec: k[3], tests: map[testRef]bool{}}
			c[file][k] = b
		}
		if m[6] != "0" {
			b.tests[ref] = true
		}
	}
}

// inBlock reports whether line:col of file lies in a block of the profile, executed or not.
// Some code lies in none: a switch's case expressions (cover counts the switch's header and
// each clause's body, not the expressions between them) and a select's communications.
func (c Coverage) inBlock(file string, line, col int) bool {
	for _, b := range c[file] {
		after := line > b.sl || (line == b.sl && col >= b.sc)
		before := line < b.el || (line == b.el && col <= b.ec)
		if after && before {
			return true
		}
	}
	return false
}

// sourceFile is one file of a loaded package, by module-relative path.
type sourceFile struct {
	p    *Package
	base string
}

// testsFor returns the tests that execute line:col of file. Where the position lies in no
// block (a case expression), it is those that execute the innermost enclosing node that
// does lie in one (the switch statement): they are the tests that can evaluate it.
func (r *runner) testsFor(file string, line, col int) map[testRef]bool {
	if r.cov.inBlock(file, line, col) {
		return r.cov.testsAt(file, line, col)
	}
	sf, ok := r.files[file]
	if !ok {
		return nil
	}
	f := sf.p.Files[sf.base]
	tf := sf.p.Fset.File(f.Pos())
	if line > tf.LineCount() {
		return nil
	}
	pos := tf.LineStart(line) + token.Pos(col-1)
	var path []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		if n == nil || pos < n.Pos() || pos >= n.End() {
			return false
		}
		path = append(path, n)
		return true
	})
	for i := len(path) - 1; i >= 0; i-- {
		at := sf.p.Fset.Position(path[i].Pos())
		if r.cov.inBlock(file, at.Line, at.Column) {
			return r.cov.testsAt(file, at.Line, at.Column)
		}
	}
	return nil
}

// measureCoverage builds tp's test binary instrumented for coverPkgs, lists its tests, and
// runs each alone (workers at a time) with a coverage profile, merging them into cov: which
// test executes which statement of the unmutated code. A test that fails unmutated is an
// error: mutants cannot be judged against it.
func measureCoverage(root, module, scratch string, idx int, tp *TestPkg, coverPkgs []string, seeds, workers int,
	cov Coverage, logf func(string, ...any)) error {
	bin := filepath.Join(scratch, fmt.Sprintf("cover-%d.test", idx))
	build := exec.Command("go", "test", "-c", "-cover", "-covermode=set", "-coverpkg="+strings.Join(coverPkgs, ","),
		"-o", bin, "./"+tp.Rel)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s's tests with coverage: %v\n%s", tp.ImportPath, err, out)
	}
	dir := filepath.Join(root, tp.Rel)
	list := exec.Command(bin, "-test.list", ".")
	list.Dir = dir
	out, err := list.Output()
	if err != nil {
		return fmt.Errorf("listing %s's tests: %v", tp.ImportPath, err)
	}
	tp.Tests = nil
	for _, name := range strings.Fields(string(out)) {
		if !strings.HasPrefix(name, "Benchmark") {
			tp.Tests = append(tp.Tests, name)
		}
	}
	help, _ := exec.Command(bin, "-h").CombinedOutput()
	tp.SeedsFlag = bytes.Contains(help, []byte("\n  -seeds "))
	tp.Durations = map[string]time.Duration{}
	var (
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := tp.Tests[i]
				prof := filepath.Join(scratch, fmt.Sprintf("cover-%d-%d.out", idx, i))
				args := []string{"-test.run", "^" + regexp.QuoteMeta(name) + "$", "-test.count=1", "-test.coverprofile", prof}
				if tp.SeedsFlag {
					args = append(args, fmt.Sprintf("-seeds=%d", seeds))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				cmd := exec.CommandContext(ctx, bin, args...)
				cmd.Dir = dir
				t0 := time.Now()
				out, err := cmd.CombinedOutput()
				took := time.Since(t0)
				cancel()
				data, _ := os.ReadFile(prof)
				mu.Lock()
				tp.Durations[name] = took
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s %s fails unmutated: %v\n%s", tp.ImportPath, name, err, tail(out, 30)))
				}
				cov.addProfile(module, testRef{idx, name}, data)
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	for i := range tp.Tests {
		next <- i
	}
	close(next)
	wg.Wait()
	logf("coverage of %s: %d tests, each alone, in %.0fs", tp.ImportPath, len(tp.Tests), time.Since(start).Seconds())
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var okLine = regexp.MustCompile(`(?m)^ok\s+\S+\s+([0-9.]+)s`)

// measureBaseline runs tp's whole test suite once, unmutated, as mutants will run it (with
// the mutants' build cache, which this also fills), and sets its Baseline (the test binary's
// own time, from go test's "ok" line) and per-mutant Timeout.
func measureBaseline(root, gocache string, tp *TestPkg, seeds int, factor float64) error {
	args := []string{"test", "-count=1", "-failfast", "-vet=off", "./" + tp.Rel}
	if tp.SeedsFlag {
		args = append(args, "-args", fmt.Sprintf("-seeds=%d", seeds))
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOCACHE="+gocache)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s fails unmutated: %v\n%s", tp.ImportPath, err, tail(out, 30))
	}
	m := okLine.FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("no timing in go test's output for %s:\n%s", tp.ImportPath, out)
	}
	secs, _ := strconv.ParseFloat(string(m[1]), 64)
	tp.Baseline = time.Duration(secs * float64(time.Second))
	tp.Timeout = max(time.Duration(factor*float64(tp.Baseline)), minTimeout).Round(time.Second)
	return nil
}

// measureCompile times what every mutant pays before its first test: a build of tp's tests
// after a change to a file of tp's own package (an overlay adding a comment that is new each
// time, so that nothing comes from the cache), with the mutants' build cache.
func measureCompile(root, gocache, scratch string, tp *TestPkg) error {
	dir := filepath.Join(root, tp.Rel)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var file string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
			file = filepath.Join(dir, e.Name())
			break
		}
	}
	if file == "" {
		return nil
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	probe := filepath.Join(scratch, "probe.go")
	overlay := filepath.Join(scratch, "probe.json")
	src = append(src, fmt.Sprintf("\n// make mutate's compile probe %d\n", time.Now().UnixNano())...)
	if err := os.WriteFile(probe, src, 0o644); err != nil {
		return err
	}
	ov := fmt.Sprintf(`{"Replace": {%q: %q}}`, file, probe)
	if err := os.WriteFile(overlay, []byte(ov), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("go", "test", "-overlay="+overlay, "-count=1", "-vet=off", "-run=^$", "./"+tp.Rel)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOCACHE="+gocache, "GOFLAGS=")
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("compile probe of %s: %v\n%s", tp.ImportPath, err, tail(out, 20))
	}
	tp.Compile = time.Since(t0)
	return nil
}
