package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// schema is one file's schema build: its source, and per TestPkg a test binary built with it.
type schema struct {
	file    string
	overlay string // the overlay JSON: the file's schema source and schemaFile
	ms      []*Mutant
	bins    map[int]*schemaBin
}

// schemaBin is one TestPkg's test binary of a schema, built (and checked) once.
type schemaBin struct {
	once sync.Once
	warn sync.Once
	path string
	err  error // the build failed, or the binary fails with no mutant on: its mutants build alone
}

// prepareSchema builds file base of p's schema from its mutants that still need a run, and
// type-checks it. A guard that does not compile is dropped (its mutant is built alone), found
// by checking each mutant's schema alone; if the whole still fails, no schema is used.
func prepareSchema(scratch string, p *Package, base string, ms []*Mutant, logf func(string, ...any)) (*schema, error) {
	var todo []*Mutant
	for _, m := range ms {
		if m.Status == "" && !m.Duplicate {
			todo = append(todo, m)
		}
	}
	decl := []byte(schemaDecl(p.Name))
	src, in := buildSchema(p, base, todo)
	if err := p.compiles(base, src, decl); err != nil {
		var keep []*Mutant
		for _, m := range in {
			one, _ := buildSchema(p, base, []*Mutant{m})
			if err := p.compiles(base, one, decl); err == nil {
				keep = append(keep, m)
			} else {
				logf("%s: built alone, its guard does not compile: %v", m.ID, err)
			}
		}
		for _, m := range in {
			m.Schema = 0
		}
		src, in = buildSchema(p, base, keep)
		if err := p.compiles(base, src, decl); err != nil {
			logf("%s: no schema build (%v): every mutant is built alone", p.Rel(base), err)
			for _, m := range in {
				m.Schema = 0
			}
			return nil, nil
		}
	}
	if len(in) == 0 {
		return nil, nil
	}
	dir := filepath.Join(scratch, "schema", strings.ReplaceAll(p.Rel(base), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	srcPath, declPath := filepath.Join(dir, base), filepath.Join(dir, schemaFile)
	if err := os.WriteFile(srcPath, src, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(declPath, decl, 0o644); err != nil {
		return nil, err
	}
	ov, _ := json.Marshal(map[string]map[string]string{"Replace": {
		filepath.Join(p.Dir, base): srcPath, filepath.Join(p.Dir, schemaFile): declPath}})
	overlay := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlay, ov, 0o644); err != nil {
		return nil, err
	}
	return &schema{file: p.Rel(base), overlay: overlay, ms: in, bins: map[int]*schemaBin{}}, nil
}

// schemaBinary returns s's test binary for TestPkg i, building it on first use and running
// it once with no mutant on (the tests that cover any of s's mutants): a schema whose
// unmutated run fails is not used.
func (r *runner) schemaBinary(s *schema, i int) (string, error) {
	r.mu.Lock()
	b := s.bins[i]
	if b == nil {
		b = &schemaBin{}
		s.bins[i] = b
	}
	r.mu.Unlock()
	b.once.Do(func() {
		tp := r.tps[i]
		b.path = filepath.Join(filepath.Dir(s.overlay), fmt.Sprintf("tests-%d.test", i))
		cmd := exec.Command("go", "test", "-c", "-overlay="+s.overlay, "-vet=off", "-o", b.path, "./"+tp.Rel)
		cmd.Dir = r.root
		cmd.Env = append(os.Environ(), "GOCACHE="+r.gocache, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building %s's schema for %s: %v\n%s", s.file, tp.ImportPath, err, tail(out, 10))
			return
		}
		union := map[string]bool{}
		for _, m := range s.ms {
			for _, t := range r.coveringTests(m)[i] {
				union[t] = true
			}
		}
		var tests []string
		for _, t := range tp.Tests {
			if union[t] {
				tests = append(tests, t)
			}
		}
		if len(tests) == 0 {
			return
		}
		if status, detail := r.runBinary(tp, b.path, 0, tests); status != stLived {
			b.err = fmt.Errorf("%s's schema fails %s's tests with no mutant on (%s: %s)", s.file, tp.ImportPath, status, detail)
		}
	})
	if b.err != nil {
		b.warn.Do(func() { logf("%v: its mutants are built alone", b.err) })
	}
	return b.path, b.err
}

// runBinary runs the named tests of a schema test binary of tp with mutant id on.
func (r *runner) runBinary(tp *TestPkg, bin string, id int, tests []string) (status, detail string) {
	args := []string{"-test.count=1", "-test.failfast", "-test.timeout=" + tp.Timeout.String(), "-test.run=" + runRegexp(tests)}
	if tp.SeedsFlag {
		args = append(args, fmt.Sprintf("-seeds=%d", r.seeds))
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Join(r.root, tp.Rel)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", schemaEnv, id))
	return runClassified(cmd, tp.Timeout+time.Minute)
}

// runRegexp is the -run pattern naming exactly tests.
func runRegexp(tests []string) string {
	quoted := make([]string, len(tests))
	for i, t := range tests {
		quoted[i] = regexp.QuoteMeta(t)
	}
	return "^(" + strings.Join(quoted, "|") + ")$"
}

// runClassified runs cmd (go test, or a test binary) in a process group of its own, stopped
// after limit, and classifies the outcome: LIVED (the tests pass), TIMED OUT (the test
// binary's -timeout, or limit), NOT VIABLE (the build failed), KILLED (with the first
// failing test, or the output's end).
func runClassified(cmd *exec.Cmd, limit time.Duration) (status, detail string) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return stNotViable, err.Error()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the command and whatever it started
		<-done
		return stTimedOut, "stopped after " + limit.String()
	}
	text := out.String()
	switch {
	case err == nil:
		return stLived, ""
	case strings.Contains(text, "panic: test timed out after"):
		return stTimedOut, "test binary timed out"
	case strings.Contains(text, "[build failed]") || strings.Contains(text, "[setup failed]"):
		return stNotViable, oneLine(tail(out.Bytes(), 3))
	}
	if f := failLine.FindStringSubmatch(text); f != nil {
		return stKilled, f[1]
	}
	return stKilled, oneLine(tail(out.Bytes(), 2))
}
