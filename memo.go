package apitokens

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"
)

// memo is what a node keeps in memory per config, so that a creds read that needs no
// provider call touches neither storage nor the network: the decoded config and, with
// token_reuse, the shared token. Neither is ever written to storage.
//
// Every config change drops both (forget): a write or delete by an operator, a rotation, a
// settled recovery, and Vault's Invalidate for a config changed on another node. Each entry
// carries a generation, bumped by forget: a value loaded or minted before a forget is never
// installed after it.
type memo struct {
	mu      sync.Mutex
	entries map[string]*memoEntry
	// flight makes concurrent reads that need a new shared token wait for one provider call.
	flight singleflight.Group
}

type memoEntry struct {
	gen   uint64
	cfg   *accountConfig
	token *sharedToken
	// slots bounds the config's provider calls in flight (see mintSlots).
	slots chan struct{}
}

// sharedToken is a token handed to every reader of a config with token_reuse on, while it
// has enough life left.
type sharedToken struct {
	minted
	// issued is when it was minted, by the backend's clock: with ExpiresAt it gives the
	// token's own lifetime.
	issued time.Time
}

// lifetime is the token's whole life as minted.
func (t *sharedToken) lifetime() time.Duration { return t.ExpiresAt.Sub(t.issued) }

func (m *memo) entry(name string) *memoEntry {
	if m.entries == nil {
		m.entries = map[string]*memoEntry{}
	}
	e, ok := m.entries[name]
	if !ok {
		e = &memoEntry{}
		m.entries[name] = e
	}
	return e
}

// mintSlots bounds how many reads of one config mint at once: a burst of fresh reads waits
// here, at the top of its call, rather than each going deep into an HTTP call that would
// then wait for a connection (apiclient.MaxConns) with its stack and buffers grown.
const mintSlots = 8

// slots returns the config's semaphore of mintSlots.
func (m *memo) slots(name string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(name)
	if e.slots == nil {
		e.slots = make(chan struct{}, mintSlots)
	}
	return e.slots
}

// config returns the remembered config (nil if none) and the entry's generation.
func (m *memo) config(name string) (*accountConfig, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(name)
	return e.cfg, e.gen
}

// fillConfig remembers cfg, loaded from storage at generation gen, unless the config was
// forgotten since.
func (m *memo) fillConfig(name string, gen uint64, cfg *accountConfig) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.entry(name); e.gen == gen {
		e.cfg = cfg
	}
}

// setConfig remembers cfg just written to storage by a caller holding the config's
// exclusive lock; the shared token is kept (storing a new Bloq refresh token does not
// change the token minted with it).
func (m *memo) setConfig(name string, cfg *accountConfig) {
	cp := *cfg // callers may go on changing theirs; the remembered one is never changed
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entry(name).cfg = &cp
}

// token returns the shared token (nil if none) and the entry's generation.
func (m *memo) token(name string) (*sharedToken, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(name)
	return e.token, e.gen
}

// share installs t, minted at generation gen, unless the config was forgotten since.
func (m *memo) share(name string, gen uint64, t *sharedToken) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.entry(name); e.gen == gen {
		e.token = t
	}
}

// forget drops the config and the shared token of name and bumps its generation.
func (m *memo) forget(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(name)
	e.gen++
	e.cfg, e.token = nil, nil
}

// forgetAll drops everything (the backend is being cleaned up).
func (m *memo) forgetAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		e.gen++
		e.cfg, e.token = nil, nil
	}
}

// cachedConfig returns config name from memory, or loads it from storage and remembers it.
// The caller holds the config's lock (shared or exclusive); a missing config is (nil, nil).
func (b *backend) cachedConfig(ctx context.Context, s logical.Storage, name string) (*accountConfig, error) {
	cfg, gen := b.memo.config(name)
	if cfg != nil {
		return cfg, nil
	}
	cfg, err := getConfig(ctx, s, name)
	if err != nil || cfg == nil {
		return nil, err
	}
	b.memo.fillConfig(name, gen, cfg)
	return cfg, nil
}
