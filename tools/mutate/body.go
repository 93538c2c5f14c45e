package main

import (
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
	"sort"
)

// body walks one function body, with the function literals in it, adding the team's
// mutants of its statements and expressions.
func (w *teamWalker) body(b *ast.BlockStmt) {
	var stack []ast.Node
	ast.Inspect(b, func(n ast.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		w.node(n, stack)
		stack = append(stack, n)
		return true
	})
}

// node adds the mutants of one node; stack holds its ancestors within the body.
func (w *teamWalker) node(n ast.Node, stack []ast.Node) {
	var parent ast.Node
	if len(stack) > 0 {
		parent = stack[len(stack)-1]
	}
	switch n := n.(type) {
	case *ast.BlockStmt:
		_, inIf := parent.(*ast.IfStmt)
		w.statements(n.List, inIf)
	case *ast.CaseClause:
		w.statements(n.Body, false)
	case *ast.CommClause:
		w.statements(n.Body, false)
	case *ast.DeclStmt:
		if g, ok := n.Decl.(*ast.GenDecl); ok && g.Tok == token.CONST {
			w.constDecl(g)
			w.exchange(g.Specs, false)
		}
	case *ast.BasicLit:
		// A duration scaled by a literal (5 * time.Second, left / 10); not a duration compared
		// with or returned as a literal (0), where n+1 is a nanosecond nothing can see.
		b, scaled := parent.(*ast.BinaryExpr)
		scaled = scaled && (b.Op == token.MUL || b.Op == token.QUO)
		if t := w.p.Info.Types[n].Type; scaled && t != nil && isDuration(t) && !inConstDecl(stack) {
			w.literal(n)
		}
	case *ast.SelectorExpr:
		w.constUse(n, n.Sel)
		w.sentinel(n, n.Sel)
		w.status(n)
	case *ast.Ident:
		if sel, ok := parent.(*ast.SelectorExpr); ok && sel.Sel == n {
			return // seen as part of its selector
		}
		w.constUse(n, n)
		w.sentinel(n, n)
	case *ast.CallExpr:
		w.classifier(n)
		if u, ok := parent.(*ast.UnaryExpr); !ok || u.Op != token.NOT {
			w.beforeAfter(n, nil)
		}
	case *ast.UnaryExpr:
		if call, ok := n.X.(*ast.CallExpr); ok && n.Op == token.NOT {
			w.beforeAfter(call, n)
		}
	case *ast.BinaryExpr:
		w.durationCompare(n)
	}
}

// inConstDecl reports whether the innermost declaration around a node is a const one.
func inConstDecl(stack []ast.Node) bool {
	for i := len(stack) - 1; i >= 0; i-- {
		if g, ok := stack[i].(*ast.GenDecl); ok {
			return g.Tok == token.CONST
		}
	}
	return false
}

// syncCalls are the calls statement deletion leaves alone: deleting one is a data race or a
// hang, which make race and goleak find, not these tests.
var syncCalls = map[string]bool{"Lock": true, "Unlock": true, "RLock": true, "RUnlock": true, "Add": true, "Done": true, "Wait": true}

// isSyncCall reports whether e calls a locking or WaitGroup method of package sync.
func (w *teamWalker) isSyncCall(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	s, ok := w.p.Info.Selections[sel]
	return ok && s.Obj().Pkg() != nil && s.Obj().Pkg().Path() == "sync" && syncCalls[s.Obj().Name()]
}

// statements adds the deletion of each deletable statement of one list: assignments (not
// :=), calls, ++/--, sends, defers and go statements; in an if's body, a return that
// returns an error (the error is then dropped and the function goes on).
func (w *teamWalker) statements(list []ast.Stmt, inIf bool) {
	for _, s := range list {
		switch s := s.(type) {
		case *ast.ExprStmt:
			if w.isSyncCall(s.X) {
				continue
			}
		case *ast.AssignStmt:
			if s.Tok == token.DEFINE {
				continue
			}
		case *ast.DeferStmt:
			if w.isSyncCall(s.Call) {
				continue
			}
		case *ast.IncDecStmt, *ast.SendStmt, *ast.GoStmt:
		case *ast.ReturnStmt:
			if !inIf || !w.returnsError(s) {
				continue
			}
		default:
			continue
		}
		// Not the empty text: `if false { stmt }` keeps the imports and variables only the
		// statement used, so the mutant compiles wherever the deletion means anything.
		if m := w.add(opStmtDelete, s.Pos(), replaceNode(w.p, s, "if false { "+nodeText(w.p, w.base, s)+" }")); m != nil {
			m.Orig, m.Mutated = oneLine(nodeText(w.p, w.base, s)), "(deleted)"
		}
	}
}

