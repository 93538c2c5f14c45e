package apitokens

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// refreshStoreTries is how many times a new Bloq refresh token is written before the read
// gives up on storing it for now (it stays in memory, and the next read tries again).
const refreshStoreTries = 3

// heldRefreshTokens are Bloq refresh tokens the provider issued that could not be stored
// yet, by config name. Each is newer than the stored one, which the provider may already
// have invalidated: the next refresh grant uses it, and stores it. It is dropped when an
// operator writes or deletes the config.
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
	cred := cfg.credential
	held, isHeld := b.refreshTokens.get(name)
	if isHeld {
		cred.RefreshToken = held
	}
	m, err := b.providerFor(name, cfg).Mint(ctx, cred)
	if err != nil {
		return m, cfg, err
	}
	newest := cred.RefreshToken
	if m.NewRefreshToken != "" {
		newest, m.NewRefreshToken = m.NewRefreshToken, ""
	}
	if newest == cfg.RefreshToken {
		return m, cfg, nil
	}
	b.refreshTokens.hold(name, newest)
	cfg.RefreshToken = newest
	if err := b.storeRetrying(ctx, s, name, cfg); err != nil {
		if errors.Is(err, logical.ErrReadOnly) {
			return minted{}, nil, logical.ErrReadOnly
		}
		b.Logger().Error("bloq issued a new refresh token that could not be stored; this node holds it in memory "+
			"and stores it on the next creds read", "config", name, "error", err)
		m.warnings = append(m.warnings, fmt.Sprintf("bloq issued a new refresh token that could not be stored (%v): "+
			"this node holds it in memory and stores it on the next read; if this node restarts first, "+
			"write a new refresh_token to config/%s", err, name))
		return m, cfg, nil
	}
	b.refreshTokens.drop(name)
	return m, cfg, nil
}

// storeRetrying writes cfg, trying refreshStoreTries times with a short backoff; a
// read-only storage is not retried.
func (b *backend) storeRetrying(ctx context.Context, s logical.Storage, name string, cfg *accountConfig) error {
	wait := 100 * time.Millisecond
	var err error
	for try := 1; ; try++ {
		if err = b.putConfig(ctx, s, name, cfg); err == nil || errors.Is(err, logical.ErrReadOnly) || try == refreshStoreTries {
			return err
		}
		if b.sleep(ctx, wait) != nil {
			return err
		}
		wait *= 2
	}
}
