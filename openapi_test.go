package apitokens

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Vault reads an external plugin's OpenAPI document back with framework.NewOASDocumentFromMap,
// which drops every "$ref". Through that round trip, each request body
// and each response with fields keeps its properties.
func TestOpenAPISchemasSurviveVaultDecoding(t *testing.T) {
	h := newHarness(t)
	h.b.System().(*logical.StaticSystemView).PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "1.19.5"}
	resp, err := h.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.HelpOperation, Storage: h.storage})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(resp.Data["openapi"])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	doc, err := framework.NewOASDocumentFromMap(m) // as Vault does, at sys/internal/specs/openapi
	if err != nil {
		t.Fatal(err)
	}
	props := func(c framework.OASContent) []string {
		var names []string
		if mt := c["application/json"]; mt != nil && mt.Schema != nil {
			for name := range mt.Schema.Properties {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		return names
	}
	for _, c := range []struct {
		what string
		op   *framework.OASOperation
		body bool
		want []string
	}{
		{"creds read, 200", doc.Paths["/creds/{name}"].Get, false, []string{"expires_at", "token", "token_type"}},
		{"config list, 200", doc.Paths["/config/"].Get, false, []string{"keys"}},
		{"settings write, body", doc.Paths["/settings"].Post, true, []string{"metrics_per_config"}},
		{"config write, body", doc.Paths["/config/{name}"].Post, true, nil},
	} {
		var got []string
		if c.body {
			got = props(c.op.RequestBody.Content)
		} else {
			got = props(c.op.Responses[200].Content)
		}
		if c.want == nil && !slices.Contains(got, "api_secret") || c.want != nil && !slices.Equal(got, c.want) {
			t.Errorf("%s: properties after Vault's decoding %v, want %v", c.what, got, c.want)
		}
	}
	// The framework's shared list response is left as it was.
	if ref := framework.OASStdRespListOK.Content["application/json"].Schema.Ref; ref != "#/components/schemas/StandardListResponse" {
		t.Errorf("framework.OASStdRespListOK was changed: $ref %q", ref)
	}
}
