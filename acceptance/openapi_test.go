//go:build acceptance

package acceptance

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// The mount's operations, by path: each is in the OpenAPI document, and no other.
var wantOperations = map[string][]string{
	"/config/{name}":      {"DELETE", "GET", "POST"},
	"/config/":            {"GET"},
	"/creds/{name}":       {"GET"},
	"/rotate-root/{name}": {"DELETE", "POST"},
	"/metrics":            {"GET"},
	"/settings":           {"GET", "POST"},
}

// undocumentedOK are the fields an operation may have in the document though no README table
// of that operation lists them, each with the reason.
var undocumentedOK = map[string]map[string]string{
	"GET /config/{name}": {"force": "the framework lists a path's query fields on each of its bodiless " +
		"operations, the read too, which ignores it; the README documents it on DELETE and POST"},
}

// wantSensitive are the fields that hold a secret, by operation (and response status): each
// is marked sensitive in the document and no other field is. api_key is OpsNow's secret
// (OffBlocks' is an identifier: one schema describes both).
var wantSensitive = map[string][]string{
	"POST /config/{name}":   {"api_key", "api_secret", "client_secret", "password", "refresh_token"},
	"GET /creds/{name} 200": {"token"},
}

// The documents Vault serves for the mount, both loaded and validated with kin-openapi, and
// checked against the README's field tables: every path and operation of the mount is
// there; each operation's query parameters and request-body properties are exactly the
// fields the README's tables for it list (undocumentedOK aside); secrets are marked
// sensitive; a creds read's response has token, token_type and expires_at.
func TestOpenAPIDocument(t *testing.T) {
	v, _, _ := shared(t)
	readme := readmeFieldTables(t)
	for _, src := range []struct{ name, path string }{
		// The mount's own document: `vault path-help apitokens/`, the plugin's JSON as is.
		{"mount help", "apitokens/?help=1"},
		// Vault's whole document (the UI's API explorer, client generators): the plugin's
		// document as Vault decodes and re-encodes it, of which the mount's part is checked.
		{"sys/internal/specs/openapi", "sys/internal/specs/openapi"},
	} {
		t.Run(src.name, func(t *testing.T) {
			raw := vaultGet(t, v, src.path)
			if src.name == "mount help" {
				var h struct{ OpenAPI json.RawMessage }
				if err := json.Unmarshal(raw, &h); err != nil || len(h.OpenAPI) == 0 {
					t.Fatalf("%s: no openapi in the answer (%v): %.300s", src.path, err, raw)
				}
				raw = h.OpenAPI
			} else {
				raw = mountPart(t, raw, "/apitokens", "Apitokens")
			}
			doc, err := openapi3.NewLoader().LoadFromData(raw)
			if err != nil {
				t.Fatalf("kin-openapi cannot load the document: %v", err)
			}
			if err := doc.Validate(context.Background()); err != nil {
				t.Errorf("the document is not valid OpenAPI: %v", err)
			}
			checkOpenAPI(t, doc, readme)
		})
	}
}

// vaultGet answers a GET of /v1/path with the root token, as raw JSON.
func vaultGet(t *testing.T, v *vaultServer, path string) []byte {
	t.Helper()
	status, _, b := v.get(path)
	if status != http.StatusOK {
		t.Fatalf("GET /v1/%s: %d: %.300s", path, status, b)
	}
	return b
}

