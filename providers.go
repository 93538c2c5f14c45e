package apitokens

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"

	// The providers this build serves: each registers its driver (database/sql's way). This
	// import block is the only place in the core that names one.
	_ "github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	_ "github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	_ "github.com/apitokens/vault-plugin-secrets-apitokens/backend/opsnow"
)

// credential is a provider's root credential: its driver's own value type.
type credential = registry.Credential

// knownProvider reports whether this build serves provider p.
func knownProvider(p string) bool {
	_, ok := registry.Lookup(p)
	return ok
}

// emptyCredential is driver d's credential with no field set.
func emptyCredential(d registry.Driver) credential {
	c, err := d.DecodeCredential([]byte("{}"))
	if err != nil {
		panic("provider " + d.Name() + " cannot decode an empty credential: " + err.Error())
	}
	return c
}

// documentedLifetime is the documented lifetime of the tokens config c mints (its driver's
// token Kind): the one its client caps every token's expiry at (apiclient.NewToken), so no
// lease is longer (tokenLifeBound). The acceptance suite's test build may shorten it
// (testDocumentedLifetime).
func documentedLifetime(c *accountConfig) time.Duration {
	if d := testDocumentedLifetime(); d > 0 {
		return d
	}
	if d, ok := registry.Lookup(c.Provider); ok {
		return d.Kind(c.cred).Lifetime
	}
	return time.Hour // a provider this build does not know serves no token
}

// providerChoices lists the providers for prose: "a, b or c".
func providerChoices() string { return orList(registry.Names()) }

// providerDisplays lists the providers' display names: "A, B, C".
func providerDisplays() string {
	var names []string
	for _, d := range registry.Drivers() {
		names = append(names, d.Display())
	}
	return strings.Join(names, ", ")
}

// composeCannotRotate names the configs that cannot rotate: every provider without rotation,
// then each rotating provider's own exceptions, "A, and B without ...".
func composeCannotRotate() string {
	var never, some []string
	for _, d := range registry.Drivers() {
		if rd, ok := d.(registry.RotatingDriver); !ok {
			never = append(never, d.Display())
		} else if s := rd.CannotRotate(); s != "" {
			some = append(some, s)
		}
	}
	all := append(never, some...)
	if len(all) < 2 {
		return strings.Join(all, "")
	}
	return strings.Join(all[:len(all)-1], ", ") + ", and " + all[len(all)-1]
}

// rotationHelps are the rotating providers' paragraphs of rotate-root's help, each followed
// by a blank line.
func rotationHelps() string {
	var b strings.Builder
	for _, d := range registry.Drivers() {
		if rd, ok := d.(registry.RotatingDriver); ok {
			b.WriteString(rd.RotationHelp() + "\n\n")
		}
	}
	return b.String()
}

// tokensDie says why tokens issued before a rotation are dead afterwards, for each rotating
// provider: "A's rule; B's deleted key".
func tokensDie() string {
	var why []string
	for _, d := range registry.Drivers() {
		if rd, ok := d.(registry.RotatingDriver); ok {
			why = append(why, rd.TokensDie())
		}
	}
	return strings.Join(why, "; ")
}

// configField is one credential field of config/<name>, merged over the providers that
// declare it: the single table that the schema, the OpenAPI document, input limits,
// validation and config reads derive from. The merge rule for a name several providers
// declare (api_key, client_id, ...): one schema per field name; sensitive if any provider
// says it is secret; the larger size limit; the description each provider's, prefixed with
// its display name, in provider order; allowed values the union; the types must agree (a
// secret and a plain string are both text); and validation is each provider's own (its
// driver's Validate), with the role of the field for the config's provider.
type configField struct {
	name, display, desc string
	typ                 registry.FieldType // text fields (String, Secret, Enum) merge as String
	sensitive           bool
	maxBytes            int
	allowed             []any
	// roles are the field as each provider that has it declares it.
	roles map[string]registry.Field
}

// credentialFields are every provider's credential fields, merged by name, in provider
// order and each provider's own order.
var credentialFields = mergeFields(registry.Drivers())

