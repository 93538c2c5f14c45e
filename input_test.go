package apitokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/errutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// inputSamples are a request to each path of the mount, with an operation it has; every
// path has one (TestInputSamplesCoverEveryPath), so the tests below reach every field.
var inputSamples = []struct {
	op   logical.Operation
	path string
}{
	{logical.UpdateOperation, "config/a"},
	{logical.ListOperation, "config/"},
	{logical.ReadOperation, "creds/a"},
	{logical.UpdateOperation, "rotate-root/a"},
	{logical.ReadOperation, "metrics"},
	{logical.UpdateOperation, "settings"},
}

// secretMarker is in every secret value the tests give; no error or log may hold it.
const secretMarker = "s3cret-marker-9d2f"

// inputErrs sends a request as Vault does, a write's existence check first, and returns
// the existence check's error and the request's error message ("" for none). Both must be
// answered as bad input: the check's error a user error (a 400), the request's an error
// response.
func inputErrs(t *testing.T, h *harness, op logical.Operation, path string, data map[string]any) (existence, request string) {
	t.Helper()
	req := &logical.Request{Operation: op, Path: path, Data: data, Storage: h.storage, MountPoint: "apitokens/"}
	if op == logical.CreateOperation || op == logical.UpdateOperation {
		if _, _, err := h.b.HandleExistenceCheck(context.Background(), req); err != nil {
			if !errors.As(err, new(errutil.UserError)) {
				t.Fatalf("%s %s: existence check error %T %v is not a user error (400)", op, path, err, err)
			}
			existence = err.Error()
		}
	}
	resp, err := h.b.HandleRequest(context.Background(), req)
	if resp != nil && resp.IsError() {
		request = respErr(resp).(string)
	} else if err != nil {
		request = err.Error()
	}
	return existence, request
}

func TestInputSamplesCoverEveryPath(t *testing.T) {
	b := newHarness(t).b
	for _, p := range b.Paths {
		covered := false
		for _, s := range inputSamples {
			covered = covered || (b.Route(s.path) == p && hasOperation(p, s.op))
		}
		if !covered {
			t.Errorf("path %s has no request in inputSamples", p.Pattern)
		}
	}
}

// A value that does not convert to its field's type is a 400 whose message starts with
// the field's name and says, in the README's words, what the field takes: on every path,
// for every typed field, on the existence check of a write as on the request itself.
func TestInputTypeErrorsNameTheField(t *testing.T) {
	h := newHarness(t)
	for _, s := range inputSamples {
		path, captures := h.b.inputRoute(s.path)
		for field, schema := range path.Fields {
			if _, ok := captures[field]; ok {
				continue
			}
			var bad any
			var want string
			switch schema.Type {
			case framework.TypeDurationSecond:
				bad, want = "abc", field+`: must be a duration such as 90s, 10m or 1h (a bare number is seconds), not "abc"`
			case framework.TypeBool:
				bad, want = "maybe", field+`: must be true or false, not "maybe"`
			case framework.TypeString:
				bad, want = []any{"x", secretMarker}, field+": must be a string, not a list"
			default:
				t.Fatalf("%s: field %s has type %s, which this test does not know", s.path, field, schema.Type)
			}
			existence, request := inputErrs(t, h, s.op, s.path, map[string]any{field: bad})
			if request != want {
				t.Errorf("%s %s=%v: got %q, want %q", s.path, field, bad, request, want)
			}
			if path.ExistenceCheck != nil && existence != want {
				t.Errorf("%s %s=%v: existence check says %q, want %q", s.path, field, bad, existence, want)
			}
		}
	}
	// Negative durations, which the framework refuses too, as text and as a number.
	for _, tc := range []struct {
		op    logical.Operation
		path  string
		field string
		value any
		want  string
	}{
		{logical.UpdateOperation, "config/a", "max_ttl", "-5m", `max_ttl: must be a duration such as 90s, 10m or 1h (a bare number is seconds), not negative ("-5m")`},
		{logical.ReadOperation, "creds/a", "min_ttl", -5, `min_ttl: must be a duration such as 90s, 10m or 1h (a bare number is seconds), not negative (-5)`},
		{logical.ReadOperation, "creds/a", "min_ttl", json.Number("-60"), `min_ttl: must be a duration such as 90s, 10m or 1h (a bare number is seconds), not negative (-60)`},
		{logical.UpdateOperation, "config/a", "max_ttl", true, `max_ttl: must be a duration such as 90s, 10m or 1h (a bare number is seconds), not true`},
		{logical.UpdateOperation, "settings", "metrics_per_config", map[string]any{"a": 1}, `metrics_per_config: must be true or false, not a map`},
		{logical.UpdateOperation, "config/a", "token_reuse", 3, ""}, // a number is a bool to the framework
	} {
		if _, got := inputErrs(t, h, tc.op, tc.path, map[string]any{tc.field: tc.value}); got != tc.want && tc.want != "" {
			t.Errorf("%s %s=%v: got %q, want %q", tc.path, tc.field, tc.value, got, tc.want)
		} else if tc.want == "" && strings.HasPrefix(got, tc.field+":") {
			t.Errorf("%s %s=%v: refused: %q", tc.path, tc.field, tc.value, got)
		}
	}
	// Of several bad fields, always the first in alphabetical order.
	for range 20 {
		_, got := inputErrs(t, h, logical.UpdateOperation, "config/a", map[string]any{
			"token_reuse": "maybe", "min_token_ttl": "abc", "max_ttl": "abc", "request_timeout": "abc"})
		if !strings.HasPrefix(got, "max_ttl: ") {
			t.Fatalf("several bad fields: %q names another first", got)
		}
	}
}

