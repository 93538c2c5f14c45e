package apitokens

import (
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Vault reads an external plugin's OpenAPI document back with framework.NewOASDocumentFromMap
// (mapstructure), and framework.OASSchema's Ref field has no mapstructure tag for the JSON
// key "$ref", so the reference is dropped: in the
// document Vault serves at sys/internal/specs/openapi, every schema the framework wrote as a
// reference to a component (a write's request body, a response with fields, a list's
// response) is an empty {}. So the plugin's document carries each of them inline, beside the
// components.

// inlineOpenAPIRefs inlines the schema references of the mount's OpenAPI document, when
// resp answers the root help request (`vault path-help`, and Vault's own for
// sys/internal/specs/openapi). HandleRequest calls it on every answer of the framework.
func inlineOpenAPIRefs(req *logical.Request, resp *logical.Response) {
	if resp == nil || req.Operation != logical.HelpOperation || req.Path != "" {
		return
	}
	if doc, ok := resp.Data["openapi"].(*framework.OASDocument); ok {
		inlineSchemaRefs(doc)
	}
}

// inlineSchemaRefs replaces each request body's and response's reference to a component
// schema with the schema itself. Responses are copied, never changed in place: the
// framework shares some between documents (framework.OASStdRespListOK).
func inlineSchemaRefs(doc *framework.OASDocument) {
	const prefix = "#/components/schemas/"
	inline := func(c framework.OASContent) framework.OASContent {
		out := make(framework.OASContent, len(c))
		for mediaType, m := range c {
			if m != nil && m.Schema != nil && strings.HasPrefix(m.Schema.Ref, prefix) {
				if s := doc.Components.Schemas[strings.TrimPrefix(m.Schema.Ref, prefix)]; s != nil {
					m = &framework.OASMediaTypeObject{Schema: s}
				}
			}
			out[mediaType] = m
		}
		return out
	}
	for _, p := range doc.Paths {
		for _, op := range []*framework.OASOperation{p.Get, p.Post, p.Patch, p.Delete} {
			if op == nil {
				continue
			}
			if op.RequestBody != nil {
				body := *op.RequestBody
				body.Content = inline(body.Content)
				op.RequestBody = &body
			}
			for code, r := range op.Responses {
				if r != nil && len(r.Content) > 0 {
					op.Responses[code] = &framework.OASResponse{Description: r.Description, Content: inline(r.Content)}
				}
			}
		}
	}
}
