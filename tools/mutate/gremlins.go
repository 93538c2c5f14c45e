package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// gremlinsSwaps is gremlins v0.6.0's token table (internal/engine/mappings.go): for each of
// its mutant types, the token it puts in place of each token it mutates. gremlins' dry run
// says which type applies at which line:column; the edit is this swap of the token there.
var gremlinsSwaps = map[string]map[string]string{
	"ARITHMETIC_BASE":         {"+": "-", "*": "/", "/": "*", "%": "*", "-": "+"},
	"CONDITIONALS_BOUNDARY":   {">=": ">", ">": ">=", "<=": "<", "<": "<="},
	"CONDITIONALS_NEGATION":   {"==": "!=", ">=": "<", ">": "<=", "<=": ">", "<": ">=", "!=": "=="},
	"INCREMENT_DECREMENT":     {"--": "++", "++": "--"},
	"INVERT_ASSIGNMENTS":      {"+=": "-=", "*=": "/=", "/=": "*=", "%=": "%=", "-=": "+="},
	"INVERT_BITWISE":          {"&": "|", "|": "&", "^": "&", "&^": "&", "<<": ">>", ">>": "<<"},
	"INVERT_BWASSIGN":         {"&=": "|=", "|=": "&=", "^=": "&=", "&^=": "&=", "<<=": ">>=", ">>=": "<<="},
	"INVERT_LOGICAL":          {"&&": "||", "||": "&&"},
	"INVERT_LOOPCTRL":         {"break": "continue", "continue": "break"},
	"INVERT_NEGATIVES":        {"-": "+"},
	"REMOVE_SELF_ASSIGNMENTS": {"+=": "=", "&=": "=", "&^=": "=", "*=": "=", "|=": "=", "/=": "=", "%=": "=", "<<=": "=", ">>=": "=", "-=": "=", "^=": "="},
}

// gremlinsFlags enables gremlins' mutant types beyond its five defaults: the others
// (&& <-> ||, break <-> continue, x += y -> x = y, ...) are few here and cheap.
//
// Not INVERT_BITWISE: gremlins applies it to unary & too, so every address-of (&x, &T{})
// becomes |x, which does not parse; this code has no binary bitwise operator in the files
// measured.
var gremlinsFlags = []string{"--arithmetic-base", "--conditionals-boundary", "--conditionals-negation",
	"--increment-decrement", "--invert-assignments", "--invert-bwassign",
	"--invert-logical", "--invert-loopctrl", "--invert-negatives", "--remove-self-assignments"}

// gremlinsOutput is the part of gremlins' --output JSON used here.
type gremlinsOutput struct {
	Files []struct {
		FileName  string `json:"file_name"`
		Mutations []struct {
			Type   string `json:"type"`
			Line   int    `json:"line"`
			Column int    `json:"column"`
		} `json:"mutations"`
	} `json:"files"`
}

// gremlinsMutants runs `gremlins unleash --dry-run` on p's directory, every other file of
// it excluded with -E, and returns its mutants of the files in bases.
//
// gremlins' own coverage run (`go test -cover ./dir/...`, the whole module for the root
// package) is emptied with GOFLAGS=-run=^$: its statuses are not used, since coverage is
// measured per test here (see cover.go), and gremlins cannot restrict its run to one package.
func gremlinsMutants(bin, root, scratch string, p *Package, bases []string) ([]*Mutant, error) {
	want := map[string]bool{}
	for _, b := range bases {
		want[b] = true
	}
	args := []string{"unleash", "--dry-run", "--output", filepath.Join(scratch, "gremlins.json")}
	args = append(args, gremlinsFlags...)
	args = append(args, "-E", "/") // files of subdirectories (other packages)
	var others []string
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !want[e.Name()] && strings.HasSuffix(e.Name(), ".go") {
			others = append(others, regexp.QuoteMeta(e.Name()))
		}
	}
	if len(others) > 0 {
		args = append(args, "-E", "^("+strings.Join(others, "|")+")$")
	}
	args = append(args, p.Dir)
	cmd := exec.Command(bin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-run=^$")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gremlins %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	data, err := os.ReadFile(filepath.Join(scratch, "gremlins.json"))
	if err != nil {
		return nil, fmt.Errorf("gremlins wrote no output: %v\n%s", err, out.String())
	}
	var res gremlinsOutput
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("gremlins output: %v", err)
	}
	var ms []*Mutant
	for _, f := range res.Files {
		base := filepath.Base(f.FileName)
		if !want[base] || filepath.Dir(f.FileName) != "." {
			continue
		}
		for _, g := range f.Mutations {
			m, err := gremlinsEdit(p, base, g.Type, g.Line, g.Column)
			if err != nil {
				return nil, err
			}
			if m != nil {
				ms = append(ms, m)
			}
		}
	}
	return ms, nil
}