// mountPart cuts the mount's paths (without the mount's prefix) and its component schemas
// out of Vault's whole document: Vault's own parts are not this plugin's to validate (1.19.5's
// fail kin-openapi's checks).
func mountPart(t *testing.T, raw []byte, prefix, schemaPrefix string) []byte {
	t.Helper()
	var whole struct {
		OpenAPI    string                     `json:"openapi"`
		Info       json.RawMessage            `json:"info"`
		Paths      map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &whole); err != nil {
		t.Fatal(err)
	}
	part := whole
	part.Paths = map[string]json.RawMessage{}
	for p, item := range whole.Paths {
		if rest, ok := strings.CutPrefix(p, prefix); ok && strings.HasPrefix(rest, "/") {
			part.Paths[rest] = item
		}
	}
	part.Components.Schemas = map[string]json.RawMessage{}
	for name, s := range whole.Components.Schemas {
		if strings.HasPrefix(name, schemaPrefix) || name == "StandardListResponse" {
			part.Components.Schemas[name] = s
		}
	}
	b, err := json.Marshal(part)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkOpenAPI(t *testing.T, doc *openapi3.T, readme map[string]map[string]bool) {
	var paths []string
	for p := range doc.Paths.Map() {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var want []string
	for p := range wantOperations {
		want = append(want, p)
	}
	sort.Strings(want)
	if !slices.Equal(paths, want) {
		t.Errorf("the document's paths are %v, want %v", paths, want)
	}
	ops := map[string]bool{}
	for _, path := range paths {
		item := doc.Paths.Value(path)
		var methods []string
		for m := range item.Operations() {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		if w, ok := wantOperations[path]; ok && !slices.Equal(methods, w) {
			t.Errorf("%s has operations %v, want %v", path, methods, w)
		}
		for _, name := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(path, -1) {
			if p := item.Parameters.GetByInAndName("path", name[1]); p == nil || !p.Required {
				t.Errorf("%s: no required path parameter %q", path, name[1])
			}
		}
		for _, m := range methods {
			op := m + " " + path
			ops[op] = true
			fields := operationFields(item.Operations()[m], path == "/config/")
			var undocumented, missing []string
			for f, s := range fields {
				if !readme[op][f] && undocumentedOK[op][f] == "" {
					undocumented = append(undocumented, f)
				}
				if sensitive(s) != slices.Contains(wantSensitive[op], f) {
					t.Errorf("%s: field %s is marked sensitive = %v, want %v", op, f, sensitive(s), !sensitive(s))
				}
			}
			for f := range readme[op] {
				if fields[f] == nil {
					missing = append(missing, f)
				}
			}
			for _, f := range wantSensitive[op] {
				if fields[f] == nil && !readme[op][f] {
					missing = append(missing, f)
				}
			}
			if sort.Strings(undocumented); len(undocumented) > 0 {
				t.Errorf("%s: in the document but in no README table of this operation: %v", op, undocumented)
			}
			if sort.Strings(missing); len(missing) > 0 {
				t.Errorf("%s: in the README's tables of this operation but not in the document: %v", op, missing)
			}
		}
	}
	for op := range readme {
		if !ops[op] {
			t.Errorf("the README has a field table for %s, which the document does not have", op)
		}
	}

	// A creds read's 200 answer: the token, its type and expiry; the token sensitive.
	creds := doc.Paths.Value("/creds/{name}")
	if creds == nil || creds.Get == nil {
		return
	}
	props := map[string]*openapi3.Schema{}
	if r := creds.Get.Responses.Status(http.StatusOK); r != nil && r.Value != nil {
		if mt := r.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil && mt.Schema.Value != nil {
			for name, s := range mt.Schema.Value.Properties {
				props[name] = s.Value
			}
		}
	}
	var names []string
	for name, s := range props {
		names = append(names, name)
		if sensitive(s) != slices.Contains(wantSensitive["GET /creds/{name} 200"], name) {
			t.Errorf("GET /creds/{name} 200: %s is marked sensitive = %v", name, sensitive(s))
		}
	}
	sort.Strings(names)
	if want := []string{"expires_at", "token", "token_type"}; !slices.Equal(names, want) {
		t.Errorf("GET /creds/{name}: the 200 response's schema has properties %v, want %v", names, want)
	}
}

// operationFields are an operation's query parameters (but a list's own "list") and the
// properties of its JSON request body, each with its schema.
func operationFields(op *openapi3.Operation, list bool) map[string]*openapi3.Schema {
	fields := map[string]*openapi3.Schema{}
	for _, p := range op.Parameters {
		if p.Value == nil || p.Value.In != "query" || (list && p.Value.Name == "list") {
			continue
		}
		s := &openapi3.Schema{}
		if p.Value.Schema != nil && p.Value.Schema.Value != nil {
			s = p.Value.Schema.Value
		}
		fields[p.Value.Name] = s
	}
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil && mt.Schema.Value != nil {
			for name, s := range mt.Schema.Value.Properties {
				fields[name] = s.Value
			}
		}
	}
	return fields
}

// sensitive says whether a schema is marked as holding a secret: Vault's
// x-vault-displayAttrs.sensitive, or the format password.
func sensitive(s *openapi3.Schema) bool {
	if s == nil {
		return false
	}
	if s.Format == "password" {
		return true
	}
	attrs, _ := s.Extensions["x-vault-displayAttrs"].(map[string]any)
	return attrs["sensitive"] == true
}

// fieldsMarker precedes each README table of an operation's fields: <!-- fields: POST /config/{name} -->.
var fieldsMarker = regexp.MustCompile(`^<!--\s*fields:\s*(GET|POST|DELETE)\s+(/\S*)\s*-->$`)

// readmeFieldTables reads the README's field tables: after each fieldsMarker, a markdown
// table whose first column names fields in backquotes (`api_key`, `api_secret`). It returns,
// by operation ("POST /config/{name}"), the fields of all of that operation's tables.
func readmeFieldTables(t *testing.T) map[string]map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	tables := map[string]map[string]bool{}
	name := regexp.MustCompile("`([a-z][a-z0-9_]*)`")
	for i := 0; i < len(lines); i++ {
		m := fieldsMarker.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		op := m[1] + " " + m[2]
		if tables[op] == nil {
			tables[op] = map[string]bool{}
		}
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		rows := 0
		for k := 0; j < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[j]), "|"); j, k = j+1, k+1 {
			cells := strings.Split(strings.TrimSpace(lines[j]), "|")
			if k < 2 || len(cells) < 3 {
				continue // the header and the separator
			}
			rows++
			for _, f := range name.FindAllStringSubmatch(cells[1], -1) {
				tables[op][f[1]] = true
			}
		}
		if rows == 0 {
			t.Errorf("README.md line %d: %q is not followed by a table of fields", i+1, lines[i])
		}
	}
	if len(tables) == 0 {
		t.Fatal("README.md marks no field table: each table of an operation's fields is to be preceded by a line " +
			"such as <!-- fields: POST /config/{name} --> (issue 17, item 19)")
	}
	return tables
}
