package apitokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// configPrefix is the storage prefix of provider accounts; it is seal-wrapped.
const configPrefix = "config/"

// accountConfig is one provider account, as stored at config/<name> (stored_form.go): the
// provider and its API root, the credential (its provider's own type), and the rest.
type accountConfig struct {
	configHead
	// cred is the account's root credential, decoded by the provider's driver (nil for a
	// provider this build does not know).
	cred credential
	configTail
	// stored is what storage held of the config when it was read or last stored (nil for a
	// config not read from storage): putConfig orders its writes by it.
	stored *storedSnapshot
	// markKey is the key of the config's leases in leaseMarks (markKey, set where a config is
	// read from storage or stored: computing it per read would cost every read).
	markKey string
	// leasesBound, when set, is the backend's bound on when every lease handed out so far
	// ends (backend.leasesEndBy), for a schedule set by a config write (leasesEndBy).
	leasesBound time.Time
}

// storedSnapshot is what storage holds of a config: its credential, and its state/<name>
// entry as stored (nil if none) with the fallbacks it holds.
type storedSnapshot struct {
	cred      credential
	fallbacks []fallback
	retiring  []credential
	state     []byte
	// inConfig: config/<name> itself holds fallbacks or retiring credentials (the form of
	// development builds before state/<name>), which its next write drops.
	inConfig bool
	// leasesEndBy and boundSince are state/<name>'s copy of the lease bound.
	leasesEndBy, boundSince time.Time
}

// configHead is what a config holds before its credential, in the stored order.
type configHead struct {
	Provider string `json:"provider"`
	BaseURL  string `json:"base_url"`
}

// configTail is what a config holds after its credential, in the stored order.
type configTail struct {
	MaxTTL         time.Duration `json:"max_ttl"`
	RequestTimeout time.Duration `json:"request_timeout"`
	LastRotated    time.Time     `json:"last_rotated,omitempty"`
	// TokenReuse shares one token among readers while it has MinTokenTTL left (0: half the
	// token's own lifetime).
	TokenReuse  bool          `json:"token_reuse,omitempty"`
	MinTokenTTL time.Duration `json:"min_token_ttl,omitempty"`
	// Rotation is the automated rotation schedule and its record (schedule.go).
	Rotation rotationState `json:"rotation"`
	// Fallbacks are credentials sent to the provider to replace the current one whose
	// refusal was not conclusive: the provider may adopt any of them at any moment, so they
	// are kept until the rule of settle.go drops them. Stored in state/<name> (state.go).
	Fallbacks []fallback `json:"-"`
	// Retiring are credentials a rotation replaced that still live upstream (a Bloq key
	// whose delete has not succeeded yet): settling deletes them. Stored in state/<name>.
	Retiring []credential `json:"-"`
	// Plan is the planned rotation, if any (plan.go). Stored in state/<name>.
	Plan plannedRotation `json:"-"`
}

// fallback is a credential the provider may adopt in place of a config's current one.
type fallback struct {
	cred credential
	// replaces is the credential it was sent to replace (nil until stored: the config's
	// current one then).
	replaces credential
	fallbackMeta
}

// fallbackMeta is what a fallback holds beside its credential, stored after it.
type fallbackMeta struct {
	// Since is when it was first sent, by the backend's clock.
	Since time.Time `json:"since"`
	// Why says, without a secret, why it is held.
	Why string `json:"why"`
	// Trigger is what began the rotation that sent it: manual, scheduled, or "" for an
	// earlier plugin version's rotation (or one stored before this field existed).
	Trigger string `json:"trigger,omitempty"`
}

// trigger says what began the rotation that sent f, for a config read.
func (f fallback) trigger() string {
	if f.Trigger == "" {
		return "unknown (a rotation of an earlier plugin version)"
	}
	return f.Trigger
}

// rolls reports whether minting with the config's credential may replace its rolling field
// (a refresh token the provider renews on use): such mints run under the config's
// exclusive lock, and store the new value before the token is handed out (refresh.go).
func (c *accountConfig) rolls() bool {
	d, ok := registry.Lookup(c.Provider)
	return ok && d.Rolls(c.cred)
}

// unsettled reports whether the provider may adopt another credential than the current one
// at any moment: then every token of the current one may die at any moment, and none is
// handed out.
func (c *accountConfig) unsettled() bool { return len(c.Fallbacks) > 0 }