// goTokens are the tokens gremlins mutates, longest first, so that "<<=" is read before "<".
var goTokens = []string{"&^=", "<<=", ">>=", "continue", "break", "&&", "||", "<<", ">>", "&^", "++", "--",
	"+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "&", "|", "^", "<", ">"}

// gremlinsEdit makes the mutant of gremlins type typ at line:col of one of p's files, or
// none where gremlins' table leaves the token as it is (INVERT_ASSIGNMENTS maps %= to %=).
func gremlinsEdit(p *Package, base, typ string, line, col int) (*Mutant, error) {
	swaps, ok := gremlinsSwaps[typ]
	if !ok {
		return nil, fmt.Errorf("gremlins mutant type %s is unknown here", typ)
	}
	tf := p.Fset.File(p.Files[base].Pos())
	off := tf.Offset(tf.LineStart(line)) + col - 1
	src := p.Src[base]
	for _, t := range goTokens {
		if bytes.HasPrefix(src[off:], []byte(t)) {
			repl, ok := swaps[t]
			if !ok {
				return nil, fmt.Errorf("%s:%d:%d: gremlins says %s, but the token there is %q", base, line, col, typ, t)
			}
			if repl == t {
				return nil, nil
			}
			edit := Edit{Start: off, End: off + len(t), New: repl}
			if a, b := binaryOps[t], binaryOps[repl]; a != 0 && b != 0 && a.Precedence() != b.Precedence() {
				edit = parenthesized(p, base, off, t, repl)
			}
			m := newMutant(p, base, typ, tf.Pos(off), edit)
			m.Origin = "gremlins"
			return m, nil
		}
	}
	return nil, fmt.Errorf("%s:%d:%d: no token gremlins mutates", base, line, col)
}

// binaryOps maps each binary operator's text to its token.
var binaryOps = func() map[string]token.Token {
	ops := map[string]token.Token{}
	for t := token.ADD; t <= token.TILDE; t++ {
		if t.Precedence() > 0 {
			ops[t.String()] = t
		}
	}
	return ops
}()

// parenthesized is the edit swapping the binary operator t at off for repl, which binds
// differently (&& and ||): the whole expression, in parentheses, as gremlins' go/printer
// writes its mutated tree, so that a && b && c becomes (a || b) && c, not a || (b && c).
func parenthesized(p *Package, base string, off int, t, repl string) Edit {
	tf := p.Fset.File(p.Files[base].Pos())
	edit := Edit{Start: off, End: off + len(t), New: repl}
	ast.Inspect(p.Files[base], func(n ast.Node) bool {
		if b, ok := n.(*ast.BinaryExpr); ok && tf.Offset(b.OpPos) == off {
			x, y := tf.Offset(b.X.Pos()), tf.Offset(b.Y.End())
			src := p.Src[base]
			edit = Edit{Start: x, End: y, New: "(" + string(src[x:off]) + repl + string(src[off+len(t):y]) + ")"}
		}
		return true
	})
	return edit
}
