package main

import (
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
	"sort"
	"strconv"
	"strings"
)

// The team's own mutant list: the operators gremlins lacks that matter for this plugin.
// Each is deterministic: one file's mutants depend only on the package's source.
const (
	opStmtDelete     = "STATEMENT_DELETION" // delete one statement: an assignment, a call, a send, a defer or go, a return-with-error in an if body
	opConstSwap      = "CONSTANT_SWAP"      // two constants of one type exchange values; a time unit or a module enum constant taken for the next one
	opConstReplace   = "CONSTANT_REPLACE"   // a numeric literal in a constant declaration, or a time.Duration literal, n -> n+1
	opTimeBoundary   = "TIME_BOUNDARY"      // t.Before(u) <-> !t.After(u), t.After(u) <-> !t.Before(u); < <-> <=, > <-> >= between durations
	opErrorClass     = "ERROR_CLASS"        // a sentinel error, an error classifier or an HTTP status taken for a neighbouring one
	timePkg          = "time"
	maxSwapsPerGroup = 8 // at most this many exchanges among the constants of one type in one file
)

// teamWalker enumerates the team's mutants of one file.
type teamWalker struct {
	p      *Package
	base   string
	f      *ast.File
	uses   map[types.Object][]token.Position
	out    []*Mutant
	module string // the module path: enum constants and classifiers are taken from its packages only
}

// teamMutants returns the team's mutants of one file of p, in source order.
func teamMutants(p *Package, base, module string, uses map[types.Object][]token.Position) []*Mutant {
	w := &teamWalker{p: p, base: base, f: p.Files[base], uses: uses, module: module}
	for _, d := range w.f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Body != nil {
				w.body(d.Body)
			}
		case *ast.GenDecl:
			w.topLevel(d)
		}
	}
	w.fileConstExchanges()
	return w.out
}

// useIndex maps each package-level object of p to the positions where p's files use it.
func useIndex(p *Package) map[types.Object][]token.Position {
	idx := map[types.Object][]token.Position{}
	for id, obj := range p.Info.Uses {
		if obj.Pkg() == p.Types && obj.Parent() == p.Types.Scope() {
			idx[obj] = append(idx[obj], p.Fset.Position(id.Pos()))
		}
	}
	return idx
}

// add records a mutant at pos made of edits, unless an edit changes nothing.
func (w *teamWalker) add(op string, pos token.Pos, edits ...Edit) *Mutant {
	for _, e := range edits {
		if string(w.p.Src[w.base][e.Start:e.End]) == e.New {
			return nil
		}
	}
	m := newMutant(w.p, w.base, op, pos, edits...)
	w.out = append(w.out, m)
	return m
}

// topLevel handles a package-level declaration: its constants' exchanges and literals, and
// time units in any of its values (markDecls then says where they are covered).
func (w *teamWalker) topLevel(d *ast.GenDecl) {
	if d.Tok != token.CONST && d.Tok != token.VAR {
		return
	}
	if d.Tok == token.CONST {
		w.constDecl(d)
	}
	for _, s := range d.Specs {
		for _, v := range s.(*ast.ValueSpec).Values {
			ast.Inspect(v, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					w.constUse(sel, sel.Sel)
				}
				return true
			})
		}
	}
}

// markDecls marks every mutant (gremlins' too) that lies in a package-level const or var
// declaration as Decl, with the uses of the names that declaration declares: coverage
// profiles count statements only, so such a mutant is covered where those names are used.
func markDecls(ms []*Mutant, uses map[*Package]map[types.Object][]token.Position) {
	for _, m := range ms {
		f := m.Pkg.Files[m.Base]
		tf := m.Pkg.Fset.File(f.Pos())
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || (g.Tok != token.CONST && g.Tok != token.VAR) {
				continue
			}
			if off := m.Edits[0].Start; off < tf.Offset(g.Pos()) || off >= tf.Offset(g.End()) {
				continue
			}
			m.Decl = true
			for _, s := range g.Specs {
				for _, name := range s.(*ast.ValueSpec).Names {
					if obj := m.Pkg.Info.Defs[name]; obj != nil {
						m.Uses = append(m.Uses, uses[m.Pkg][obj]...)
						m.Exported = m.Exported || name.IsExported()
					}
				}
			}
		}
	}
}

// constDecl adds the exchanges and literal replacements of one const declaration.
// Numeric constants of one type exchange with the next one declared in the file; string
// constants only within one parenthesised block (alternatives, such as grant types).
func (w *teamWalker) constDecl(d *ast.GenDecl) {
	for _, s := range d.Specs {
		vs := s.(*ast.ValueSpec)
		for _, v := range vs.Values {
			ast.Inspect(v, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok {
					w.literal(lit)
				}
				return true
			})
		}
	}
	if d.Lparen.IsValid() {
		w.exchange(d.Specs, true)
	}
}