var errorType = types.Universe.Lookup("error").Type()

// returnsError reports whether a return statement returns an error other than nil.
func (w *teamWalker) returnsError(r *ast.ReturnStmt) bool {
	for _, e := range r.Results {
		if id, ok := e.(*ast.Ident); ok && id.Name == "nil" {
			continue
		}
		t := w.p.Info.Types[e].Type
		if tup, ok := t.(*types.Tuple); ok {
			for i := 0; i < tup.Len(); i++ {
				if types.Identical(tup.At(i).Type(), errorType) {
					return true
				}
			}
		} else if t != nil && types.Identical(t, errorType) {
			return true
		}
	}
	return false
}

// sentinel adds the swap of a package-level error variable (a sentinel: context.Canceled,
// logical.ErrReadOnly, errUnchanged) for the next one of its package by name.
func (w *teamWalker) sentinel(n ast.Expr, id *ast.Ident) {
	v, ok := w.p.Info.Uses[id].(*types.Var)
	if !ok || v.Pkg() == nil || v.Pkg().Scope().Lookup(v.Name()) != v || !types.Identical(v.Type(), errorType) {
		return
	}
	var names []string
	scope := v.Pkg().Scope()
	for _, name := range scope.Names() { // sorted
		o, ok := scope.Lookup(name).(*types.Var)
		if ok && types.Identical(o.Type(), errorType) && (o.Exported() || v.Pkg() == w.p.Types) {
			names = append(names, name)
		}
	}
	w.swapName(n, opErrorClass, v.Name(), names)
}

// swapName adds the mutant replacing the name cur, used as n (an identifier or pkg.name),
// with the name after it in the sorted list names (the first after the last).
func (w *teamWalker) swapName(n ast.Expr, op, cur string, names []string) {
	if len(names) < 2 {
		return
	}
	qual := ""
	if sel, ok := n.(*ast.SelectorExpr); ok {
		qual = nodeText(w.p, w.base, sel.X) + "."
	}
	for i, name := range names {
		if name == cur {
			w.add(op, n.Pos(), replaceNode(w.p, n, qual+names[(i+1)%len(names)]))
		}
	}
}

// statusNeighbour is the HTTP status each status is taken for: the one a confused
// implementation would most likely send or test for instead.
var statusNeighbour = map[int64]int64{
	200: 204, 201: 200, 204: 200, 400: 404, 401: 403, 403: 401, 404: 400, 405: 404, 409: 412,
	412: 409, 429: 503, 500: 502, 501: 500, 502: 503, 503: 502, 504: 502,
}

// status adds the swap of a net/http status constant for its neighbour (502 <-> 503, 400 <-> 404).
func (w *teamWalker) status(sel *ast.SelectorExpr) {
	c, ok := w.p.Info.Uses[sel.Sel].(*types.Const)
	if !ok || c.Pkg() == nil || c.Pkg().Path() != "net/http" || c.Val().Kind() != constant.Int {
		return
	}
	v, ok := constant.Int64Val(c.Val())
	nb, known := statusNeighbour[v]
	if !ok || !known {
		return
	}
	scope := c.Pkg().Scope()
	for _, name := range scope.Names() {
		o, ok := scope.Lookup(name).(*types.Const)
		if ok && len(name) > 6 && name[:6] == "Status" && o.Val().Kind() == constant.Int {
			if x, ok := constant.Int64Val(o.Val()); ok && x == nb {
				w.add(opErrorClass, sel.Pos(), replaceNode(w.p, sel.Sel, name))
				return
			}
		}
	}
}

