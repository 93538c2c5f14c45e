package main

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"sort"
	"strings"
)

// Mutant schemata. A build of the root package's tests after a change takes 5-15 s on two
// busy cores, most of what a killed mutant costs. So the mutants of one file that can be
// told apart at run time are all built into one copy of the file, each behind a guard
// `mutateSchemaID == N`, and one test binary per file runs them all, each with
// MUTATE_SCHEMA_ID=N. A guard wraps the innermost node around the mutation that can hold
// one without changing what the code means:
//
//   - a statement of a block:  if mutateSchemaID == 3 { mutated } else { original }
//   - a bool expression:       (mutateSchemaID == 3 && (mutated) || mutateSchemaID != 3 && (original))
//   - a value the file can name the type of:
//     func() T { switch mutateSchemaID { case 3: return mutated }; return original }()
//
// Exactly one of the alternatives is evaluated, once, where the original was. A mutant with
// no such node (a constant declaration, a swap of two declarations) is built on its own.
const (
	schemaVar  = "mutateSchemaID"
	schemaEnv  = "MUTATE_SCHEMA_ID"
	schemaFile = "zz_mutate_schema.go" // the file the overlay adds to the mutated package
)

// schemaDecl is the source of schemaFile for package name.
func schemaDecl(name string) string {
	return "package " + name + "\n\nimport (\n\t\"os\"\n\t\"strconv\"\n)\n\n" +
		"// " + schemaVar + " is the mutant make mutate's schema build runs (0: none).\n" +
		"var " + schemaVar + ", _ = strconv.Atoi(os.Getenv(\"" + schemaEnv + "\"))\n"
}

type siteKind int

const (
	siteStmt siteKind = iota
	siteBool
	siteValue
)

// site is one guarded node: its byte range, how it is guarded, and the mutants in it.
type site struct {
	start, end int
	kind       siteKind
	typ        string // siteValue: the value's type, as the file names it
	alts       []*Mutant
}

// findSite returns the innermost node around m's (single) edit that a guard can wrap.
func findSite(m *Mutant) (*site, bool) {
	if m.Decl || len(m.Edits) != 1 {
		return nil, false
	}
	p, f := m.Pkg, m.Pkg.Files[m.Base]
	tf := p.Fset.File(f.Pos())
	e := m.Edits[0]
	var path []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		if n == nil || tf.Offset(n.Pos()) > e.Start || tf.Offset(n.End()) < e.End {
			return false
		}
		path = append(path, n)
		return true
	})
	for i := len(path) - 1; i > 0; i-- {
		n, parent := path[i], path[i-1]
		if _, ok := n.(ast.Expr); ok && m.Operator == opStmtDelete {
			continue // a deleted statement is replaced by a statement
		}
		if g, ok := n.(*ast.GenDecl); ok && g.Tok == token.CONST {
			return nil, false // a constant context: no guard is a constant
		}
		if _, ok := n.(*ast.FuncDecl); ok {
			return nil, false
		}
		s := &site{start: tf.Offset(n.Pos()), end: tf.Offset(n.End())}
		switch n := n.(type) {
		case ast.Expr:
			if kind, typ, ok := exprSite(p, m.Base, n, parent); ok {
				s.kind, s.typ = kind, typ
				return s, true
			}
		case ast.Stmt:
			if stmtSite(n, parent) {
				s.kind = siteStmt
				return s, true
			}
		}
	}
	return nil, false
}

// stmtSite reports whether a guard (an if statement) can stand in for statement n, a
// member of its parent's statement list.
func stmtSite(n ast.Stmt, parent ast.Node) bool {
	switch n := n.(type) {
	case *ast.AssignStmt:
		if n.Tok == token.DEFINE {
			return false // its variables would end with the guard's block
		}
	case *ast.BranchStmt:
		if n.Tok == token.FALLTHROUGH || n.Tok == token.GOTO {
			return false
		}
	case *ast.DeclStmt, *ast.LabeledStmt, *ast.BlockStmt, *ast.CaseClause, *ast.CommClause, *ast.EmptyStmt:
		return false
	}
	var list []ast.Stmt
	switch p := parent.(type) {
	case *ast.BlockStmt:
		list = p.List
	case *ast.CaseClause:
		list = p.Body
	case *ast.CommClause:
		list = p.Body
	}
	for _, s := range list {
		if s == n {
			return true
		}
	}
	return false // an if's or a for's init or post statement: only a simple statement fits there
}

