package registry_test

import (
	"testing"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// A field declares its values through its type: "Allowed are an Enum's values", so a field
// with Allowed values is an Enum, and an Enum lists them. The type is what tells a reader of
// Fields (a UI, the docs, an input check) that the value is one of a set.
func TestAllowedValuesMeanEnum(t *testing.T) {
	for _, d := range registry.Drivers() {
		for _, f := range d.Fields() {
			if (len(f.Allowed) > 0) != (f.Type == registry.Enum) {
				t.Errorf("%s.%s: type %d with allowed values %v", d.Name(), f.Name, f.Type, f.Allowed)
			}
		}
	}
}
