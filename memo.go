package apitokens

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// memo is what a node keeps in memory per config, so that a creds read that needs no
// provider call touches neither storage nor the network: the decoded config and, with
// token_reuse, the shared token. Neither is ever written to storage.
//
// An entry exists only for a config that exists: lookups (config, token) never create one;
// remembering a config found in storage (fillConfig, setConfig), sharing its token (share)
// or needing its mint slots (slots, after the config was found) do. So reads of names that
// do not exist leave nothing behind.
//
// A write or delete by an operator, a rotation, a settled recovery, and Vault's Invalidate
// for a config changed on another node drop its entry (forget); a store that does not change
// the credential that minted the shared token (a new Bloq refresh token, a fallback
// recorded: then no token is handed out anyway) remembers the new config beside it. A value loaded or minted before a forget is never installed after it: a lookup
// hands out a generation, which an install must present, and every forget bumps a
// memo-wide counter from which each entry takes its generation when it is created, so a
// re-created entry never carries a generation handed out before the forget.
type memo struct {
	mu      sync.Mutex
	entries map[string]*memoEntry
	// gen is the memo-wide generation: bumped by every forget; a new entry takes its value.
	gen uint64
	// flight makes concurrent reads that need a new shared token wait for one provider call.
	flight flightGroup
	// loads makes concurrent reads of a config not in memory wait for one storage read.
	loads flightGroup
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

// lookup returns name's entry, nil if none, and the generation a value loaded or minted from
// now on must be installed with: the entry's, or the memo's when there is none. It creates
// nothing. The caller holds m.mu.
func (m *memo) lookup(name string) (*memoEntry, uint64) {
	if e := m.entries[name]; e != nil {
		return e, e.gen
	}
	return nil, m.gen
}

// install returns name's entry for a value obtained at generation gen, creating it if need
// be, or nil if name was forgotten since (the value must be dropped). The caller holds m.mu.
func (m *memo) install(name string, gen uint64) *memoEntry {
	e := m.entries[name]
	switch {
	case e != nil && e.gen == gen:
		return e
	case e == nil && gen == m.gen: // no forget since the lookup (of any name: safe, if not exact)
		return m.create(name)
	}
	return nil
}

// generation returns the generation a value of name obtained from now on is installed with
// (lookup's).
func (m *memo) generation(name string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, gen := m.lookup(name)
	return gen
}

// changed reports whether name was forgotten since gen was handed out: a value obtained since
// may come from a config that is replaced by now (install would drop it). A forget of another
// name counts too while name has no entry: safe, if not exact.
func (m *memo) changed(name string, gen uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, now := m.lookup(name)
	return now != gen
}

// create adds an empty entry for name at the memo's generation. The caller holds m.mu.
func (m *memo) create(name string) *memoEntry {
	if m.entries == nil {
		m.entries = map[string]*memoEntry{}
	}
	e := &memoEntry{gen: m.gen}
	m.entries[name] = e
	return e
}

// mintSlots bounds how many reads of one config mint at once: a burst of fresh reads waits
// here, at the top of its call, rather than each going deep into an HTTP call that would
// then wait for a connection (apiclient.EndpointMaxConns) with its stack and buffers grown.
const mintSlots = 8

// slots returns the config's semaphore of mintSlots, creating its entry if need be: call it
// only for a config that was found. A forget drops the semaphore with the entry: mints
// already holding a slot of the old one finish outside the new one's count.
func (m *memo) slots(name string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[name]
	if e == nil {
		e = m.create(name)
	}
	if e.slots == nil {
		e.slots = make(chan struct{}, mintSlots)
	}
	return e.slots
}

// config returns the remembered config (nil if none) and the generation to fill it at.
func (m *memo) config(name string) (*accountConfig, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, gen := m.lookup(name)
	if e == nil {
		return nil, gen
	}
	return e.cfg, gen
}

// fillConfig remembers cfg, an existing config loaded from storage at generation gen, unless
// the config was forgotten since.
func (m *memo) fillConfig(name string, gen uint64, cfg *accountConfig) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.install(name, gen); e != nil {
		e.cfg = cfg
	}
}