// exprSite says how expression n can be guarded, if it can: a bool as an && || choice, any
// other value the file can name the type of as a function literal called in place.
func exprSite(p *Package, base string, n ast.Expr, parent ast.Node) (siteKind, string, bool) {
	tv, ok := p.Info.Types[n]
	if !ok || tv.IsType() || !tv.IsValue() {
		return 0, "", false
	}
	switch par := parent.(type) {
	case *ast.CallExpr:
		if par.Fun == n {
			return 0, "", false
		}
	case *ast.SelectorExpr:
		if par.X == n || par.Sel == n {
			return 0, "", false // a method may need an addressable receiver
		}
	case *ast.UnaryExpr:
		if par.Op == token.AND {
			return 0, "", false
		}
	case *ast.AssignStmt:
		for _, l := range par.Lhs {
			if l == n {
				return 0, "", false
			}
		}
	case *ast.IncDecStmt, *ast.KeyValueExpr, *ast.IndexExpr, *ast.SliceExpr, *ast.StarExpr, *ast.ArrayType,
		*ast.RangeStmt, *ast.TypeAssertExpr, *ast.CompositeLit:
		// keys of a literal, operands that must be addressable, lengths that must be constant
		if kv, ok := par.(*ast.KeyValueExpr); ok && kv.Value == n {
			break
		}
		return 0, "", false
	}
	if b, ok := tv.Type.Underlying().(*types.Basic); ok && b.Info()&types.IsBoolean != 0 {
		return siteBool, "", true
	}
	if b, ok := tv.Type.(*types.Basic); ok && b.Info()&types.IsUntyped != 0 {
		return 0, "", false
	}
	if _, ok := tv.Type.(*types.Tuple); ok {
		return 0, "", false
	}
	typ, ok := nameType(p, base, tv.Type)
	return siteValue, typ, ok
}

// nameType writes t as file base of p can name it: its own package's names bare, another
// package's through the name the file imports it by; false if the file does not import it.
func nameType(p *Package, base string, t types.Type) (string, bool) {
	names := map[string]string{}
	for _, spec := range p.Files[base].Imports {
		var pn *types.PkgName
		if spec.Name != nil {
			pn, _ = p.Info.Defs[spec.Name].(*types.PkgName)
		} else {
			pn, _ = p.Info.Implicits[spec].(*types.PkgName)
		}
		if pn != nil {
			names[pn.Imported().Path()] = pn.Name()
		}
	}
	ok := true
	s := types.TypeString(t, func(pkg *types.Package) string {
		if pkg == p.Types {
			return ""
		}
		name, found := names[pkg.Path()]
		if !found || name == "_" || name == "." {
			ok = false
		}
		return name
	})
	return s, ok
}

// buildSchema returns file base of p with every mutant of ms that has a site guarded by
// its number (m.Schema, set here), and the mutants it holds. The caller type-checks it.
func buildSchema(p *Package, base string, ms []*Mutant) ([]byte, []*Mutant) {
	src := p.Src[base]
	byRange := map[[2]int]*site{}
	var sites []*site
	var in []*Mutant
	for _, m := range ms {
		s, ok := findSite(m)
		if !ok {
			continue
		}
		k := [2]int{s.start, s.end}
		if byRange[k] == nil {
			byRange[k] = s
			sites = append(sites, s)
		}
		if byRange[k].kind != s.kind {
			continue // one node, two readings: leave this mutant to a build of its own
		}
		m.Schema = len(in) + 1
		byRange[k].alts = append(byRange[k].alts, m)
		in = append(in, m)
	}
	sort.Slice(sites, func(i, j int) bool {
		if sites[i].start != sites[j].start {
			return sites[i].start < sites[j].start
		}
		return sites[i].end > sites[j].end
	})
	return []byte(render(src, sites, 0, len(src))), in
}

// render returns src[start:end] with every site in it guarded; sites are sorted by start,
// outer ones first, and nest or are apart (they are syntax nodes).
func render(src []byte, sites []*site, start, end int) string {
	var sb strings.Builder
	at := start
	for i := 0; i < len(sites); i++ {
		s := sites[i]
		if s.start < at || s.end > end {
			continue
		}
		j := i + 1 // the sites inside s
		for j < len(sites) && sites[j].start < s.end {
			j++
		}
		sb.Write(src[at:s.start])
		sb.WriteString(guard(src, s, render(src, sites[i+1:j], s.start, s.end)))
		at, i = s.end, j-1
	}
	sb.Write(src[at:end])
	return sb.String()
}

// guard returns site s guarded: each mutant's text behind its number, orig (s's text with
// the sites inside it guarded) otherwise.
func guard(src []byte, s *site, orig string) string {
	alt := func(m *Mutant) string {
		e := m.Edits[0]
		return string(src[s.start:e.Start]) + e.New + string(src[e.End:s.end])
	}
	var sb strings.Builder
	switch s.kind {
	case siteStmt:
		for _, m := range s.alts {
			fmt.Fprintf(&sb, "if %s == %d { %s } else ", schemaVar, m.Schema, alt(m))
		}
		fmt.Fprintf(&sb, "{ %s }", orig)
	case siteBool:
		sb.WriteString("(")
		var not []string
		for _, m := range s.alts {
			fmt.Fprintf(&sb, "%s == %d && (%s) || ", schemaVar, m.Schema, alt(m))
			not = append(not, fmt.Sprintf("%s != %d", schemaVar, m.Schema))
		}
		fmt.Fprintf(&sb, "%s && (%s))", strings.Join(not, " && "), orig)
	case siteValue:
		fmt.Fprintf(&sb, "func() %s { switch %s {", s.typ, schemaVar)
		for _, m := range s.alts {
			fmt.Fprintf(&sb, " case %d: return %s;", m.Schema, alt(m))
		}
		fmt.Fprintf(&sb, " }; return %s }()", orig)
	}
	return sb.String()
}
