package apitokens

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/errutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// maxFieldBytes is the longest value, in bytes, that each field of every path takes, and
// each name captured from a request path; a field not listed takes defaultMaxFieldBytes.
// Each bound is far above any real value and far below what costs anything: a config is
// kept in memory, seal-wrapped in storage, and sent to the provider on every mint. The
// credential fields' bounds are their providers' (registry.Field.MaxBytes; the larger where
// two providers share a name).
var maxFieldBytes = withCredentialLimits(map[string]int{
	// A config's name is a storage key, part of every lease id and a metrics label.
	"name": 128,
	// The longest URL that browsers and proxies commonly pass.
	"base_url": 2 << 10,
	// A cron expression: five fields.
	"rotation_schedule": 256,
})

// withCredentialLimits adds the credential fields' bounds to m.
func withCredentialLimits(m map[string]int) map[string]int {
	for _, f := range credentialFields {
		m[f.name] = f.maxBytes
	}
	return m
}

// defaultMaxFieldBytes bounds every other field: durations, booleans, provider,
// grant_type, format, rotation_policy.
const defaultMaxFieldBytes = registry.DefaultMaxBytes

// maxEchoBytes is how much of a bad non-secret value an error message repeats.
const maxEchoBytes = 40

// maxBytes is the longest value field takes.
func maxBytes(field string) int {
	if n, ok := maxFieldBytes[field]; ok {
		return n
	}
	return defaultMaxFieldBytes
}

// HandleRequest checks the request's input first (checkInput), so that bad input is a 400
// whose message starts with the field's name, says what the field takes, and never repeats
// a secret; then the framework handles the request as usual.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if msg := b.checkInput(req, false); msg != "" {
		// A 400 in Vault; a nil error, as the framework answers its own validation.
		return logical.ErrorResponse(msg), nil
	}
	resp, err := b.Backend.HandleRequest(ctx, req)
	inlineOpenAPIRefs(req, resp) // openapi.go: Vault drops the document's $refs
	return resp, err
}

