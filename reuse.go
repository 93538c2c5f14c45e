package apitokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// issuedToken is a token for one creds read, and whether it was the config's shared one
// (shared), or minted to be shared at all (flight: the reads that joined the mint hold it too).
type issuedToken struct {
	minted
	cfg    *accountConfig
	shared bool
	flight bool
}

// token returns a token for a creds read of config name. With token_reuse off it is always
// fresh. With it on, the config's shared token is handed out while it has the life the
// config and the read ask for (need); otherwise one provider call mints a new shared token,
// and every read that arrives meanwhile waits for that call instead of making its own. The
// shared call runs under the config's request_timeout, not a reader's context, so a reader
// giving up fails no other.
//
// A scheduled rotation that is due, or so close that no lease would fit before it
// (rotateFirst), is performed first, waiting for it if need be, so that the token comes from
// the new credential (the old one's tokens die with the rotation).
func (b *backend) token(ctx context.Context, s logical.Storage, name string, minTTL time.Duration) (issuedToken, error) {
	// A config known to be unsettled joins the settle that may be running (and holding the
	// config's lock) rather than wait for the lock and then settle again.
	if cfg, _ := b.memo.config(name); cfg != nil && cfg.unsettled() {
		if _, _, err := b.settleForRead(ctx, s, name); err != nil {
			return issuedToken{}, err
		}
	}
	lock := b.lock(name)
	lock.RLock()
	cfg, err := b.cachedConfig(ctx, s, name)
	if err == nil && cfg == nil {
		err = errConfigNotFound(name)
	}
	if err == nil && cfg.rotateFirst(b.now()) {
		lock.RUnlock()
		if _, err := b.rotateIfDue(ctx, s, name); err == logical.ErrReadOnly {
			return issuedToken{}, err // the active node rotates: Vault forwards the read there
		} else if err != nil {
			b.Logger().Warn("a due scheduled rotation failed; the token comes from the stored credential", "config", name, "error", err)
		}
		lock.RLock()
		if cfg, err = b.cachedConfig(ctx, s, name); err == nil && cfg == nil {
			err = errConfigNotFound(name)
		}
	}
	if err != nil {
		lock.RUnlock()
		return issuedToken{}, err
	}
	if cfg.TokenReuse && !cfg.unsettled() { // an unsettled config hands out no token of its current credential
		if t, _ := b.memo.token(name); t != nil && t.ExpiresAt.Sub(b.now()) >= need(cfg, t, minTTL) {
			lock.RUnlock()
			return issuedToken{minted: minted{Minted: registry.Minted{Token: t.Token}}, cfg: cfg, shared: true, flight: true}, nil
		}
	}
	lock.RUnlock()
	if !cfg.TokenReuse {
		slots := b.memo.slots(name)
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-ctx.Done():
			return issuedToken{}, ctx.Err()
		}
		f, err := b.mintCurrent(ctx, s, name)
		return issuedToken{minted: f.minted, cfg: f.cfg}, err
	}
	return b.mintShared(ctx, s, name, cfg.RequestTimeout, minTTL)
}

// freshMint is a token minted with the credential config name held when it came back.
type freshMint struct {
	minted
	cfg *accountConfig
	// gen is the memo's generation the mint began at (and ended at: nothing was forgotten
	// meanwhile); issued is when it began, by the backend's clock.
	gen    uint64
	issued time.Time
}

// mintTries bounds how many times a read mints while its config keeps changing.
const mintTries = 3

// errCredentialReplaced is a token minted with a credential that another node replaced during
// the call (mintOnce): it may be dead already, so it is never handed out.
var errCredentialReplaced = errors.New("the credential was replaced while the token was minted")

// mintCurrent is mint, for a token of the credential config name holds when the token comes
// back: one minted with a credential replaced during the call (errCredentialReplaced: a
// rotation on the active node while a standby's call is on its way) is dropped and minted
// again, mintTries times in all; then the read fails with a 503 that says to read again. gen
// is the memo's generation before the call that succeeded, for sharing its token.
func (b *backend) mintCurrent(ctx context.Context, s logical.Storage, name string) (freshMint, error) {
	for try := 1; ; try++ {
		gen := b.memo.generation(name)
		issued := b.now()
		m, cfg, err := b.mint(ctx, s, name)
		switch {
		case !errors.Is(err, errCredentialReplaced):
			return freshMint{minted: m, cfg: cfg, gen: gen, issued: issued}, err
		case try == mintTries:
			return freshMint{}, logical.CodedError(http.StatusServiceUnavailable, fmt.Sprintf("config %q changed "+
				"while each of %d tokens was minted (a rotation or a write on another node): read again", name, mintTries))
		}
		b.Logger().Debug("the credential was replaced while its token was minted; minting again", "config", name)
	}
}

// replacedDuring returns errCredentialReplaced when used, the config a token was just minted
// with (from memo generation gen), no longer holds config name's credential, settled. The
// caller holds the config's lock, so only another node's change (delivered by Invalidate)
// can have come meanwhile: nothing to check unless the config was forgotten since, and then
// storage says (a stored Bloq refresh token keeps the root credential; a rotation, or a
// fallback stored for one, does not).
func (b *backend) replacedDuring(ctx context.Context, s logical.Storage, name string, used *accountConfig, gen uint64) error {
	if !b.memo.changed(name, gen) {
		return nil
	}
	now, err := b.cachedConfig(ctx, s, name)
	if err != nil {
		return err
	}
	if now == nil || now.unsettled() || !registry.SameRoot(now.cred, used.cred) {
		return errCredentialReplaced
	}
	return nil
}

// need is the least life a shared token must have left to be handed out: min_token_ttl
// (default half the token's own lifetime), or the read's min_ttl if that is more.
func need(cfg *accountConfig, t *sharedToken, minTTL time.Duration) time.Duration {
	n := cfg.MinTokenTTL
	if n <= 0 {
		n = t.lifetime() / 2
	}
	return max(n, minTTL, 2*minLease) // less would leave no lease after the margin
}

// mintShared mints the config's next shared token in one provider call, joined by every
// read that needs it meanwhile, and installs it unless the config changed during the call. A
// read that found no shared token but starts its call only after another call installed one
// (it was descheduled in between) takes that one, when it has the life the read needs
// (minTTL, as in token), rather than mint again.
func (b *backend) mintShared(ctx context.Context, s logical.Storage, name string, timeout, minTTL time.Duration) (issuedToken, error) {
	// Only the read whose call runs sets led: for the others the token is a shared one.
	led := false
	ch := b.memo.flight.DoChan(name, func() (any, error) {
		led = true
		t, _ := b.memo.token(name)
		if cfg, _ := b.memo.config(name); t != nil && cfg != nil && cfg.TokenReuse && !cfg.unsettled() &&
			t.ExpiresAt.Sub(b.now()) >= need(cfg, t, minTTL) {
			return issuedToken{minted: minted{Minted: registry.Minted{Token: t.Token}}, cfg: cfg, shared: true}, nil
		}
		callCtx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		f, err := b.mintCurrent(callCtx, s, name)
		if err != nil {
			return nil, err
		}
		if f.cfg.TokenReuse {
			b.memo.share(name, f.gen, &sharedToken{minted: minted{Minted: registry.Minted{Token: f.Token}}, issued: f.issued})
		}
		return issuedToken{minted: f.minted, cfg: f.cfg}, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return issuedToken{}, r.Err
		}
		t := r.Val.(issuedToken)
		t.shared = t.shared || !led // the channel's delivery orders led's write before this read
		t.flight = true
		return t, nil
	case <-ctx.Done():
		return issuedToken{}, ctx.Err()
	}
}