// exchange adds, among specs' single-name constants with a value, an exchange of each one's
// value with the next one's of an identical type and a different value.
func (w *teamWalker) exchange(specs []ast.Spec, strings bool) {
	groups := map[string][]*ast.ValueSpec{}
	var order []string
	for _, s := range specs {
		vs, ok := s.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 {
			continue
		}
		c, ok := w.p.Info.Defs[vs.Names[0]].(*types.Const)
		if !ok || c.Val().Kind() == constant.Bool || (c.Val().Kind() == constant.String) != strings {
			continue
		}
		k := c.Type().String()
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], vs)
	}
	for _, k := range order {
		g := groups[k]
		for i := 0; i+1 < len(g) && i < maxSwapsPerGroup; i++ {
			a, b := g[i], g[i+1]
			ca, cb := w.p.Info.Defs[a.Names[0]].(*types.Const), w.p.Info.Defs[b.Names[0]].(*types.Const)
			if constant.Compare(ca.Val(), token.EQL, cb.Val()) {
				continue
			}
			m := w.add(opConstSwap, a.Names[0].Pos(),
				replaceNode(w.p, a.Values[0], nodeText(w.p, w.base, b.Values[0])),
				replaceNode(w.p, b.Values[0], nodeText(w.p, w.base, a.Values[0])))
			if m != nil {
				m.Orig = oneLine(a.Names[0].Name + " = " + nodeText(w.p, w.base, a.Values[0]) + "; " +
					b.Names[0].Name + " = " + nodeText(w.p, w.base, b.Values[0]))
				m.Mutated = oneLine(a.Names[0].Name + " = " + nodeText(w.p, w.base, b.Values[0]) + "; " +
					b.Names[0].Name + " = " + nodeText(w.p, w.base, a.Values[0]))
				if a.Names[0].IsExported() || b.Names[0].IsExported() {
					m.Exported = true
				}
				for _, obj := range []types.Object{ca, cb} {
					m.Uses = append(m.Uses, w.uses[obj]...)
				}
			}
		}
	}
}

// fileConstExchanges adds the exchanges between the file's package-level numeric constants
// declared one per line (`const minLease = time.Second`), which no block groups.
func (w *teamWalker) fileConstExchanges() {
	var specs []ast.Spec
	for _, d := range w.f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
			specs = append(specs, g.Specs...)
		}
	}
	w.exchange(specs, false)
}

// literal adds the n -> n+1 replacement of a numeric literal.
func (w *teamWalker) literal(lit *ast.BasicLit) {
	switch lit.Kind {
	case token.INT:
		v, err := strconv.ParseInt(strings.ReplaceAll(lit.Value, "_", ""), 0, 64)
		if err == nil {
			w.add(opConstReplace, lit.Pos(), replaceNode(w.p, lit, strconv.FormatInt(v+1, 10)))
		}
	case token.FLOAT:
		v, err := strconv.ParseFloat(strings.ReplaceAll(lit.Value, "_", ""), 64)
		if err == nil {
			w.add(opConstReplace, lit.Pos(), replaceNode(w.p, lit, strconv.FormatFloat(v+1, 'g', -1, 64)))
		}
	}
}

var timeUnits = []string{"Nanosecond", "Microsecond", "Millisecond", "Second", "Minute", "Hour"}

// constUse adds the swap of a constant use: a time unit for the next larger one (Hour for
// Minute), an enum constant of a module package for the next of its type by value. id is
// the constant's identifier, n the expression naming it (id itself or pkg.id).
func (w *teamWalker) constUse(n ast.Expr, id *ast.Ident) {
	c, ok := w.p.Info.Uses[id].(*types.Const)
	if !ok || c.Pkg() == nil {
		return
	}
	qual := ""
	if sel, ok := n.(*ast.SelectorExpr); ok {
		qual = nodeText(w.p, w.base, sel.X) + "."
	}
	if c.Pkg().Path() == timePkg {
		for i, u := range timeUnits {
			if u == c.Name() {
				next := timeUnits[(i+1)%len(timeUnits)]
				if u == "Hour" {
					next = "Minute"
				}
				w.add(opConstSwap, n.Pos(), replaceNode(w.p, n, qual+next))
			}
		}
		return
	}
	named, ok := c.Type().(*types.Named)
	if !ok || !strings.HasPrefix(c.Pkg().Path(), w.module) || named.Obj().Pkg() != c.Pkg() {
		return
	}
	var peers []*types.Const
	scope := c.Pkg().Scope()
	for _, name := range scope.Names() {
		o, ok := scope.Lookup(name).(*types.Const)
		if ok && types.Identical(o.Type(), c.Type()) && (o.Exported() || c.Pkg() == w.p.Types) {
			peers = append(peers, o)
		}
	}
	if len(peers) < 2 {
		return
	}
	sort.SliceStable(peers, func(i, j int) bool { return constant.Compare(peers[i].Val(), token.LSS, peers[j].Val()) })
	for i, o := range peers {
		if o == c {
			w.add(opConstSwap, n.Pos(), replaceNode(w.p, n, qual+peers[(i+1)%len(peers)].Name()))
		}
	}
}

// isDuration reports whether t is time.Duration.
func isDuration(t types.Type) bool {
	n, ok := t.(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == timePkg && n.Obj().Name() == "Duration"
}