// No error and no log line repeats a secret, whatever its shape: a map or a list (whose
// value the framework's own message would print), or text too long. A non-secret bad
// value is repeated, cut short.
func TestInputNeverEchoesASecret(t *testing.T) {
	h := newHarness(t)
	schema := configFields()
	secrets := 0
	for field, s := range schema {
		if s.DisplayAttrs == nil || !s.DisplayAttrs.Sensitive {
			continue
		}
		secrets++
		long := strings.Repeat(secretMarker, maxBytes(field)/len(secretMarker)+1)
		for _, v := range []any{map[string]any{"k": secretMarker}, []any{secretMarker}, []any{secretMarker, "x"}, long} {
			for _, op := range []logical.Operation{logical.CreateOperation, logical.UpdateOperation} {
				existence, request := inputErrs(t, h, op, "config/a", map[string]any{field: v, "provider": "opsnow"})
				for _, msg := range []string{existence, request} {
					if !strings.HasPrefix(msg, field+": must be ") || strings.Contains(msg, secretMarker) ||
						strings.Contains(msg, fmt.Sprint(len(long))) {
						t.Errorf("%s given %T: message %.200q", field, v, msg)
					}
				}
			}
		}
	}
	if secrets != 5 { // api_key (OpsNow's), api_secret, client_secret, password, refresh_token
		t.Errorf("%d secret fields, want 5", secrets)
	}
	assertNoSecrets(t, "log", h.logs.String(), secretMarker)
	// Nor would a secret field of another type, however the value is given.
	for _, typ := range []framework.FieldType{framework.TypeBool, framework.TypeDurationSecond, framework.TypeInt} {
		schema := &framework.FieldSchema{Type: typ, DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}}
		for _, v := range []any{secretMarker, json.Number("987654321987.5"), true, 987654321987.5} {
			msg := checkField("pin", schema, v, false)
			if strings.Contains(msg, secretMarker) || strings.Contains(msg, "987654321987") || strings.Contains(msg, ", not") ||
				v == secretMarker && !strings.HasPrefix(msg, "pin: must be ") {
				t.Errorf("a secret %s given %#v: %q", typ, v, msg)
			}
		}
	}

	bad := strings.Repeat("é", 500) // 1,000 bytes, under the limit: a type error, cut short
	_, msg := inputErrs(t, h, logical.UpdateOperation, "config/a", map[string]any{"max_ttl": bad})
	want := `max_ttl: must be a duration such as 90s, 10m or 1h (a bare number is seconds), not "` +
		strings.Repeat("é", 20) + `…" (1000 bytes)`
	if msg != want {
		t.Errorf("a long bad duration: got %q, want %q", msg, want)
	}
}

