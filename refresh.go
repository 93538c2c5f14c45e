package apitokens

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// refreshStoreTries is how many times a new Bloq refresh token is written before the read
// gives up on storing it for now (it stays in memory, and the next read tries again).
const refreshStoreTries = 3

// heldRefreshTokens are Bloq refresh tokens the provider issued that could not be stored
// yet, by config name. Each is newer than the stored one, which the provider may already
// have invalidated: the next refresh grant uses it, and stores it; so does the next config
// write, unless it sets refresh_token itself (then, and on a delete, it is dropped).
type heldRefreshTokens struct {
	mu sync.Mutex
	m  map[string]string
}

func (h *heldRefreshTokens) get(name string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.m[name]
	return t, ok
}

func (h *heldRefreshTokens) held(name string) bool {
	_, ok := h.get(name)
	return ok
}

func (h *heldRefreshTokens) hold(name, token string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]string{}
	}
	h.m[name] = token
}

func (h *heldRefreshTokens) drop(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, name)
}

// mintRefresh mints with a Bloq refresh token under the config's exclusive lock, and stores
// the refresh token the provider may issue in exchange. The access token is never handed out
// with its refresh token lost: a store that fails is retried, and the new refresh token is
// kept in memory until a later read stores it; the read says so in a warning.
//
// Where storage cannot be written (a performance standby or secondary), the grant is not
// even tried: it returns logical.ErrReadOnly, and Vault forwards the read to the active node.
func (b *backend) mintRefresh(ctx context.Context, s logical.Storage, name string) (minted, *accountConfig, error) {
	if !b.WriteSafeReplicationState() {
		return minted{}, nil, logical.ErrReadOnly
	}
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()
	cfg, err := getConfig(ctx, s, name)
	if err == nil && cfg == nil {
		err = errConfigNotFound(name)
	}
	if err != nil {
		return minted{}, nil, err
	}
	f, _ := rollingField(cfg.Provider) // rolls: the provider has one
	cred := cfg.cred
	held, isHeld := b.refreshTokens.get(name)
	if isHeld {
		cred = cred.With(f.Name, held)
	}
	ctx, p, err := b.providerFor(ctx, name, cfg)
	if err != nil {
		return minted{}, nil, err
	}
	m, mintErr := mintWith(ctx, p, cred)
	newest := registry.Str(cred.Field(f.Name))
	if m.Rolled != "" { // with or without mintErr: it may be the only valid one now
		newest, m.Rolled = m.Rolled, ""
	}
	if newest != registry.Str(cfg.cred.Field(f.Name)) {
		if w, err := b.keepRefreshToken(ctx, s, name, cfg, f, newest); err != nil {
			return minted{}, nil, err
		} else if w != "" {
			m.warnings = append(m.warnings, w)
		}
	}
	return m, cfg, mintErr
}

// keepRefreshToken stores newest as config name's rolling field f (its refresh token; cfg is
// changed), holding it in memory until it is stored. It returns a warning if the store
// failed, and logical.ErrReadOnly if this node cannot write.
func (b *backend) keepRefreshToken(ctx context.Context, s logical.Storage, name string, cfg *accountConfig,
	f registry.Field, newest string) (string, error) {
	b.refreshTokens.hold(name, newest)
	cfg.cred = cfg.cred.With(f.Name, newest)
	err := b.storeRetrying(ctx, s, name, cfg)
	switch {
	case err == nil:
		b.refreshTokens.drop(name)
		return "", nil
	case readOnlyAware(err) == logical.ErrReadOnly:
		return "", logical.ErrReadOnly
	}
	what := strings.ToLower(f.Display)
	b.Logger().Error(cfg.Provider+" issued a new "+what+" that could not be stored; this node holds it in memory "+
		"and stores it on the next creds read", "config", name, "error", err)
	return fmt.Sprintf("%s issued a new %s that could not be stored (%v): "+
		"this node holds it in memory and stores it on the next read; if this node restarts first, "+
		"write a new %s to config/%s", cfg.Provider, what, err, f.Name, name), nil
}

// storeRetrying writes cfg, trying refreshStoreTries times with a short backoff; a
// read-only storage is not retried.
func (b *backend) storeRetrying(ctx context.Context, s logical.Storage, name string, cfg *accountConfig) error {
	wait := 100 * time.Millisecond
	var err error
	for try := 1; ; try++ {
		if err = b.putConfig(ctx, s, name, cfg); err == nil || readOnlyAware(err) == logical.ErrReadOnly || try == refreshStoreTries {
			return err
		}
		if b.sleep(ctx, wait) != nil {
			return err
		}
		wait *= 2
	}
}
