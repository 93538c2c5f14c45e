package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/token"
	"sort"
	"strings"
)

// Edit replaces the bytes [Start, End) of a file with New.
type Edit struct {
	Start, End int
	New        string
}

// Mutant is one change to one file. Its ID (file:line:col:OPERATOR, with a #n suffix when one
// position has several mutants of one operator) is stable as long as the file's text before
// that position is; equivalent.txt names mutants by it.
type Mutant struct {
	ID       string
	File     string // module-relative path
	Base     string // base name within Pkg
	Pkg      *Package
	Line     int
	Col      int
	Operator string // gremlins' name (ARITHMETIC_BASE, ...) or the team's (STATEMENT_DELETION, ...)
	Origin   string // "gremlins" or "team"
	Edits    []Edit // non-overlapping, any order
	Orig     string // what the reader sees replaced (one line)
	Mutated  string // what replaces it (one line)

	// Decl: the mutant lies in a package-level declaration, which coverage profiles do not
	// count; Uses are the positions (offsets in the same file or elsewhere in the package) that
	// stand for it: where its declared names are used in function bodies.
	Decl     bool
	Exported bool // a Decl mutant of an exported name: it may be used in other packages
	Uses     []token.Position

	// Filled in by the run.
	Status    string // KILLED, LIVED, TIMED OUT, NOT COVERED, NOT VIABLE, EQUIVALENT
	Tests     int    // how many tests covered it
	Seconds   float64
	Detail    string // the failing test, or the compile error of a NOT VIABLE mutant
	Reason    string // for EQUIVALENT: the reason from equivalent.txt
	Duplicate bool   // same edits as an earlier mutant: not run, not counted
	Schema    int    // its number in its file's schema build (schema.go), 0 if it is built alone
}

// apply returns src with the mutant's edits made.
func (m *Mutant) apply(src []byte) []byte {
	edits := append([]Edit(nil), m.Edits...)
	sort.Slice(edits, func(i, j int) bool { return edits[i].Start > edits[j].Start })
	out := append([]byte(nil), src...)
	for _, e := range edits {
		out = append(out[:e.Start:e.Start], append([]byte(e.New), out[e.End:]...)...)
	}
	return out
}

// key identifies the change itself, for finding duplicates (gremlins' INVERT_NEGATIVES and
// ARITHMETIC_BASE both turn a binary - into +).
func (m *Mutant) key() string {
	var sb strings.Builder
	sb.WriteString(m.File)
	edits := append([]Edit(nil), m.Edits...)
	sort.Slice(edits, func(i, j int) bool { return edits[i].Start < edits[j].Start })
	for _, e := range edits {
		fmt.Fprintf(&sb, "|%d:%d:%s", e.Start, e.End, e.New)
	}
	return sb.String()
}

// oneLine collapses white space (including line breaks) and shortens s for a report.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 130 {
		s = s[:127] + "..."
	}
	return s
}

// describe sets Orig and Mutated to the source lines the edits touch, before and after: a
// reader sees `if ttl < minLease {` → `if ttl <= minLease {` rather than `<` → `<=`.
func (m *Mutant) describe(src []byte) {
	lo, hi := len(src), 0
	for _, e := range m.Edits {
		lo, hi = min(lo, e.Start), max(hi, e.End)
	}
	if len(m.Edits) > 1 { // a swap of two declarations: show each change
		var before, after []string
		for _, e := range m.Edits {
			before = append(before, string(src[e.Start:e.End]))
			after = append(after, e.New)
		}
		m.Orig, m.Mutated = oneLine(strings.Join(before, "; ")), oneLine(strings.Join(after, "; "))
		return
	}
	e := m.Edits[0]
	start := bytes.LastIndexByte(src[:lo], '\n') + 1
	end := len(src)
	if i := bytes.IndexByte(src[hi:], '\n'); i >= 0 {
		end = hi + i
	}
	// A long line is shown around the change, so that the two texts differ where the eye is.
	from, to := start, end
	if end-start > 110 {
		from, to = max(start, lo-50), min(end, hi+50)
	}
	before, after := string(src[from:to]), string(src[from:lo])+e.New+string(src[hi:to])
	if from > start {
		before, after = "..."+before, "..."+after
	}
	if to < end {
		before, after = before+"...", after+"..."
	}
	m.Orig, m.Mutated = oneLine(before), oneLine(after)
	if m.Mutated == "" {
		m.Mutated = "(deleted)"
	}
}

// nodeText is the source text of n.
func nodeText(p *Package, base string, n ast.Node) string {
	f := p.Fset.File(n.Pos())
	return string(p.Src[base][f.Offset(n.Pos()):f.Offset(n.End())])
}

// newMutant makes a mutant of one file of p at n's position.
func newMutant(p *Package, base, op string, at token.Pos, edits ...Edit) *Mutant {
	pos := p.Fset.Position(at)
	m := &Mutant{File: p.Rel(base), Base: base, Pkg: p, Line: pos.Line, Col: pos.Column,
		Operator: op, Origin: "team", Edits: edits}
	m.describe(p.Src[base])
	return m
}

// replaceNode is the edit replacing n's text with s.
func replaceNode(p *Package, n ast.Node, s string) Edit {
	f := p.Fset.File(n.Pos())
	return Edit{Start: f.Offset(n.Pos()), End: f.Offset(n.End()), New: s}
}

// assignIDs sorts mutants by file, position and operator and gives each its ID.
func assignIDs(ms []*Mutant) {
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		if a.Operator != b.Operator {
			return a.Operator < b.Operator
		}
		return a.key() < b.key()
	})
	seen := map[string]int{}
	for _, m := range ms {
		id := fmt.Sprintf("%s:%d:%d:%s", m.File, m.Line, m.Col, m.Operator)
		seen[id]++
		if n := seen[id]; n > 1 {
			id = fmt.Sprintf("%s#%d", id, n)
		}
		m.ID = id
	}
}