// setConfig remembers cfg just written to storage by a caller holding the config's
// exclusive lock; the shared token is kept (storing a new Bloq refresh token does not
// change the token minted with it).
func (m *memo) setConfig(name string, cfg *accountConfig) {
	cp := *cfg // callers may go on changing theirs; the remembered one is never changed
	cp.Fallbacks, cp.Retiring = slices.Clone(cfg.Fallbacks), slices.Clone(cfg.Retiring)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[name]
	if e == nil {
		e = m.create(name)
	}
	e.cfg = &cp
}

// token returns the shared token (nil if none) and the generation to share a new one at.
func (m *memo) token(name string) (*sharedToken, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, gen := m.lookup(name)
	if e == nil {
		return nil, gen
	}
	return e.token, gen
}

// share installs t, minted at generation gen for a config with token_reuse on, unless the
// config was forgotten since.
func (m *memo) share(name string, gen uint64, t *sharedToken) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.install(name, gen); e != nil {
		e.token = t
	}
}

// forget drops the entry of name (its config, shared token and mint slots) and bumps the
// memo's generation.
func (m *memo) forget(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	delete(m.entries, name)
}

// forgetAll drops everything (the backend is being cleaned up).
func (m *memo) forgetAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.entries = nil
}

// cachedConfig returns config name from memory, or loads it from storage and remembers it.
// The caller holds the config's lock (shared or exclusive); a missing config is (nil, nil).
//
// Concurrent readers of a config not in memory wait for one storage read (a cold burst of
// a thousand reads makes one), run in the first reader's goroutine, which holds its lock
// until the value is installed; the others hold the same lock in the same mode (readers
// together, or one writer alone), so no writer can store a config between that read and its
// install. So it must stay a synchronous Do (with DoChan the first reader could release its
// lock while the read runs, and a later setConfig, which keeps the generation, could be
// overwritten by the older value), and the load must take no config lock. The read runs
// under the first reader's context: a reader that waited for it and finds it ended by that
// context (the first reader gave up: abandonedLoad) loads again under its own; the reader that
// ran it gets its error as it is.
func (b *backend) cachedConfig(ctx context.Context, s logical.Storage, name string) (*accountConfig, error) {
	if cfg, _ := b.memo.config(name); cfg != nil {
		return cfg, nil
	}
	for {
		ran := false
		v, err, _ := b.memo.loads.Do(name, func() (any, error) {
			ran = true
			cfg, err := b.loadConfig(ctx, s, name)
			if err != nil && ctx.Err() != nil {
				err = &abandonedLoad{err}
			}
			return cfg, err
		})
		var abandoned *abandonedLoad
		if !ran && ctx.Err() == nil && errors.As(err, &abandoned) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return v.(*accountConfig), nil
	}
}

// abandonedLoad is a load's error when the context it ran under had ended (its reader gave
// up): a reader that only waited for it loads again. Any other error, a storage timeout of
// its own included, is every waiting reader's answer.
type abandonedLoad struct{ err error }

func (e *abandonedLoad) Error() string { return e.err.Error() }
func (e *abandonedLoad) Unwrap() error { return e.err }

// loadConfig reads config name from storage and remembers it, unless another load has
// installed it meanwhile or it was forgotten since the read began.
func (b *backend) loadConfig(ctx context.Context, s logical.Storage, name string) (*accountConfig, error) {
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

// peekConfig returns config name for a reader that must not wait for the config's lock (a
// metrics scrape, which a rotation holding the lock for minutes must not stall): from
// memory, else loaded and remembered when the lock is free, else read from storage only.
func (b *backend) peekConfig(ctx context.Context, s logical.Storage, name string) (*accountConfig, error) {
	if cfg, _ := b.memo.config(name); cfg != nil {
		return cfg, nil
	}
	lock := b.lock(name)
	if lock.TryRLock() {
		defer lock.RUnlock()
		return b.cachedConfig(ctx, s, name)
	}
	return getConfig(ctx, s, name)
}