// HandleExistenceCheck checks the request's input as HandleRequest does. Vault runs a
// path's existence check before every write to it, and the framework converts the input
// there first: without this, a config write's type error would be the framework's (which
// may repeat the value given, and which Vault also logs).
func (b *backend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (bool, bool, error) {
	if msg := b.checkInput(req, true); msg != "" {
		return false, false, errutil.UserError{Err: msg}
	}
	return b.Backend.HandleExistenceCheck(ctx, req)
}

// inputRoutes are the mount's path patterns, compiled once, in the framework's order.
type inputRoutes struct {
	once sync.Once
	res  []*regexp.Regexp
}

// inputRoute finds the path that the framework routes p to, and the values its pattern
// captures (as the framework's own routing does, whose result it does not expose).
func (b *backend) inputRoute(p string) (*framework.Path, map[string]string) {
	b.routes.once.Do(func() {
		b.Backend.Route("") // the framework anchors its patterns on first use
		for _, path := range b.Paths {
			b.routes.res = append(b.routes.res, regexp.MustCompile(path.Pattern))
		}
	})
	for i, re := range b.routes.res {
		m := re.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		var captures map[string]string
		for j, name := range re.SubexpNames() {
			if name != "" {
				if captures == nil {
					captures = make(map[string]string)
				}
				captures[name] = m[j]
			}
		}
		return b.Paths[i], captures
	}
	return nil, nil
}

// checkInput returns what is wrong with the request's input, or "". Every value the path's
// schema declares, given in the request's data or captured from its path, must convert to
// the field's type by the framework's own rules (so that nothing the framework takes is
// refused here) and be at most maxBytes long. Only what the framework would validate is
// checked: a request to an operation the path has (not help, nor a lease or rollback
// operation, nor an operation the framework refuses first), or the existence check of a
// write to a path that has one. A path's stored object can always be read and deleted,
// whatever the length of its name: it may predate the limit. Of several bad fields, the
// first in alphabetical order is named, so the answer does not vary.
func (b *backend) checkInput(req *logical.Request, existence bool) string {
	// The common request (a creds read) has no data, and a path no longer than the name's
	// limit captures no longer name: nothing to check, and no route to find.
	if len(req.Data) == 0 && len(req.Path) <= maxBytes("name") {
		return ""
	}
	path, captures := b.inputRoute(req.Path)
	switch {
	case path == nil:
		return ""
	case existence && (path.ExistenceCheck == nil ||
		req.Operation != logical.CreateOperation && req.Operation != logical.UpdateOperation):
		return ""
	case !existence && !hasOperation(path, req.Operation):
		return ""
	}
	first, msg := "", ""
	consider := func(field, m string) {
		if m != "" && (msg == "" || field < first) {
			first, msg = field, m
		}
	}
	for k, v := range req.Data {
		if _, captured := captures[k]; captured {
			continue // the framework takes the path's value instead
		}
		if schema, ok := path.Fields[k]; ok {
			consider(k, checkField(k, schema, v, false))
		}
	}
	_, deletable := path.Operations[logical.DeleteOperation]
	if !(req.Operation == logical.DeleteOperation || req.Operation == logical.ReadOperation && deletable) {
		for k, v := range captures {
			if schema, ok := path.Fields[k]; ok {
				consider(k, checkField(k, schema, v, true))
			}
		}
	}
	return msg
}

// hasOperation reports whether path handles op (as the framework finds a callback).
func hasOperation(path *framework.Path, op logical.Operation) bool {
	if path.Operations != nil {
		_, ok := path.Operations[op]
		return ok
	}
	_, ok := path.Callbacks[op]
	return ok
}

// checkField returns what is wrong with value v of field, or "". A secret's value is never
// repeated, nor its length; a non-secret's is, cut to maxEchoBytes.
func checkField(field string, schema *framework.FieldSchema, v any, captured bool) string {
	limit := maxBytes(field)
	secret := schema.DisplayAttrs != nil && schema.DisplayAttrs.Sensitive
	tooLong := func(n int) string {
		msg := fmt.Sprintf("%s: must be at most %d bytes", field, limit)
		if !secret {
			msg += fmt.Sprintf(" (this one has %d)", n)
		}
		if captured {
			msg += "; a config stored under a longer name before this limit can still be read and deleted"
		}
		return msg
	}
	if n, ok := rawLen(v); ok && n > limit {
		return tooLong(n)
	}
	if _, ok := v.(string); ok && schema.Type == framework.TypeString {
		return "" // the framework takes any string as it is, and it is short enough
	}
	if _, err := parseField(field, schema, v); err != nil {
		return fmt.Sprintf("%s: must be %s", field, expected(field, schema, v, given(v, secret)))
	}
	return "" // what converts from a value other than text is short: a number or a boolean
}

// parseField converts v as the framework converts field's input.
func parseField(field string, schema *framework.FieldSchema, v any) (any, error) {
	d := framework.FieldData{Raw: map[string]any{field: v}, Schema: map[string]*framework.FieldSchema{field: schema}}
	got, _, err := d.GetOkErr(field)
	return got, err
}

// durationForms is how the README says a duration is written.
const durationForms = "such as 90s, 10m or 1h (a bare number is seconds)"

// expected says, in the README's words, what field of schema takes, and what was given
// instead (got; "" says nothing).
func expected(field string, schema *framework.FieldSchema, v any, got string) string {
	not := ""
	if got != "" {
		not = ", not " + got
	}
	switch schema.Type {
	case framework.TypeDurationSecond:
		signed := *schema
		signed.Type = framework.TypeSignedDurationSecond
		if n, err := parseField(field, &signed, v); err == nil && n.(int) < 0 {
			if got != "" {
				got = " (" + got + ")"
			}
			return "a duration " + durationForms + ", not negative" + got
		}
		return "a duration " + durationForms + not
	case framework.TypeSignedDurationSecond:
		return "a duration " + durationForms + not
	case framework.TypeBool:
		return "true or false" + not
	case framework.TypeString, framework.TypeLowerCaseString:
		return "a string" + not
	case framework.TypeInt, framework.TypeInt64:
		return "a whole number" + not
	case framework.TypeFloat:
		return "a number" + not
	}
	return "of type " + schema.Type.String() + not
}

// given describes the value that was given: a non-secret scalar as it is (text quoted,
// cut to maxEchoBytes), a list or a map as such, and nothing of a secret but its kind.
func given(v any, secret bool) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		if secret {
			return ""
		}
		return strconv.Quote(cut(v)) + lengthIfCut(v)
	case json.Number: // a number in a JSON body
		if secret {
			return ""
		}
		return cut(string(v)) + lengthIfCut(string(v))
	}
	switch k := reflect.ValueOf(v).Kind(); {
	case k == reflect.Slice || k == reflect.Array:
		return "a list"
	case k == reflect.Map:
		return "a map"
	case secret:
		return ""
	case k == reflect.Bool || k >= reflect.Int && k <= reflect.Float64:
		return fmt.Sprint(v)
	}
	return ""
}

// cut shortens s to at most maxEchoBytes, on a character boundary, marking the cut.
func cut(s string) string {
	if len(s) <= maxEchoBytes {
		return s
	}
	n := maxEchoBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// lengthIfCut is s's length, said when cut shortens it.
func lengthIfCut(s string) string {
	if len(s) <= maxEchoBytes {
		return ""
	}
	return fmt.Sprintf(" (%d bytes)", len(s))
}

// rawLen is the length in bytes of a value given as text.
func rawLen(v any) (int, bool) {
	switch v := v.(type) {
	case string:
		return len(v), true
	case json.Number:
		return len(v), true
	case []byte:
		return len(v), true
	}
	return 0, false
}
