package apitokens

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// The one rule for what a version stores (README, "Crash safety: Upgrades and rollbacks"):
// config/<name> holds the members the released v0.1.0 knows (and a copy of the lease bound,
// below), and everything a later version adds that must survive a rollback lives in entries
// of its own that v0.1.0 never reads or writes. v0.1.0 rewrites a config
// from its own struct (a config write, a scheduled rotation, a Bloq refresh-token store), so
// a member it does not know, kept in config/<name>, would be dropped by its next write; an
// entry it does not know survives it.
//
// state/<name> is such an entry: the config's fallbacks (each with the credential it was sent
// to replace), its retiring credentials, its planned rotation (plan.go), and a copy of its
// schedule's lease bound (which
// config/<name> holds too, so that a schedule and its bound are stored in one write; a
// rollback's write drops it there, never here). It is seal-wrapped like config/
// (backend.go), since it holds credentials. getConfig reads it with the config
// and attaches it (attach, below); putConfig writes both, in an order that no crash can turn
// into a lost credential (putConfig).

// statePrefix is the storage prefix of the entries beside configs.
const statePrefix = "state/"

func stateKey(name string) string { return statePrefix + name }

// configState is state/<name>: what config/<name> holds beyond v0.1.0's members.
type configState struct {
	// Provider and BaseURL are the config's when the entry was written: an entry whose
	// config now names another provider or URL is another account's, and is not attached.
	Provider string
	BaseURL  string
	// Fallbacks are the config's fallbacks, each with replaces set.
	Fallbacks []fallback
	Retiring  []credential
	// LeasesEndBy and BoundSince are the schedule's lease bound (rotationState).
	LeasesEndBy, BoundSince time.Time
	// Plan is the config's planned rotation (plan.go), with replaces set.
	Plan plannedRotation
}

// empty reports whether the entry holds nothing: then it is not stored.
func (st *configState) empty() bool {
	return len(st.Fallbacks) == 0 && len(st.Retiring) == 0 && st.LeasesEndBy.IsZero() && st.BoundSince.IsZero() &&
		st.Plan.At.IsZero()
}

// stateOf is what c stores in state/<name>.
func stateOf(c *accountConfig) *configState {
	st := &configState{Provider: c.Provider, BaseURL: c.BaseURL, Fallbacks: slices.Clone(c.Fallbacks),
		Retiring: slices.Clone(c.Retiring), LeasesEndBy: c.Rotation.LeasesEndBy, BoundSince: c.Rotation.BoundSince,
		Plan: c.plan()}
	if !st.Plan.At.IsZero() && st.Plan.replaces == nil {
		st.Plan.replaces = c.cred // planned to replace the current credential
	}
	for i, f := range st.Fallbacks {
		if f.replaces == nil {
			st.Fallbacks[i].replaces = c.cred // sent to replace the current credential
		}
	}
	return st
}

