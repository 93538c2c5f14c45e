// Package registry is how the Vault surface reaches providers without naming one, as
// database/sql reaches drivers: each backend/<provider> package registers a Driver in its
// init, declaring everything the surface needs (its config fields, their validation, the
// kinds of token it mints with their documented lifetimes, whether and how its root
// credential rotates) and a Client for its calls, whose optional interfaces say what else it
// can do (Rotator, Creator, Revoker). No Vault imports: the surface builds its schemas, its
// OpenAPI document, its input limits and its config reads from what drivers declare.
package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
)

// Driver is one provider. Implementations are stateless values, safe for concurrent use.
type Driver interface {
	// Name is the provider's name in config ("provider=<name>"), metrics labels and errors;
	// Display is how prose names it.
	Name() string
	Display() string
	// Order places the driver in every list the surface shows (help, errors, field
	// descriptions): ascending, so that those texts do not depend on init order.
	Order() int
	// DefaultBaseURL is the live API root, for a config written without one.
	DefaultBaseURL() string
	// Fields are the config fields of the provider's credential, in the order errors and
	// descriptions list them.
	Fields() []Field
	// DecodeCredential decodes the provider's credential from the JSON object that holds it
	// (a config, a fallback, a WAL entry's old or new member), ignoring every other member.
	// Empty or absent members give an empty credential.
	DecodeCredential(data []byte) (Credential, error)
	// Validate checks the credential a config write leaves (create: no config existed;
	// given: whether the write named a field) and returns it completed (say, a grant type
	// inferred), or a *FieldError.
	Validate(c Credential, create bool, given func(field string) bool) (Credential, error)
	// Kind is the kind of token c mints: its documented lifetime bounds every token's expiry
	// and every lease.
	Kind(c Credential) TokenKind
	// Rolls reports whether minting with c may replace its Rolling field (a refresh token
	// the provider renews on use): such mints are serialised per config and their new value
	// stored before the token is handed out.
	Rolls(c Credential) bool
	// WriteWarnings are the warnings of a config write that leaves baseURL and c.
	WriteWarnings(baseURL string, c Credential) []string
	// Client is the provider's client for one endpoint (api); now is the clock used where
	// an answer gives no expiry.
	Client(api *apiclient.Client, now func() time.Time) Client
}

// RotatingDriver is a Driver whose root credential (its Root fields) can be rotated.
type RotatingDriver interface {
	Driver
	// CanRotate says why cur cannot be rotated, or nil.
	CanRotate(cur Credential) error
	// CannotRotate says which of its configs cannot rotate, in the words of the README
	// ("Bloq without both client keys and an account login (username and password)"), or "".
	CannotRotate() string
	// RotatedWarning says, after an immediate rotation, what happened to the tokens issued
	// before it ("tokens issued before this rotation no longer work").
	RotatedWarning() string
	// RotationHelp is its paragraph of rotate-root's help; TokensDie says in a few words why
	// the tokens issued before a rotation are dead afterwards ("OffBlocks' rule").
	RotationHelp() string
	TokensDie() string
}

// Client mints tokens for any number of accounts of one provider endpoint: the credential
// travels in each call. Implementations are safe for concurrent use.
type Client interface {
	Mint(ctx context.Context, c Credential) (Minted, error)
}

// Rotator is a Client whose driver is a RotatingDriver. A rotation runs Prepare → (the
// surface stores next as a fallback) → Activate → Mint(next) → (stores next as current) →
// Retire(cur).
type Rotator interface {
	Client
	// Prepare returns the next credential. It may create it upstream but must leave cur
	// working.
	Prepare(ctx context.Context, cur Credential) (Credential, error)
	// Activate makes next the account's credential upstream; cur may stop working. An error
	// that wraps ErrUnchanged says nothing was changed upstream. Sending it again with the
	// same next is safe.
	Activate(ctx context.Context, cur, next Credential) error
	// Exclusive reports whether activating next makes cur stop working: then a new
	// credential the provider refuses may still be on its way in, and only a refusal of the
	// activation itself lets Vault keep cur. Otherwise keeping cur loses nothing.
	Exclusive() bool
	// Retire removes gone upstream once it is no longer stored (best effort); a credential
	// the provider does not list is ErrNotListed. gone carries the current config's
	// account fields (its non-Root fields: a login that may have changed since).
	Retire(ctx context.Context, gone Credential) error
}

// Creator is a Rotator whose Prepare creates the new credential upstream and learns its
// secret only from the answer: Inventory lists the identifiers of the account's credentials
// upstream, so that one a crashed create call left behind can be named.
type Creator interface {
	Inventory(ctx context.Context, cur Credential) ([]string, error)
}

// Revoker is a Client that can revoke one token it minted: the surface calls it when a lease
// of that token is revoked.
type Revoker interface {
	Revoke(ctx context.Context, c Credential, token string) error
}

// Minted is a token fresh from a provider.
type Minted struct {
	apiclient.Token
	// Rolled, when set, is the new value of the credential's Rolling field that the
	// provider issued with the token: it replaces the stored one, and may be set beside an
	// error (a malformed access token), since it may be the only valid one now.
	Rolled string
}

// TokenKind is a kind of token a provider mints.
type TokenKind struct {
	// Name, such as "client access token".
	Name string
	// Lifetime is the documented one: no token's expiry is taken to be later than its
	// issue time plus this (apiclient.NewToken caps it).
	Lifetime time.Duration
}

// ErrUnchanged marks an Activate failure that happened before anything was sent that could
// change the provider's side: the rotation can be abandoned without settling it.
var ErrUnchanged = errors.New("nothing changed upstream")

// ErrNotListed is a Retire of a credential the provider does not list: already gone.
var ErrNotListed = errors.New("not listed upstream")

// FieldError is bad input: its text names the field, and the surface answers it with a 400.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// FieldErrorf is a *FieldError with a formatted message.
func FieldErrorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var drivers struct {
	mu sync.RWMutex
	m  map[string]Driver
}

// Register makes a driver available under its name. It panics on a second driver of one
// name, as database/sql does: two packages claiming a provider is a build mistake.
func Register(d Driver) {
	drivers.mu.Lock()
	defer drivers.mu.Unlock()
	if drivers.m == nil {
		drivers.m = map[string]Driver{}
	}
	if _, dup := drivers.m[d.Name()]; dup {
		panic("registry: provider " + d.Name() + " registered twice")
	}
	drivers.m[d.Name()] = d
}

// Deregister removes provider name's driver: for a test that registers one of its own.
func Deregister(name string) {
	drivers.mu.Lock()
	defer drivers.mu.Unlock()
	delete(drivers.m, name)
}

// Lookup returns the driver of provider name, and false for one this build does not have.
func Lookup(name string) (Driver, bool) {
	drivers.mu.RLock()
	defer drivers.mu.RUnlock()
	d, ok := drivers.m[name]
	return d, ok
}

// Drivers returns every registered driver, by Order.
func Drivers() []Driver {
	drivers.mu.RLock()
	defer drivers.mu.RUnlock()
	out := make([]Driver, 0, len(drivers.m))
	for _, d := range drivers.m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Order() < out[j].Order() })
	return out
}

// Names returns every registered provider's name, by Order.
func Names() []string {
	ds := Drivers()
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name()
	}
	return names
}