// Every field of every path, and the name captured from a path, is bounded by the table
// or the default: a value one byte over is a 400 naming the field and the limit (and,
// for a non-secret, the length given); a value at the limit is not refused for its length.
func TestInputLimitsCoverEveryField(t *testing.T) {
	h := newHarness(t)
	named := map[string]bool{}
	for _, s := range inputSamples {
		path, captures := h.b.inputRoute(s.path)
		for field, schema := range path.Fields {
			named[field] = true
			limit := maxBytes(field)
			secret := schema.DisplayAttrs != nil && schema.DisplayAttrs.Sensitive
			for _, n := range []int{limit + 1, limit} {
				reqPath, data := s.path, map[string]any{field: strings.Repeat("7", n)}
				if _, ok := captures[field]; ok {
					reqPath, data = strings.TrimSuffix(s.path, captures[field])+strings.Repeat("n", n), nil
				}
				existence, request := inputErrs(t, h, s.op, reqPath, data)
				want := fmt.Sprintf("%s: must be at most %d bytes", field, limit)
				if !secret {
					want += fmt.Sprintf(" (this one has %d)", n)
				}
				switch {
				case n > limit && !strings.HasPrefix(request, want):
					t.Errorf("%s %s of %d bytes: got %.200q, want %q", s.path, field, n, request, want)
				case n > limit && path.ExistenceCheck != nil && !strings.HasPrefix(existence, want):
					t.Errorf("%s %s of %d bytes: existence check says %.200q, want %q", s.path, field, n, existence, want)
				case n == limit && (strings.Contains(request, "must be at most") || strings.Contains(existence, "must be at most")):
					t.Errorf("%s %s of %d bytes (the limit) refused: %q %q", s.path, field, n, existence, request)
				}
			}
		}
	}
	// Text in other shapes: a long number in a JSON body, bytes.
	for field, v := range map[string]any{"max_ttl": json.Number(strings.Repeat("1", 1025)),
		"api_secret": []byte(strings.Repeat("x", 4097))} {
		if _, msg := inputErrs(t, h, logical.UpdateOperation, "config/a", map[string]any{field: v}); !strings.HasPrefix(msg,
			fmt.Sprintf("%s: must be at most %d bytes", field, maxBytes(field))) {
			t.Errorf("%s as %T over the limit: %.200q", field, v, msg)
		}
	}
	for field := range maxFieldBytes {
		if !named[field] {
			t.Errorf("maxFieldBytes bounds %s, which no path has", field)
		}
	}
}

// The name is bounded on every path that takes one; a config stored under a longer name
// before the limit existed can still be read and deleted, not used.
func TestInputNameLimit(t *testing.T) {
	h := newHarness(t)
	long := strings.Repeat("n", maxBytes("name")+1)
	for _, s := range []struct {
		op   logical.Operation
		path string
	}{{logical.CreateOperation, "config/"}, {logical.UpdateOperation, "config/"}, {logical.ReadOperation, "creds/"},
		{logical.UpdateOperation, "rotate-root/"}} {
		_, msg := inputErrs(t, h, s.op, s.path+long, h.offblocksConfig())
		if !strings.HasPrefix(msg, "name: must be at most 128 bytes (this one has 129)") {
			t.Errorf("%s %s<129 bytes>: %.200q", s.op, s.path, msg)
		}
	}
	atLimit := strings.Repeat("n", maxBytes("name"))
	h.mustDo(logical.CreateOperation, "config/"+atLimit, h.offblocksConfig())
	h.creds(atLimit)

	if err := h.b.putConfig(context.Background(), h.storage, long, h.stored(atLimit)); err != nil {
		t.Fatal(err)
	}
	if resp := h.mustDo(logical.ReadOperation, "config/"+long, nil); resp == nil || resp.Data["api_key"] != obKey {
		t.Fatalf("read of a config stored under a long name: %v", resp)
	}
	if _, msg := inputErrs(t, h, logical.ReadOperation, "creds/"+long, nil); !strings.Contains(msg, "can still be read and deleted") {
		t.Errorf("creds of a config stored under a long name: %.300q", msg)
	}
	h.mustDo(logical.DeleteOperation, "config/"+long, nil)
	if resp := h.mustDo(logical.ReadOperation, "config/"+long, nil); resp != nil {
		t.Fatalf("not deleted: %v", resp.Data)
	}
}

