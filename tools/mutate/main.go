// Command mutate is the plugin's mutation testing (make mutate): gremlins' mutants and the
// team's own list (team.go, body.go), each run against the tests that execute the mutated
// code, and a report per file.
//
//	mutate [flags] FILE|DIR...
//
// Each argument is a module-relative .go file or a directory (its non-test .go files). For
// each package, gremlins (`unleash --dry-run`) lists its mutants and the team's operators
// add theirs; a mutant that does not type-check is NOT VIABLE and never runs. Coverage is
// measured per test, unmutated: every top-level test alone, with a profile. A mutant runs
// the tests that execute its position (its package's own tests first, then the module root
// package's, whose simulation drives the providers' drivers), with -failfast and a timeout
// of -timeout-factor times the unmutated suite's time, from its file's schema build (one
// test binary holding the file's mutants behind guards, schema.go) or, for a declaration, a
// build of its own; both through `go test -overlay`, so the tree is never written. Results:
// a table on stdout, every mutant in OUT/results.tsv, the README's table in OUT/table.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"go/token"
	"go/types"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

func main() {
	var (
		root     = flag.String("root", ".", "the plugin module's root directory")
		seeds    = flag.Int("seeds", 300, "seeds of the root package's TestSimulation per run (make test runs 2000)")
		workers  = flag.Int("workers", 2, "mutants run at once")
		factor   = flag.Float64("timeout-factor", 3, "a mutant's tests time out at this many times the unmutated suite's time (at least 30s)")
		gremlins = flag.String("gremlins", "", "the gremlins binary (default ROOT/.tools/bin/gremlins)")
		out      = flag.String("out", "", "where results go (default ROOT/.tools/mutate)")
		eqFile   = flag.String("equivalent", "", "the equivalent mutants (default ROOT/tools/mutate/equivalent.txt)")
		list     = flag.Bool("list", false, "list the mutants and their counts only; run nothing")
		estimate = flag.Bool("estimate", false, "measure coverage and build time, print the time the run would take at most, and stop")
		noSchema = flag.Bool("no-schema", false, "build every mutant on its own (no schema builds: slower, for checking them)")
		origin   = flag.String("origin", "all", "which mutants: all, gremlins or team")
		only     = flag.String("only", "", "run only the mutants whose ID matches this regular expression (re-check a survivor)")
		testsRE  = flag.String("tests", "", "run only the covering tests whose name matches this regular expression (how much one test kills)")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: mutate [flags] FILE|DIR...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	onlyRE, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mutate: -only: %v\n", err)
		os.Exit(2)
	}
	testsOnly, err := regexp.Compile(*testsRE)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mutate: -tests: %v\n", err)
		os.Exit(2)
	}
	if err := run(*root, *gremlins, *out, *eqFile, *origin, flag.Args(), *seeds, *workers, *factor, *list, *estimate, !*noSchema, onlyRE, testsOnly); err != nil {
		fmt.Fprintf(os.Stderr, "mutate: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mutate: "+format+"\n", args...)
}

// targets resolves the arguments to module-relative files, grouped by package directory, in
// argument order.
func targets(root string, args []string) (files []string, byDir map[string][]string, dirs []string, err error) {
	byDir = map[string][]string{}
	add := func(rel string) {
		dir := filepath.ToSlash(filepath.Dir(rel))
		if _, ok := byDir[dir]; !ok {
			dirs = append(dirs, dir)
		}
		if !slices.Contains(byDir[dir], filepath.Base(rel)) {
			byDir[dir] = append(byDir[dir], filepath.Base(rel))
			files = append(files, filepath.ToSlash(rel))
		}
	}
	for _, a := range args {
		a = filepath.Clean(a)
		st, err := os.Stat(filepath.Join(root, a))
		if err != nil {
			return nil, nil, nil, err
		}
		if !st.IsDir() {
			if !strings.HasSuffix(a, ".go") || strings.HasSuffix(a, "_test.go") {
				return nil, nil, nil, fmt.Errorf("%s: not a non-test .go file", a)
			}
			add(a)
			continue
		}
		entries, err := os.ReadDir(filepath.Join(root, a))
		if err != nil {
			return nil, nil, nil, err
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
				add(filepath.Join(a, e.Name()))
			}
		}
	}
	return files, byDir, dirs, nil
}

