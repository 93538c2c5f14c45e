package apitokens

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// The merge rule for a field two providers declare: one schema per name, sensitive if any
// provider says it is secret, the larger size limit, each provider's description after its
// display name in provider order, and each provider's own role (and so its own validation).
func TestSharedFieldsMerge(t *testing.T) {
	byName := map[string]configField{}
	for _, f := range credentialFields {
		byName[f.name] = f
	}
	k := byName["api_key"]
	if !k.sensitive || k.maxBytes != 4096 || len(k.roles) != 2 || k.roles["offblocks"].Secret() || !k.roles["opsnow"].Secret() ||
		!k.roles["offblocks"].Identifier || k.desc != "OffBlocks: the integration's apiKey (a UUID; returned on read as an "+
		"identifier). OpsNow: the API key from the console (a secret, never returned)." {
		t.Fatalf("api_key merged as %+v", k)
	}
	s := k.schema()
	if s.Type != framework.TypeString || !s.DisplayAttrs.Sensitive || s.DisplayAttrs.Name != "API key" {
		t.Fatalf("api_key schema %+v", s)
	}
	if g := byName["grant_type"].schema(); !slices.Equal(g.AllowedValues, []any{"client_credentials", "password", "refresh_token"}) {
		t.Fatalf("grant_type allowed %v", g.AllowedValues)
	}
	var order []string
	for _, f := range credentialFields {
		order = append(order, f.name)
	}
	if got := strings.Join(order, ","); got != "api_key,api_secret,grant_type,client_id,client_secret,username,password,refresh_token" {
		t.Fatalf("field order %s", got)
	}
	// Two providers that give one name two types are a build mistake.
	defer func() {
		if recover() == nil {
			t.Fatal("fields of one name and two types merged")
		}
	}()
	mergeFields(append(registry.Drivers(), listDriver{}))
}

// listDriver declares api_key as a list: against OffBlocks' text api_key, it cannot merge.
type listDriver struct{ registry.Driver }

func (listDriver) Name() string    { return "lists" }
func (listDriver) Display() string { return "Lists" }
func (listDriver) Fields() []registry.Field {
	return []registry.Field{{Name: "api_key", Type: registry.List}}
}
