package apitokens

import (
	"encoding/json"
	"reflect"
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

// fieldsDriver declares the given fields under a name of its own.
type fieldsDriver struct {
	registry.Driver
	name   string
	fields []registry.Field
}

func (d fieldsDriver) Name() string             { return d.name }
func (d fieldsDriver) Display() string          { return strings.ToUpper(d.name) }
func (d fieldsDriver) Fields() []registry.Field { return d.fields }

// The merge does not depend on which provider comes first: a secret anywhere makes the field
// sensitive, and the larger limit wins, an unset one counting as the default.
func TestMergeIsOrderFree(t *testing.T) {
	plain := fieldsDriver{name: "a", fields: []registry.Field{{Name: "key", Type: registry.String, MaxBytes: 256},
		{Name: "small", Type: registry.String, MaxBytes: 256}}}
	secret := fieldsDriver{name: "b", fields: []registry.Field{{Name: "key", Type: registry.Secret, MaxBytes: 4096},
		{Name: "small", Type: registry.String}}}
	for _, order := range [][]registry.Driver{{plain, secret}, {secret, plain}} {
		merged := map[string]configField{}
		for _, f := range mergeFields(order) {
			merged[f.name] = f
		}
		if k := merged["key"]; !k.sensitive || k.maxBytes != 4096 {
			t.Errorf("%s first: key merged as %+v", order[0].Name(), k)
		}
		if s := merged["small"]; s.maxBytes != registry.DefaultMaxBytes {
			t.Errorf("%s first: an unset limit beside 256 merged as %d", order[0].Name(), s.maxBytes)
		}
	}
}

// No provider's field takes a name the config path or the stored form uses for something
// else: its value would be read as that, or stored twice under one key.
func TestProviderFieldsTakeNoReservedName(t *testing.T) {
	reserved := map[string]bool{}
	for name := range configFields() {
		reserved[name] = true
	}
	// What config/<name> held inline before state/<name> existed, still decoded from it, and a
	// stored fallback's replaces (state.go).
	for _, k := range []string{"fallbacks", "retiring", "leases_end_by", "bound_since", "replaces"} {
		reserved[k] = true
	}
	for _, v := range []any{configHead{}, configTail{}, fallbackMeta{}, stateWire{}} { // every key, omitempty ones too
		typ := reflect.TypeOf(v)
		for i := 0; i < typ.NumField(); i++ {
			if k, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ","); k != "" {
				reserved[k] = true
			}
		}
	}
	for _, f := range credentialFields {
		delete(reserved, f.name) // configFields has them too
	}
	for _, d := range registry.Drivers() {
		for _, f := range d.Fields() {
			if reserved[f.Name] {
				t.Errorf("provider %s declares field %s, which the config already uses", d.Name(), f.Name)
			}
		}
	}
	for _, k := range []string{"provider", "max_ttl", "since", "rotation", "retiring", "fallbacks", "replaces", "force"} {
		if !reserved[k] {
			t.Fatalf("the reserved names lack %s: %v", k, reserved)
		}
	}
}

// An empty credential between two objects leaves valid JSON of the other two's members.
func TestJoinObjectsSkipsAnEmptyCredential(t *testing.T) {
	raw, err := joinObjects(configHead{Provider: "p"}, nil, fallbackMeta{Why: "w"})
	var m map[string]any
	if err != nil || json.Unmarshal(raw, &m) != nil || m["provider"] != "p" || m["why"] != "w" {
		t.Fatalf("joinObjects = %s, %v", raw, err)
	}
}