// publicData is what a config read at now returns: every non-secret field, never a secret.
func (c *accountConfig) publicData(now time.Time) map[string]any {
	d := map[string]any{
		"provider":        c.Provider,
		"base_url":        c.BaseURL,
		"max_ttl":         int64(c.MaxTTL / time.Second),
		"request_timeout": int64(c.RequestTimeout / time.Second),
		"token_reuse":     c.TokenReuse,
		"min_token_ttl":   int64(c.MinTokenTTL / time.Second),
	}
	if !c.LastRotated.IsZero() {
		d["last_rotated"] = c.LastRotated.UTC().Format(time.RFC3339)
	}
	for _, f := range credentialFields {
		if role, has := f.roles[c.Provider]; has && !role.Secret() {
			if v := c.cred.Field(f.name); !registry.IsZero(v) {
				d[f.name] = v
			}
		}
	}
	// One rule: a config that can rotate shows its schedule and its fallbacks; one that cannot
	// (cannotRotate) has neither, unless it still holds a fallback (its login was removed
	// during a rotation), which a read never hides.
	if canRotate(c) == nil || c.unsettled() {
		c.rotationData(d, now)
		d["fallback_credentials"] = len(c.Fallbacks)
	}
	if c.unsettled() {
		first, last := c.Fallbacks[0], c.Fallbacks[len(c.Fallbacks)-1]
		d["fallback_since"] = first.Since.UTC().Format(time.RFC3339)
		d["unsettled_since"] = first.Since.UTC().Format(time.RFC3339)
		d["unsettled_trigger"] = last.trigger()
		d["unsettled_credential"] = registry.Identifier(last.cred)
		d["unsettled_waiting_for"] = fmt.Sprintf("the provider to accept %s credential %s (%s), or to refuse it "+
			"for good; creds reads and Vault's periodic function (every minute) ask it", c.Provider,
			registry.Identifier(last.cred), last.Why)
		d["unsettled_what_to_do"] = unsettledAdvice
	}
	return d
}

// unsettledAdvice is what an operator does about an unsettled rotation (config reads).
const unsettledAdvice = "wait: it settles by itself once the provider answers (alert if it lasts over 15 minutes). " +
	"If the provider will never accept it (the credential was changed in its console), write the credential it " +
	"accepts with force=true, which gives the fallback up"

// reuseWarnings say, for a config write or read, when the token sharing settings cannot do
// what they seem to: min_token_ttl without token_reuse does nothing, and one at least as long
// as the token's documented life means no token is ever shared (every read mints).
func (c *accountConfig) reuseWarnings() []string {
	switch {
	case c.MinTokenTTL > 0 && !c.TokenReuse:
		return []string{fmt.Sprintf("min_token_ttl (%s) applies only with token_reuse=true: every read mints a fresh "+
			"token", formatDuration(c.MinTokenTTL))}
	case c.TokenReuse && c.MinTokenTTL >= c.tokenLifeBound():
		return []string{fmt.Sprintf("min_token_ttl (%s) is not less than the documented life of a token of provider "+
			"%s (%s): unless the provider issues longer ones, no token has that much left, so none is shared and every "+
			"read mints; lower it (0: half the token's life)",
			formatDuration(c.MinTokenTTL), c.Provider, formatDuration(c.tokenLifeBound()))}
	}
	return nil
}

// fallbackWarnings say, for a config read, which fallback credentials are held and why,
// by identifier, never by secret.
func (c *accountConfig) fallbackWarnings() []string {
	var w []string
	for _, f := range c.Fallbacks {
		w = append(w, fmt.Sprintf("fallback credential %s held since %s: %s; no token is handed out until the "+
			"provider settles on one credential (creds reads and Vault's periodic function settle it)",
			registry.Identifier(f.cred), f.Since.UTC().Format(time.RFC3339), f.Why))
	}
	for _, r := range c.Retiring {
		w = append(w, fmt.Sprintf("replaced credential %s is still to be removed upstream (retried by creds reads "+
			"and Vault's periodic function)", registry.Identifier(r)))
	}
	return w
}

func configKey(name string) string { return configPrefix + name }

// getConfigAnyProvider is getConfig for a caller that may handle a config of a provider this
// version does not know (a forced delete): such a config is returned without an error. It
// must never be settled, used or written.
func getConfigAnyProvider(ctx context.Context, s logical.Storage, name string) (*accountConfig, error) {
	c, err := getConfig(ctx, s, name)
	var unknown *unknownProviderError
	if errors.As(err, &unknown) {
		return c, nil
	}
	return c, err
}

// getConfig loads config/<name> with state/<name> (state.go); a missing config is (nil,
// nil). A config of a provider this version does not know (written by a newer version) is
// returned with an *unknownProviderError: it fails closed, since every caller stops at the
// error, and so nothing is sent for it, nor is it ever written back without the fields this
// version cannot read.
func getConfig(ctx context.Context, s logical.Storage, name string) (*accountConfig, error) {
	entry, err := s.Get(ctx, configKey(name))
	if err != nil {
		return nil, fmt.Errorf("read config %q: %w", name, err)
	}
	if entry == nil {
		return nil, nil
	}
	var c accountConfig
	if err := entry.DecodeJSON(&c); err != nil {
		return nil, fmt.Errorf("decode config %q: %w", name, err)
	}
	if !knownProvider(c.Provider) {
		return &c, &unknownProviderError{name: name, provider: c.Provider}
	}
	inConfig := len(c.Fallbacks) > 0 || len(c.Retiring) > 0
	st, raw, err := getState(ctx, s, name, c.Provider)
	if err != nil {
		return nil, err
	}
	if st != nil {
		c.attach(st)
	}
	c.stored = &storedSnapshot{cred: c.cred, fallbacks: stateOf(&c).Fallbacks, retiring: slices.Clone(c.Retiring), state: raw,
		inConfig: inConfig}
	c.markKey = markKey(name, &c)
	if st != nil {
		c.stored.leasesEndBy, c.stored.boundSince = st.LeasesEndBy, st.BoundSince
	}
	return &c, nil
}