func run(root, gremlins, out, eqFile, origin string, args []string, seeds, workers int, factor float64,
	list, estimate, useSchema bool, only, testsOnly *regexp.Regexp) error {
	start := time.Now()
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	gremlins = orDefault(gremlins, filepath.Join(root, ".tools/bin/gremlins"))
	out = orDefault(out, filepath.Join(root, ".tools/mutate"))
	eqFile = orDefault(eqFile, filepath.Join(root, "tools/mutate/equivalent.txt"))
	mod, err := exec.Command("go", "-C", root, "list", "-m", "-f", "{{.Path}}").Output()
	if err != nil {
		return fmt.Errorf("go list -m in %s: %v", root, err)
	}
	module := strings.TrimSpace(string(mod))
	files, byDir, dirs, err := targets(root, args)
	if err != nil {
		return err
	}
	var patterns []string
	for _, d := range dirs {
		patterns = append(patterns, "./"+d)
	}
	pkgs, err := loadPackages(root, patterns)
	if err != nil {
		return err
	}
	scratch := filepath.Join(out, "run")
	if err := os.RemoveAll(scratch); err != nil {
		return err
	}
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return err
	}

	var ms []*Mutant
	uses := map[*Package]map[types.Object][]token.Position{}
	for i, p := range pkgs {
		uses[p] = useIndex(p)
		for _, base := range byDir[dirs[i]] {
			if !slices.Contains(p.GoFiles, base) {
				return fmt.Errorf("%s is not compiled into %s on this machine (build tags?)", p.Rel(base), p.ImportPath)
			}
		}
		if origin != "gremlins" {
			for _, base := range byDir[dirs[i]] {
				ms = append(ms, teamMutants(p, base, module, uses[p])...)
			}
		}
		if origin != "team" {
			gm, err := gremlinsMutants(gremlins, root, scratch, p, byDir[dirs[i]])
			if err != nil {
				return err
			}
			ms = append(ms, gm...)
		}
	}
	markDecls(ms, uses)
	assignIDs(ms)
	ms = slices.DeleteFunc(ms, func(m *Mutant) bool { return !only.MatchString(m.ID) })
	markDuplicates(ms)
	eq, err := loadEquivalents(eqFile)
	if err != nil {
		return err
	}
	inRun := map[string]bool{}
	for _, f := range files {
		inRun[f] = true
	}
	markEquivalents(ms, eq, inRun, logf)
	for _, m := range ms {
		if m.Status == "" && !m.Duplicate {
			if err := m.Pkg.compiles(m.Base, m.apply(m.Pkg.Src[m.Base])); err != nil {
				m.Status, m.Detail = stNotViable, err.Error()
			}
		}
	}
	counts := map[string]int{}
	for _, m := range ms {
		switch {
		case m.Duplicate:
			counts["duplicate"]++
		case m.Status != "":
			counts[m.Status]++
		default:
			counts[m.Origin]++
		}
	}
	logf("%d mutants to run (%d of gremlins', %d of the team's list); %d not viable, %d equivalent, %d duplicates; listed in %s",
		counts["gremlins"]+counts["team"], counts["gremlins"], counts["team"], counts[stNotViable], counts[stEquivalent],
		counts["duplicate"], time.Since(start).Round(time.Second))
	if list {
		printList(ms, files)
		return nil
	}
	schemas := map[string]*schema{}
	if useSchema {
		for i, p := range pkgs {
			for _, base := range byDir[dirs[i]] {
				var mine []*Mutant
				for _, m := range ms {
					if m.Pkg == p && m.Base == base {
						mine = append(mine, m)
					}
				}
				s, err := prepareSchema(scratch, p, base, mine, logf)
				if err != nil {
					return err
				}
				if s != nil {
					schemas[s.file] = s
				}
			}
		}
		n := 0
		for _, s := range schemas {
			n += len(s.ms)
		}
		logf("%d mutants run in their file's schema build, the others in a build of their own", n)
	}

	r := &runner{root: root, scratch: scratch, gocache: filepath.Join(out, "gocache"), seeds: seeds,
		testPkgsOf: map[*Package][]int{}, cov: Coverage{}, files: map[string]sourceFile{}, testsOnly: testsOnly,
		schemas: schemas}
	for _, p := range pkgs {
		for _, base := range p.GoFiles {
			r.files[p.Rel(base)] = sourceFile{p, base}
		}
	}
	if err := r.testPackages(module, pkgs); err != nil {
		return err
	}
	for i, tp := range r.tps {
		var cover []string
		for _, p := range pkgs {
			if slices.Contains(r.testPkgsOf[p], i) {
				cover = append(cover, p.ImportPath)
			}
		}
		if err := measureCoverage(root, module, scratch, i, tp, cover, seeds, workers, r.cov, logf); err != nil {
			return err
		}
		t0 := time.Now()
		if err := measureBaseline(root, r.gocache, tp, seeds, factor); err != nil {
			return err
		}
		if err := measureCompile(root, r.gocache, scratch, tp); err != nil {
			return err
		}
		logf("%s: %d tests, unmutated run %.1fs (%s with its build), per-mutant timeout %s, build after a change %.1fs",
			tp.ImportPath, len(tp.Tests), tp.Baseline.Seconds(), time.Since(t0).Round(time.Second), tp.Timeout,
			tp.Compile.Seconds())
	}
	printEstimate(r, ms, files, workers)
	if estimate {
		return nil
	}
	runStart := time.Now()
	r.runAll(ms, workers, func(done, total int, m *Mutant) {
		eta := time.Duration(float64(time.Since(runStart)) / float64(done) * float64(total-done)).Round(time.Second)
		logf("[%d/%d, %s left] %-11s %s:%d %s  %s → %s  (%.1fs, %d tests) %s", done, total, eta, m.Status, m.File, m.Line,
			m.Operator, m.Orig, m.Mutated, m.Seconds, m.Tests, m.Detail)
	})
	logf("mutants ran in %s", time.Since(runStart).Round(time.Second))
	if err := writeTSV(filepath.Join(out, "results.tsv"), ms); err != nil {
		return err
	}
	commit, _ := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	header := fmt.Sprintf("Mutation testing of %s at %s, %s, %d seeds per run, %d workers, %s wall",
		strings.Join(args, " "), strings.TrimSpace(string(commit)), time.Now().Format("2006-01-02"), seeds, workers,
		time.Since(start).Round(time.Second))
	if err := writeMarkdown(filepath.Join(out, "table.md"), ms, files, header); err != nil {
		return err
	}
	fmt.Println(header)
	summarize(os.Stdout, ms, files)
	fmt.Printf("\nEvery mutant: %s; the README's table: %s\n", filepath.Join(out, "results.tsv"), filepath.Join(out, "table.md"))
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// markDuplicates marks every mutant whose edits an earlier one already makes (gremlins'
// first: its INVERT_NEGATIVES and ARITHMETIC_BASE both turn a binary - into +, and its
// CONDITIONALS_BOUNDARY makes the team's duration comparisons).
func markDuplicates(ms []*Mutant) {
	first := map[string]*Mutant{}
	for _, pass := range []string{"gremlins", "team"} {
		for _, m := range ms {
			if m.Origin != pass {
				continue
			}
			if _, ok := first[m.key()]; ok {
				m.Duplicate = true
				continue
			}
			first[m.key()] = m
		}
	}
}

