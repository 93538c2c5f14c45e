package apitokens

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// The stored form of a config, its fallbacks and retiring credentials, and a rotation WAL
// entry: byte for byte what earlier versions wrote (testdata/stored holds one of each), so
// that a rollback goes on reading what this version writes. The credential is its provider's
// own type (registry.Credential), but its members stand where the union struct of earlier
// versions put them: inline in the config and in each fallback, after provider and base_url
// and before max_ttl; a retiring credential and a WAL entry's old and new are objects of
// their own.

// MarshalJSON writes the config's members in their stored order: configHead's, the
// credential's, configTail's.
func (c accountConfig) MarshalJSON() ([]byte, error) {
	return joinObjects(c.configHead, c.cred, c.configTail)
}

// UnmarshalJSON reads a stored config. The credential, the fallbacks' and the retiring ones
// are decoded by the config's provider's driver; for a provider this build does not know
// they stay nil (getConfig refuses such a config: it is never used or written).
func (c *accountConfig) UnmarshalJSON(data []byte) error {
	var in struct {
		configHead
		configTail
		// What config/<name> held before state/<name> existed (state.go), and no version
		// writes there now: decoded below by the provider's driver (shallower than
		// configTail's, so these win).
		Fallbacks []json.RawMessage `json:"fallbacks,omitempty"`
		Retiring  []json.RawMessage `json:"retiring,omitempty"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	c.configHead, c.configTail = in.configHead, in.configTail
	c.Fallbacks, c.Retiring = nil, nil
	d, known := registry.Lookup(c.Provider)
	decode := func(raw []byte) (credential, error) {
		if !known {
			return nil, nil
		}
		return d.DecodeCredential(raw)
	}
	var err error
	if c.cred, err = decode(data); err != nil {
		return fmt.Errorf("credential: %w", err)
	}
	for _, raw := range in.Fallbacks {
		var f fallback
		if err := json.Unmarshal(raw, &f.fallbackMeta); err != nil {
			return fmt.Errorf("fallback: %w", err)
		}
		if f.cred, err = decode(raw); err != nil {
			return fmt.Errorf("fallback: %w", err)
		}
		f.replaces = c.cred // held in the config itself: sent to replace its credential
		c.Fallbacks = append(c.Fallbacks, f)
	}
	for _, raw := range in.Retiring {
		r, err := decode(raw)
		if err != nil {
			return fmt.Errorf("retiring credential: %w", err)
		}
		c.Retiring = append(c.Retiring, r)
	}
	return nil
}

// MarshalJSON writes a fallback as earlier versions did: the credential's members, then
// since, why and trigger.
func (f fallback) MarshalJSON() ([]byte, error) {
	return joinObjects(f.cred, f.fallbackMeta)
}

// rotationWALWire is a rotation WAL entry as stored, its credentials as raw objects.
type rotationWALWire struct {
	Nonce    string          `json:"nonce"`
	Name     string          `json:"name"`
	Provider string          `json:"provider"`
	Old      json.RawMessage `json:"old"`
	New      json.RawMessage `json:"new"`
	Started  time.Time       `json:"started"`
	Creating bool            `json:"creating,omitempty"`
	Known    []string        `json:"known,omitempty"`
}

func (e rotationWAL) MarshalJSON() ([]byte, error) {
	old, err := joinObjects(e.Old)
	if err != nil {
		return nil, err
	}
	next, err := joinObjects(e.New)
	if err != nil {
		return nil, err
	}
	return json.Marshal(rotationWALWire{Nonce: e.Nonce, Name: e.Name, Provider: e.Provider, Old: old, New: next,
		Started: e.Started, Creating: e.Creating, Known: e.Known})
}

// UnmarshalJSON reads a stored entry; its credentials are decoded by its provider's driver,
// and stay nil for a provider this build does not know (such an entry is kept, never used).
func (e *rotationWAL) UnmarshalJSON(data []byte) error {
	var w rotationWALWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*e = rotationWAL{Nonce: w.Nonce, Name: w.Name, Provider: w.Provider, Started: w.Started, Creating: w.Creating, Known: w.Known}
	d, known := registry.Lookup(w.Provider)
	if !known {
		return nil
	}
	var err error
	for _, c := range []struct {
		raw json.RawMessage
		to  *credential
	}{{w.Old, &e.Old}, {w.New, &e.New}} {
		if len(c.raw) == 0 || string(c.raw) == "null" {
			continue
		}
		if *c.to, err = d.DecodeCredential(c.raw); err != nil {
			return err
		}
	}
	return nil
}

// joinObjects encodes each value as a JSON object (a nil credential as {}) and returns one
// object of all their members, in order.
func joinObjects(values ...any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for _, v := range values {
		var members []byte
		if c, ok := v.(credential); ok || v == nil {
			m, err := registry.Members(c)
			if err != nil {
				return nil, err
			}
			members = m
		} else {
			raw, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			members = bytes.TrimSuffix(bytes.TrimPrefix(raw, []byte("{")), []byte("}"))
		}
		if len(members) == 0 {
			continue
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.Write(members)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
