package registry

import "time"

// FieldType is a config field's type, from the registry's own set (backend/ has no Vault
// imports; the surface maps each to a Vault framework type). A credential's value of each
// type is: string (String, Secret, Enum), int (Int), bool (Bool), time.Duration (Duration),
// []string (List) and map[string]string (Map).
type FieldType int

const (
	String   FieldType = iota + 1 // text, not secret: returned on config reads
	Secret                        // text, secret: never returned, logged or altered
	Int                           // a whole number
	Bool                          // true or false
	Duration                      // a duration, given as 90s, 10m, 1h or seconds
	List                          // a comma-separated list
	Map                           // key=value pairs
	Enum                          // one of Allowed
)

// DefaultMaxBytes bounds a field whose MaxBytes is 0.
const DefaultMaxBytes = 1 << 10

// Field is one config field of a provider's credential. Two providers may declare fields of
// one name (client_id, api_key): the surface merges them into one schema per name (see its
// registry file for the rule).
type Field struct {
	Name string
	// Display is the field's name in a UI ("API key"); Description says what it is for this
	// provider (the surface prefixes it with the provider's Display).
	Display, Description string
	Type                 FieldType
	// Identifier marks a value that names the account (an OffBlocks apiKey, a Bloq clientId
	// or username): not secret, returned on config reads and kept in errors for whoever may
	// read config, but never shown to a creds reader.
	Identifier bool
	// Root marks the fields a rotation replaces (the rotatable pair); the others are the
	// account's and stay (a login used to rotate).
	Root bool
	// Rolling marks a value the provider may replace on use (Minted.Rolled).
	Rolling bool
	// Allowed are an Enum's values.
	Allowed []string
	// MaxBytes bounds the value's length (0: DefaultMaxBytes).
	MaxBytes int
	// Grants are the grants that need the field (empty: the provider's only way to mint).
	Grants []string
}

// Secret reports whether the field's value is secret.
func (f Field) Secret() bool { return f.Type == Secret }

// Credential is one provider's root credential, as its driver's own value type: immutable
// (With returns a changed copy), so a copy is never an alias. Its JSON encoding is the
// object members of its fields, under their Name, omitted when empty.
type Credential interface {
	// Provider names the driver that decodes it.
	Provider() string
	// Field returns the named field's value (the zero value of its type when unset, nil
	// for a name the provider does not have).
	Field(name string) any
	// With returns the credential with the named field set to v (of the field's type).
	With(name string, v any) Credential
}

// Str returns a field value as text ("" for anything but a non-empty string).
func Str(v any) string {
	s, _ := v.(string)
	return s
}

// IsZero reports whether a field value is unset: nil, "", 0, false, or an empty list or map.
func IsZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case int:
		return x == 0
	case bool:
		return !x
	case time.Duration:
		return x == 0
	case []string:
		return len(x) == 0
	case map[string]string:
		return len(x) == 0
	}
	return false
}