// Whatever the framework takes, the check takes too, and it refuses what the framework
// refuses: nothing accepted before is refused, but for its length.
func TestInputKeepsWhatTheFrameworkAccepts(t *testing.T) {
	values := []any{"", "abc", "12", "-5", "-0s", "1d", "1.5", "90s", "1h30m", " 5m", "true", "T", "0", "FALSE", "yes",
		json.Number("600"), json.Number("-1"), json.Number("1.5"), 3.7, -2, 0, true, false, nil,
		[]any{"x"}, []any{}, map[string]any{"a": "b"}, []byte("hi")}
	for _, typ := range []framework.FieldType{framework.TypeString, framework.TypeBool, framework.TypeDurationSecond} {
		schema := &framework.FieldSchema{Type: typ}
		for _, v := range values {
			_, frameworkErr := parseField("f", schema, v)
			msg := checkField("f", schema, v, false)
			if (frameworkErr == nil) != (msg == "") {
				t.Errorf("%s %#v: the framework says %v, the check says %q", typ, v, frameworkErr, msg)
			}
		}
	}
	// And through the backend: durations with a day unit or as JSON numbers, booleans as
	// numbers or letters.
	h := newHarness(t)
	data := h.offblocksConfig()
	for k, v := range map[string]any{"max_ttl": "1d", "request_timeout": json.Number("60"), "min_token_ttl": "",
		"token_reuse": "t", "disable_automated_rotation": json.Number("0")} {
		data[k] = v
	}
	h.mustDo(logical.CreateOperation, "config/ob", data)
	if got := h.mustDo(logical.ReadOperation, "config/ob", nil).Data; got["max_ttl"] != int64(86400) || got["token_reuse"] != true {
		t.Errorf("read = %v", got)
	}
}

// Help, operations a path does not have and unknown paths are the framework's, as before.
func TestInputLeavesTheRestToTheFramework(t *testing.T) {
	h := newHarness(t)
	long := strings.Repeat("n", 1000)
	resp, err := h.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.HelpOperation,
		Path: "config/" + long, Data: map[string]any{"max_ttl": "abc"}, Storage: h.storage})
	if err != nil || resp == nil || resp.Data["help"] == nil {
		t.Errorf("help: %v %v", resp, err)
	}
	_, msg := inputErrs(t, h, logical.DeleteOperation, "creds/"+long, map[string]any{"min_ttl": "abc"})
	if msg != logical.ErrUnsupportedOperation.Error() {
		t.Errorf("an operation creds does not have: %q", msg)
	}
	_, msg = inputErrs(t, h, logical.ReadOperation, "nothing/"+long, nil)
	if msg != logical.ErrUnsupportedPath.Error() {
		t.Errorf("an unknown path: %q", msg)
	}
	// The existence check of a path that has none answers "none", whatever the input (the
	// request itself refuses it); one for an operation that is not a write is an error.
	bad := map[string]any{"metrics_per_config": "maybe", "max_ttl": "abc"}
	for _, tc := range []struct {
		op   logical.Operation
		path string
		want string
	}{{logical.UpdateOperation, "settings", ""}, {logical.UpdateOperation, "rotate-root/" + long, ""},
		{logical.ReadOperation, "config/a", "incorrect operation type"}} {
		found, _, err := h.b.HandleExistenceCheck(context.Background(), &logical.Request{Operation: tc.op,
			Path: tc.path, Data: bad, Storage: h.storage})
		if found || (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("existence check of %s %.20s: %v %v, want %q", tc.op, tc.path, found, err, tc.want)
		}
	}
	// A name in the body of a request to a path with a name is replaced by the path's (the
	// framework warns): it is not checked.
	if _, msg := inputErrs(t, h, logical.ReadOperation, "creds/a", map[string]any{"name": []any{long}}); msg != `no config named "a"` {
		t.Errorf("a name in the body: %q", msg)
	}
}