// attach adds what st holds to c, decoded from config/<name>, by the rule that keeps every
// credential the provider may adopt and attaches nothing to another account:
//
//   - an entry of another provider or base URL is another account's: nothing is attached
//     (an operator replaced the config, as with a forced write);
//   - a fallback sent to replace c's current credential is attached as a fallback;
//   - a fallback that is c's current credential is settled already (a crash came between
//     putConfig's writes): it is dropped; one c holds already (config/<name> of an earlier
//     form holds it too) is counted once;
//   - a fallback sent to replace another credential is dead or given up: c's credential
//     changed since, either by a rotation that saw its new credential working (v0.1.0's, or
//     this version's adoption), after which the provider can no longer apply a change the
//     old credential authorised (settle.go, rule 1), or by an operator's write (rule 4). It
//     is retired: where old credentials live on upstream (Bloq) it is deleted there, by the
//     account's current login (a key of another account is not listed, and simply dropped);
//   - retiring credentials are attached, but for the current one: putConfig's first write
//     names it before config/<name> changes, and it retires only once it has (an operator's
//     forced write in between must not make it retire: an operator's key is deleted upstream
//     only after a rotation replaced it);
//   - the later lease bound of config/<name>'s and the entry's is kept;
//   - a planned rotation is attached only while c holds the credential it replaces: c's
//     credential changed since (a rotation, an operator's write, a crash between putConfig's
//     writes), and the plan went with the credential it planned to replace.
func (c *accountConfig) attach(st *configState) {
	if st.Provider != c.Provider || st.BaseURL != c.BaseURL {
		return
	}
	retire := func(r credential) {
		// The current one: putConfig's first write names it before the config changes.
		// One held already: config/<name> of an earlier form holds it too.
		if !sameKey(r, c.cred) && !slices.ContainsFunc(c.Retiring, func(o credential) bool { return sameKey(o, r) }) {
			c.Retiring = append(c.Retiring, r)
		}
	}
	for _, r := range st.Retiring {
		retire(r)
	}
	for _, f := range st.Fallbacks {
		switch {
		case registry.SameRoot(f.cred, c.cred):
		case slices.ContainsFunc(c.Fallbacks, func(o fallback) bool { return registry.SameRoot(o.cred, f.cred) }):
		case registry.SameRoot(f.replaces, c.cred):
			c.Fallbacks = append(c.Fallbacks, f)
		default:
			retire(f.cred)
		}
	}
	// config/<name> holds the bound too, written with the schedule it bounds in one write;
	// v0.1.0's writes drop it there. The later of the two only delays a rotation.
	c.Rotation.LeasesEndBy = later(c.Rotation.LeasesEndBy, st.LeasesEndBy)
	c.Rotation.BoundSince = later(c.Rotation.BoundSince, st.BoundSince)
	if !st.Plan.At.IsZero() && registry.SameRoot(st.Plan.replaces, c.cred) {
		c.Plan = st.Plan
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// getState reads state/<name>; a missing entry is (nil, nil). provider is the config's: its
// driver decodes the credentials.
func getState(ctx context.Context, s logical.Storage, name, provider string) (*configState, []byte, error) {
	entry, err := s.Get(ctx, stateKey(name))
	if err != nil {
		return nil, nil, fmt.Errorf("read the fallbacks and retiring credentials of config %q: %w", name, err)
	}
	if entry == nil {
		return nil, nil, nil
	}
	st := &configState{}
	if err := st.decode(entry.Value, provider); err != nil {
		return nil, nil, fmt.Errorf("decode the fallbacks and retiring credentials of config %q: %w", name, err)
	}
	return st, entry.Value, nil
}

// stateWire is state/<name> as stored, its credentials as raw objects.
type stateWire struct {
	Provider    string            `json:"provider"`
	BaseURL     string            `json:"base_url"`
	Fallbacks   []json.RawMessage `json:"fallbacks,omitempty"`
	Retiring    []json.RawMessage `json:"retiring,omitempty"`
	LeasesEndBy time.Time         `json:"leases_end_by,omitzero"`
	BoundSince  time.Time         `json:"bound_since,omitzero"`
	Plan        *planWire         `json:"planned_rotation,omitempty"`
}

// planWire is a planned rotation as stored: replaces, the credential it rotates, as an
// object.
type planWire struct {
	RotatesAt time.Time       `json:"rotates_at"`
	Made      time.Time       `json:"made"`
	Replaces  json.RawMessage `json:"replaces"`
}

// encode is the entry's stored form: a fallback as config/<name> held it before this entry
// existed (the credential's members, then since, why and trigger) and then replaces, the
// credential it was sent to replace, as an object.
func (st *configState) encode() ([]byte, error) {
	w := stateWire{Provider: st.Provider, BaseURL: st.BaseURL, LeasesEndBy: st.LeasesEndBy, BoundSince: st.BoundSince}
	if p := st.Plan; !p.At.IsZero() {
		replaces, err := joinObjects(p.replaces)
		if err != nil {
			return nil, err
		}
		w.Plan = &planWire{RotatesAt: p.At, Made: p.Made, Replaces: replaces}
	}
	for _, f := range st.Fallbacks {
		replaces, err := joinObjects(f.replaces)
		if err != nil {
			return nil, err
		}
		raw, err := joinObjects(f.cred, f.fallbackMeta, struct {
			Replaces json.RawMessage `json:"replaces"`
		}{replaces})
		if err != nil {
			return nil, err
		}
		w.Fallbacks = append(w.Fallbacks, raw)
	}
	for _, r := range st.Retiring {
		raw, err := joinObjects(r)
		if err != nil {
			return nil, err
		}
		w.Retiring = append(w.Retiring, raw)
	}
	return json.Marshal(w)
}

// decode reads a stored entry with provider's driver. An entry of a provider this build does
// not know decodes with no credentials; it is never attached (attach compares providers, and
// getConfig refuses such a config).
func (st *configState) decode(data []byte, provider string) error {
	var w stateWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*st = configState{Provider: w.Provider, BaseURL: w.BaseURL, LeasesEndBy: w.LeasesEndBy, BoundSince: w.BoundSince}
	d, known := registry.Lookup(provider)
	if !known || w.Provider != provider {
		return nil
	}
	for _, raw := range w.Fallbacks {
		var f fallback
		var meta struct {
			fallbackMeta
			Replaces json.RawMessage `json:"replaces"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			return fmt.Errorf("fallback: %w", err)
		}
		f.fallbackMeta = meta.fallbackMeta
		var err error
		if f.cred, err = d.DecodeCredential(raw); err != nil {
			return fmt.Errorf("fallback: %w", err)
		}
		if f.replaces, err = d.DecodeCredential(meta.Replaces); err != nil {
			return fmt.Errorf("fallback: %w", err)
		}
		st.Fallbacks = append(st.Fallbacks, f)
	}
	for _, raw := range w.Retiring {
		r, err := d.DecodeCredential(raw)
		if err != nil {
			return fmt.Errorf("retiring credential: %w", err)
		}
		st.Retiring = append(st.Retiring, r)
	}
	if p := w.Plan; p != nil {
		replaces, err := d.DecodeCredential(p.Replaces)
		if err != nil {
			return fmt.Errorf("planned rotation: %w", err)
		}
		st.Plan = plannedRotation{At: p.RotatesAt, Made: p.Made, replaces: replaces}
	}
	return nil
}
