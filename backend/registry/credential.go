package registry

import (
	"bytes"
	"encoding/json"
	"reflect"
)

// What the surface does with any provider's credential, by its driver's Fields. Each
// function takes a nil credential (one of a provider this build does not have) as empty.

// fieldsOf returns the fields of c's driver (none for nil or an unknown provider).
func fieldsOf(c Credential) []Field {
	if c == nil {
		return nil
	}
	d, ok := Lookup(c.Provider())
	if !ok {
		return nil
	}
	return d.Fields()
}

// Identifier names c without revealing it: the value of its IdentifierField, or "".
func Identifier(c Credential) string {
	_, v := IdentifierField(c)
	return v
}

// IdentifierField is c's first field that is both Root and an Identifier (an OffBlocks
// apiKey, a Bloq clientId): its name and value, or "" twice.
func IdentifierField(c Credential) (name, value string) {
	for _, f := range fieldsOf(c) {
		if f.Root && f.Identifier {
			return f.Name, Str(c.Field(f.Name))
		}
	}
	return "", ""
}

// AccountNames are c's Identifier fields' values that are set: every value that names the
// account.
func AccountNames(c Credential) []string {
	var names []string
	for _, f := range fieldsOf(c) {
		if v := Str(c.Field(f.Name)); f.Identifier && v != "" {
			names = append(names, v)
		}
	}
	return names
}

// rootFields are the fields of c's rotatable pair: its Root ones, or every field of a
// provider that declares none (its whole credential is the pair).
func rootFields(c Credential) []Field {
	fields := fieldsOf(c)
	var root []Field
	for _, f := range fields {
		if f.Root {
			root = append(root, f)
		}
	}
	if len(root) == 0 {
		return fields
	}
	return root
}

// SameRoot reports whether a and b hold the same rotatable pair (equal rootFields); a nil
// credential holds the same pair as nil only.
func SameRoot(a, b Credential) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	for _, f := range rootFields(a) {
		if !reflect.DeepEqual(a.Field(f.Name), field(b, f.Name)) {
			return false
		}
	}
	return true
}

// AdoptRoot returns c with src's rotatable pair (rootFields).
func AdoptRoot(c, src Credential) Credential {
	for _, f := range rootFields(c) {
		c = c.With(f.Name, field(src, f.Name))
	}
	return c
}

// WithAccount returns r with cur's account fields (every field but the Root ones): a
// credential a rotation replaced, with the login the config holds now.
func WithAccount(r, cur Credential) Credential {
	for _, f := range fieldsOf(r) {
		if !f.Root {
			r = r.With(f.Name, field(cur, f.Name))
		}
	}
	return r
}

// field is c's value of name, nil for a nil c.
func field(c Credential, name string) any {
	if c == nil {
		return nil
	}
	return c.Field(name)
}

// Members returns the JSON object members c encodes to (without braces; empty for nil or
// for a credential whose fields are all empty), for a caller that places them inline in an
// object of its own, as the stored form does.
func Members(c Credential) ([]byte, error) {
	if c == nil {
		return nil, nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(bytes.TrimPrefix(b, []byte("{")), []byte("}")), nil
}
