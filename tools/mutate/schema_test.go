package main

import (
	"context"
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pluginRoot is the plugin module this tools module sits in (tools/mutate).
const pluginRoot = "../.."

// prepare enumerates the team's mutants of one file and the gremlins-style token swaps
// tokenMutants finds, marks the ones that do not compile, and builds the file's schema.
func prepare(t *testing.T, p *Package, base, module string, tokens bool) ([]*Mutant, *schema) {
	t.Helper()
	uses := useIndex(p)
	ms := teamMutants(p, base, module, uses)
	if tokens {
		ms = append(ms, tokenMutants(t, p, base)...)
	}
	markDecls(ms, map[*Package]map[types.Object][]token.Position{p: uses})
	assignIDs(ms)
	markDuplicates(ms)
	for _, m := range ms {
		if err := p.compiles(base, m.apply(p.Src[base])); err != nil {
			m.Status = stNotViable
		}
	}
	s, err := prepareSchema(t.TempDir(), p, base, ms, t.Logf)
	if err != nil || s == nil {
		t.Fatalf("%s: no schema: %v", p.Rel(base), err)
	}
	return ms, s
}

// tokenMutants makes every gremlins mutant (its token table) of one file, as its dry run
// would list them, without gremlins.
func tokenMutants(t *testing.T, p *Package, base string) []*Mutant {
	var ms []*Mutant
	ast.Inspect(p.Files[base], func(n ast.Node) bool {
		var at token.Pos
		switch n := n.(type) {
		case *ast.BinaryExpr:
			at = n.OpPos
		case *ast.AssignStmt:
			at = n.TokPos
		case *ast.IncDecStmt:
			at = n.TokPos
		case *ast.BranchStmt:
			at = n.TokPos
		case *ast.UnaryExpr:
			at = n.OpPos
		default:
			return true
		}
		pos := p.Fset.Position(at)
		var types []string
		for typ := range gremlinsSwaps {
			types = append(types, typ)
		}
		sort.Strings(types)
		for _, typ := range types {
			if m, err := gremlinsEdit(p, base, typ, pos.Line, pos.Column); err == nil && m != nil {
				ms = append(ms, m)
			}
		}
		return true
	})
	return ms
}

// TestSchemaMatchesEachMutantBuiltAlone builds a small program whose every statement,
// condition and value some mutant changes, once per mutant and once as a schema, and checks
// that the schema with each mutant on prints what that mutant built alone prints (and the
// original, with none on).
func TestSchemaMatchesEachMutantBuiltAlone(t *testing.T) {
	dir := t.TempDir()
	for name, from := range map[string]string{"subject/subject.go": "subject.go.txt", "main.go": "main.go.txt"} {
		data, err := os.ReadFile(filepath.Join("testdata", "schema", from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/m\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgs, err := loadPackages(dir, []string{"./subject"})
	if err != nil {
		t.Fatal(err)
	}
	p, base := pkgs[0], "subject.go"
	ms, s := prepare(t, p, base, "example.com/m", true)
	run := func(overlay string, id int) string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "m")
		args := []string{"build", "-o", bin}
		if overlay != "" {
			args = append(args, "-overlay="+overlay)
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		return execute(t, bin, id)
	}
	schemaBin := filepath.Join(t.TempDir(), "schema")
	build := exec.Command("go", "build", "-o", schemaBin, "-overlay="+s.overlay, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("schema build: %v\n%s", err, out)
	}
	runSchema := func(id int) string { return execute(t, schemaBin, id) }
	if got, want := runSchema(0), run("", 0); got != want {
		t.Fatalf("the schema with no mutant on prints\n%s\nnot the original's\n%s", got, want)
	}
	alone := 0
	for _, m := range ms {
		if m.Status != "" || m.Duplicate {
			continue
		}
		if m.Schema == 0 {
			alone++
			continue
		}
		w := filepath.Join(t.TempDir(), base)
		if err := os.WriteFile(w, m.apply(p.Src[base]), 0o644); err != nil {
			t.Fatal(err)
		}
		ov := filepath.Join(filepath.Dir(w), "overlay.json")
		data := `{"Replace": {"` + filepath.Join(p.Dir, base) + `": "` + w + `"}}`
		if err := os.WriteFile(ov, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, want := runSchema(m.Schema), run(ov, 0); got != want {
			t.Errorf("%s (%s → %s): the schema prints\n%s\nbuilt alone it prints\n%s", m.ID, m.Orig, m.Mutated, got, want)
		}
	}
	t.Logf("%d mutants in the schema, %d built alone (declarations)", len(s.ms), alone)
	if len(s.ms) < 30 {
		t.Errorf("only %d mutants in the schema", len(s.ms))
	}
}

// execute runs bin with mutant id on and returns what it prints, "(hangs)" if it runs 5 s
// (a mutant such as i++ turned to i-- in a loop's post statement), and how it failed.
func execute(t *testing.T, bin string, id int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), schemaEnv+"="+strconv.Itoa(id))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	switch {
	case ctx.Err() != nil:
		return "(hangs)"
	case err != nil: // a panic: its message, not its trace (the schema's lines are not the file's)
		first, _, _ := strings.Cut(stderr.String(), "\n")
		return fmt.Sprintf("%s%s (%v)", out, first, err)
	}
	return string(out)
}

// TestSchemaBuildsOfThePlugin builds the schema of each file of make mutate's default list
// from the team's mutants and gremlins' token swaps, and checks that it type-checks with
// every mutant of a function body in it.
func TestSchemaBuildsOfThePlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the plugin")
	}
	files := map[string][]string{
		".": {"settle.go", "rotate.go", "wal.go", "lease.go", "reuse.go", "memo.go", "schedule.go", "config.go",
			"path_config.go", "path_creds.go"},
		"./backend/bloq":      {"bloq.go", "clientkeys.go", "driver.go"},
		"./backend/offblocks": {"driver.go", "offblocks.go"},
	}
	for dir, bases := range files {
		pkgs, err := loadPackages(pluginRoot, []string{dir})
		if err != nil {
			t.Fatal(err)
		}
		for _, base := range bases {
			ms, _ := prepare(t, pkgs[0], base, "github.com/apitokens/vault-plugin-secrets-apitokens", true)
			for _, m := range ms {
				if m.Status == "" && !m.Duplicate && !m.Decl && m.Schema == 0 {
					t.Errorf("%s: not in the schema: %s → %s", m.ID, m.Orig, m.Mutated)
				}
			}
		}
	}
}
