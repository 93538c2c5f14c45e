package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
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
	Timeout    time.Duration // per mutant: factor × Baseline, at least minTimeout
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
		if m == nil || m[6] == "0" {
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
		b.tests[ref] = true
	}
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
				out, err := cmd.CombinedOutput()
				cancel()
				data, _ := os.ReadFile(prof)
				mu.Lock()
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