// classifier adds the swap of a call to an error classifier (a function taking an error and
// returning a bool, such as apiclient.IsRejected) for the next classifier in scope: the
// package's own and those of the module's packages the file imports.
func (w *teamWalker) classifier(call *ast.CallExpr) {
	var fn *types.Func
	switch f := call.Fun.(type) {
	case *ast.Ident:
		fn, _ = w.p.Info.Uses[f].(*types.Func)
	case *ast.SelectorExpr:
		if _, method := w.p.Info.Selections[f]; !method {
			fn, _ = w.p.Info.Uses[f.Sel].(*types.Func)
		}
	}
	if fn == nil || !isClassifier(fn) {
		return
	}
	var names []string
	add := func(pkg *types.Package, qual string) {
		for _, name := range pkg.Scope().Names() {
			if f, ok := pkg.Scope().Lookup(name).(*types.Func); ok && isClassifier(f) && (qual == "" || f.Exported()) {
				names = append(names, qual+name)
			}
		}
	}
	add(w.p.Types, "")
	for _, spec := range w.f.Imports {
		var pn *types.PkgName
		if spec.Name != nil {
			pn, _ = w.p.Info.Defs[spec.Name].(*types.PkgName)
		} else {
			pn, _ = w.p.Info.Implicits[spec].(*types.PkgName)
		}
		if pn != nil && len(pn.Imported().Path()) >= len(w.module) && pn.Imported().Path()[:len(w.module)] == w.module {
			add(pn.Imported(), pn.Name()+".")
		}
	}
	sort.Strings(names)
	cur := nodeText(w.p, w.base, call.Fun)
	for i, name := range names {
		if name == cur && len(names) > 1 {
			w.add(opErrorClass, call.Pos(), replaceNode(w.p, call.Fun, names[(i+1)%len(names)]))
		}
	}
}

// isClassifier reports whether f is a plain function of type func(error) bool.
func isClassifier(f *types.Func) bool {
	sig := f.Type().(*types.Signature)
	return sig.Recv() == nil && !sig.Variadic() && sig.Params().Len() == 1 && sig.Results().Len() == 1 &&
		types.Identical(sig.Params().At(0).Type(), errorType) &&
		types.Identical(sig.Results().At(0).Type(), types.Typ[types.Bool])
}

// beforeAfter adds the boundary swap of a time.Time Before or After call: t.Before(u) (t < u)
// becomes !t.After(u) (t <= u), and the reverse; neg is the ! around the call, if any.
func (w *teamWalker) beforeAfter(call *ast.CallExpr, neg *ast.UnaryExpr) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return
	}
	s, ok := w.p.Info.Selections[sel]
	if !ok || s.Kind() != types.MethodVal || s.Obj().Pkg() == nil || s.Obj().Pkg().Path() != timePkg {
		return
	}
	other := map[string]string{"Before": "After", "After": "Before"}[s.Obj().Name()]
	if other == "" {
		return
	}
	f := w.p.Fset.File(call.Pos())
	args := string(w.p.Src[w.base][f.Offset(sel.End()):f.Offset(call.End())])
	text := nodeText(w.p, w.base, sel.X) + "." + other + args
	if neg != nil {
		w.add(opTimeBoundary, neg.Pos(), replaceNode(w.p, neg, text))
	} else {
		w.add(opTimeBoundary, call.Pos(), replaceNode(w.p, call, "!"+text))
	}
}

// durationCompare adds the boundary swap (< <-> <=, > <-> >=) of a comparison of durations.
func (w *teamWalker) durationCompare(b *ast.BinaryExpr) {
	swap := map[token.Token]token.Token{token.LSS: token.LEQ, token.LEQ: token.LSS, token.GTR: token.GEQ, token.GEQ: token.GTR}[b.Op]
	if swap == token.ILLEGAL {
		return
	}
	if !isDuration(w.p.Info.Types[b.X].Type) && !isDuration(w.p.Info.Types[b.Y].Type) {
		return
	}
	off := w.p.Fset.File(b.Pos()).Offset(b.OpPos)
	w.add(opTimeBoundary, b.OpPos, Edit{Start: off, End: off + len(b.Op.String()), New: swap.String()})
}