// testPackages decides whose tests run against which package's mutants: a package's own
// (if it has tests), then the module's root package's, if it imports the package.
func (r *runner) testPackages(module string, pkgs []*Package) error {
	type listed struct {
		ImportPath                string
		Deps                      []string
		TestGoFiles, XTestGoFiles []string
	}
	info := map[string]listed{}
	patterns := []string{"."}
	for _, p := range pkgs {
		patterns = append(patterns, "./"+p.RelDir)
	}
	err := goList(r.root, func(dec *json.Decoder) error {
		var l listed
		if err := dec.Decode(&l); err != nil {
			return err
		}
		info[l.ImportPath] = l
		return nil
	}, append([]string{"-json=ImportPath,Deps,TestGoFiles,XTestGoFiles"}, patterns...)...)
	if err != nil {
		return err
	}
	index := map[string]int{}
	use := func(p *Package, path, rel string) {
		i, ok := index[path]
		if !ok {
			i = len(r.tps)
			index[path] = i
			r.tps = append(r.tps, &TestPkg{ImportPath: path, Rel: rel})
		}
		r.testPkgsOf[p] = append(r.testPkgsOf[p], i)
	}
	rootPkg := info[module]
	for _, p := range pkgs {
		if l := info[p.ImportPath]; len(l.TestGoFiles)+len(l.XTestGoFiles) > 0 {
			use(p, p.ImportPath, p.RelDir)
		}
		if p.ImportPath != module && slices.Contains(rootPkg.Deps, p.ImportPath) &&
			len(rootPkg.TestGoFiles)+len(rootPkg.XTestGoFiles) > 0 {
			use(p, module, ".")
		}
	}
	return nil
}