// putConfig stores config/<name> and then state/<name>, and remembers the config (the caller
// holds the config's exclusive lock). No crash or failure between its writes loses a
// credential, nor stores a fallback the caller will not send:
//
//   - config/<name> is written first, then state/<name>: a fallback the caller adds is
//     stored only once both writes succeed (a failure before the second leaves it unstored,
//     and the caller sends nothing), and one the caller drops stays stored until the second
//     does;
//   - but first of all, when config/<name>'s write could leave storage without something
//     that only the new state/<name> would hold, state/<name> is written to hold the union
//     of what storage holds and what the caller keeps (its new fallbacks aside), with the
//     new lease bound. That is when the credential changes while fallbacks are stored (an
//     adoption, an operator's write: stopped after the union, the old credential is current
//     with its fallbacks attached and a retiring key that is the current one is not; after
//     config/<name>'s write, the new one is current, and the old fallbacks no longer replace
//     it: attach drops or retires them); when config/<name> itself holds fallbacks or
//     retiring keys (the form before state/<name>), which its write drops there; and when
//     the lease bound is new (a schedule set on a config whose leases it must outlast),
//     which only config/<name> would hold, and a rollback's write drops there. Holding
//     more only keeps a credential longer, and a bound only delays a rotation.
//
// An unchanged state/<name> is not written again, and an empty one is deleted.
func (b *backend) putConfig(ctx context.Context, s logical.Storage, name string, c *accountConfig) error {
	st := stateOf(c)
	var raw []byte
	if !st.empty() {
		var err error
		if raw, err = st.encode(); err != nil {
			return fmt.Errorf("encode config %q: %w", name, err)
		}
	}
	entry, err := logical.StorageEntryJSON(configKey(name), c)
	if err != nil {
		return fmt.Errorf("encode config %q: %w", name, err)
	}
	prev := c.stored
	err = nil
	if prev != nil && ((len(prev.fallbacks) > 0 && !registry.SameRoot(prev.cred, c.cred)) || prev.inConfig || newBound(prev, st)) {
		var u []byte
		if u, err = union(prev, st).encode(); err == nil {
			err = storeState(ctx, s, name, nil, u)
		}
		prev = nil // state/<name> holds the union now
	}
	if err == nil {
		err = s.Put(ctx, entry)
	}
	if err == nil {
		err = storeState(ctx, s, name, prev, raw)
	}
	if err != nil {
		b.memo.forget(name) // storage may or may not hold it now: read it again
		return fmt.Errorf("store config %q: %w", name, err)
	}
	c.stored = &storedSnapshot{cred: c.cred, fallbacks: st.Fallbacks, retiring: st.Retiring, state: raw,
		leasesEndBy: st.LeasesEndBy, boundSince: st.BoundSince}
	c.markKey = markKey(name, c)
	b.memo.setConfig(name, c)
	return nil
}

// union is what storage holds (prev) together with what st keeps, but for st's new
// fallbacks (stored only once config/<name> is), with st's lease bound.
func union(prev *storedSnapshot, st *configState) *configState {
	u := *st
	u.Fallbacks = slices.Clone(prev.fallbacks)
	u.Retiring = slices.Clone(prev.retiring)
	for _, r := range st.Retiring {
		if !slices.ContainsFunc(u.Retiring, func(o credential) bool { return sameKey(o, r) }) {
			u.Retiring = append(u.Retiring, r)
		}
	}
	return &u
}

// newBound reports whether st's lease bound is not the one state/<name> holds.
func newBound(prev *storedSnapshot, st *configState) bool {
	return !st.LeasesEndBy.Equal(prev.leasesEndBy) || !st.BoundSince.Equal(prev.boundSince)
}

// storeState writes state/<name> as raw (deletes it when raw is nil), unless prev shows that
// storage holds exactly that already.
func storeState(ctx context.Context, s logical.Storage, name string, prev *storedSnapshot, raw []byte) error {
	switch {
	case prev != nil && bytes.Equal(prev.state, raw):
		return nil
	case raw == nil:
		return s.Delete(ctx, stateKey(name))
	}
	return s.Put(ctx, &logical.StorageEntry{Key: stateKey(name), Value: raw})
}