// mergeFields merges drivers' fields by the rule above; it panics on two types for one name.
func mergeFields(drivers []registry.Driver) []configField {
	var out []configField
	index := map[string]int{}
	for _, d := range drivers {
		for _, f := range d.Fields() {
			typ := f.Type
			if typ == registry.Secret || typ == registry.Enum {
				typ = registry.String
			}
			i, seen := index[f.Name]
			if !seen {
				index[f.Name], i = len(out), len(out)
				out = append(out, configField{name: f.Name, display: f.Display, typ: typ, roles: map[string]registry.Field{}})
			}
			m := &out[i]
			if m.typ != typ {
				panic(fmt.Sprintf("providers declare field %s with two types", f.Name))
			}
			m.roles[d.Name()] = f
			m.desc = strings.TrimSpace(m.desc + " " + d.Display() + ": " + f.Description)
			m.sensitive = m.sensitive || f.Secret()
			m.maxBytes = max(m.maxBytes, limitOf(f))
			for _, v := range f.Allowed {
				if !slices.Contains(m.allowed, any(v)) {
					m.allowed = append(m.allowed, v)
				}
			}
		}
	}
	return out
}

// limitOf is f's size limit, the default where it sets none.
func limitOf(f registry.Field) int {
	if f.MaxBytes > 0 {
		return f.MaxBytes
	}
	return registry.DefaultMaxBytes
}

// schema is the field's framework schema.
func (f configField) schema() *framework.FieldSchema {
	types := map[registry.FieldType]framework.FieldType{registry.String: framework.TypeString,
		registry.Int: framework.TypeInt, registry.Bool: framework.TypeBool, registry.Duration: framework.TypeDurationSecond,
		registry.List: framework.TypeCommaStringSlice, registry.Map: framework.TypeKVPairs}
	return &framework.FieldSchema{Type: types[f.typ], Description: f.desc, AllowedValues: f.allowed,
		DisplayAttrs: &framework.DisplayAttributes{Name: f.display, Sensitive: f.sensitive}}
}

// value converts the framework's value of the field (d.Get) to the registry's type for it.
func (f configField) value(v any) any {
	if f.typ == registry.Duration {
		return time.Duration(v.(int)) * time.Second
	}
	return v
}

// providerFields names the credential fields provider takes, for error messages.
func providerFields(provider string) []string {
	var names []string
	if d, ok := registry.Lookup(provider); ok {
		for _, f := range d.Fields() {
			names = append(names, f.Name)
		}
	}
	return names
}

// rootFieldNames names the fields of a rotatable root credential, of every provider
// ("api_key, api_secret, client_id or client_secret"): a write that names one is a credential
// write, which an unsettled rotation refuses without force=true.
func rootFieldNames() []string {
	var names []string
	for _, f := range credentialFields {
		for _, role := range f.roles {
			if role.Root && !slices.Contains(names, f.name) {
				names = append(names, f.name)
			}
		}
	}
	return names
}

// providerValues are the providers' names, as a schema's allowed values.
func providerValues() []any {
	var v []any
	for _, n := range registry.Names() {
		v = append(v, n)
	}
	return v
}

// secretFieldsProse names the secret fields for prose: those secret for every provider that
// has them, then those secret for some ("api_secret, ..., OpsNow's api_key").
func secretFieldsProse() string {
	var always, some []string
	for _, f := range credentialFields {
		var secretFor []string
		for _, d := range registry.Drivers() {
			if role, has := f.roles[d.Name()]; has && role.Secret() {
				secretFor = append(secretFor, d.Display())
			}
		}
		switch {
		case len(secretFor) == 0:
		case len(secretFor) == len(f.roles):
			always = append(always, f.name)
		default:
			for _, p := range secretFor {
				some = append(some, p+"'s "+f.name)
			}
		}
	}
	return strings.Join(append(always, some...), ", ")
}

// orList writes names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// rollingField is the field of provider's credential that the provider may replace on use
// (a refresh token), and false when it has none.
func rollingField(provider string) (registry.Field, bool) {
	d, ok := registry.Lookup(provider)
	if !ok {
		return registry.Field{}, false
	}
	for _, f := range d.Fields() {
		if f.Rolling {
			return f, true
		}
	}
	return registry.Field{}, false
}
