package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Package is one package of the module under test, parsed and type-checked from its
// non-test files (the files `go build` would compile on this machine, default tags).
type Package struct {
	ImportPath string
	Dir        string // absolute
	RelDir     string // module-relative, "." for the module's root package
	Name       string
	GoFiles    []string // base names, sorted
	Fset       *token.FileSet
	Files      map[string]*ast.File // by base name
	Src        map[string][]byte    // by base name
	Types      *types.Package
	Info       *types.Info

	imp       types.Importer
	goVersion string
}

// Rel returns the module-relative path of one of the package's files ("settle.go",
// "backend/bloq/driver.go").
func (p *Package) Rel(base string) string {
	if p.RelDir == "." {
		return base
	}
	return filepath.ToSlash(filepath.Join(p.RelDir, base))
}

// goList runs `go list` in dir with args and decodes its stream of JSON objects into out,
// one callback per object.
func goList(dir string, each func(dec *json.Decoder) error, args ...string) error {
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		if err := each(dec); err != nil {
			return err
		}
	}
	return nil
}

// loadPackages parses and type-checks the packages named by patterns (relative to the
// module root), resolving imports from the export data `go list -export` produces (so the
// type checker sees exactly what the compiler sees). The packages come back in pattern order.
func loadPackages(root string, patterns []string) ([]*Package, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	type listed struct {
		ImportPath, Dir, Name, Export string
		GoFiles                       []string
		Module                        *struct{ GoVersion string }
	}
	var pkgs []*Package
	err = goList(root, func(dec *json.Decoder) error {
		var l listed
		if err := dec.Decode(&l); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, l.Dir)
		if err != nil {
			return err
		}
		p := &Package{ImportPath: l.ImportPath, Dir: l.Dir, RelDir: filepath.ToSlash(rel), Name: l.Name,
			GoFiles: l.GoFiles, goVersion: "go1.21"}
		if l.Module != nil && l.Module.GoVersion != "" {
			p.goVersion = "go" + l.Module.GoVersion
		}
		sort.Strings(p.GoFiles)
		pkgs = append(pkgs, p)
		return nil
	}, append([]string{"-json=ImportPath,Dir,Name,GoFiles,Module"}, patterns...)...)
	if err != nil {
		return nil, err
	}
	exports := map[string]string{}
	err = goList(root, func(dec *json.Decoder) error {
		var l listed
		if err := dec.Decode(&l); err != nil {
			return err
		}
		if l.Export != "" {
			exports[l.ImportPath] = l.Export
		}
		return nil
	}, append([]string{"-export", "-deps", "-json=ImportPath,Export"}, patterns...)...)
	if err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		if err := p.parseAndCheck(exports); err != nil {
			return nil, err
		}
	}
	return pkgs, nil
}

// parseAndCheck parses the package's files and type-checks them, recording full type
// information in p.Info.
func (p *Package) parseAndCheck(exports map[string]string) error {
	p.Fset = token.NewFileSet()
	p.Files = map[string]*ast.File{}
	p.Src = map[string][]byte{}
	p.imp = importer.ForCompiler(p.Fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %q", path)
		}
		return os.Open(f)
	})
	var files []*ast.File
	for _, base := range p.GoFiles {
		src, err := os.ReadFile(filepath.Join(p.Dir, base))
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(p.Fset, filepath.Join(p.Dir, base), src, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		p.Src[base], p.Files[base] = src, f
		files = append(files, f)
	}
	p.Info = &types.Info{
		Types:      map[ast.Expr]types.TypeAndValue{},
		Defs:       map[*ast.Ident]types.Object{},
		Uses:       map[*ast.Ident]types.Object{},
		Selections: map[*ast.SelectorExpr]*types.Selection{},
		Scopes:     map[ast.Node]*types.Scope{},
		Implicits:  map[ast.Node]types.Object{},
	}
	conf := types.Config{Importer: p.imp, GoVersion: p.goVersion}
	var err error
	p.Types, err = conf.Check(p.ImportPath, p.Fset, files, p.Info)
	if err != nil {
		return fmt.Errorf("type-checking %s: %v", p.ImportPath, err)
	}
	return nil
}

// compiles reports whether the package still type-checks with base's source replaced by
// src (and the files extra added): the first error if not. It is how a mutant that would not compile (an unused
// variable or import after a deletion, an operator on the wrong type) is found without
// running the compiler.
func (p *Package) compiles(base string, src []byte, extra ...[]byte) error {
	fset := token.NewFileSet()
	var files []*ast.File
	for i, x := range extra {
		f, err := parser.ParseFile(fset, fmt.Sprintf("extra%d.go", i), x, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files = append(files, f)
	}
	for _, b := range p.GoFiles {
		s := p.Src[b]
		if b == base {
			s = src
		}
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, b), s, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files = append(files, f)
	}
	var first error
	conf := types.Config{Importer: p.imp, GoVersion: p.goVersion, Error: func(err error) {
		if first == nil {
			first = err
		}
	}}
	_, _ = conf.Check(p.ImportPath, fset, files, nil)
	return first
}
