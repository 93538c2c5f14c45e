package apitokens

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// Backoff between the confirmation mints of a new credential.
const (
	confirmWaitMin = 250 * time.Millisecond
	confirmWaitMax = 5 * time.Second
)

// rotationRefused is a 400: this account cannot be rotated.
type rotationRefused struct{ why string }

func (e *rotationRefused) Error() string { return e.why }

// rotate replaces config name's root credential under its exclusive lock:
//
//  1. settle the config first (settle.go): a new rotation is refused while the provider may
//     still adopt a fallback; a scheduled one that is not due after it (a fallback adopted,
//     its window closed) stops there;
//  2. a provider that creates the new credential upstream (Bloq) lists the account's
//     credentials and writes a WAL entry marking the create call, so that a key orphaned by a
//     crash during it can be named;
//  3. Prepare the next credential (OffBlocks: generated here; Bloq: created upstream);
//  4. store it in the config as a fallback: from here on nothing can be lost, and no token
//     of the current credential is handed out; a scheduled rotation whose cron
//     rotation_window closed meanwhile is withdrawn here (withdraw);
//  5. Activate it upstream (OffBlocks PUT, after which the old pair dies). A definite refusal
//     (400, 401, 403) of this, its only send, or nothing sent at all, drops the fallback;
//  6. confirm it by minting, retried with backoff for up to request_timeout: a provider may
//     apply the change a moment late. Unconfirmed, it stays a fallback (unsettledError);
//  7. adopt it: it becomes the stored credential, and the old one is retired upstream where
//     it lives on (Bloq DELETE; a failure is a warning, retried by later settles).
//
// trigger (manual or scheduled) labels the rotation's metrics and event.
func (b *backend) rotate(ctx context.Context, s logical.Storage, name, trigger string) (*accountConfig, []string, error) {
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()
	return b.rotateLocked(ctx, s, name, trigger)
}

// rotateLocked is rotate for a caller that holds the config's exclusive lock. It counts the
// rotation and sends its event, unless it was refused before anything started.
func (b *backend) rotateLocked(ctx context.Context, s logical.Storage, name, trigger string) (cfg *accountConfig, warnings []string, err error) {
	defer b.memo.forget(name) // whatever happens, the shared token may be dead afterwards
	provider := ""
	defer func() {
		var refused *rotationRefused
		if provider == "" || errors.As(err, &refused) || err == logical.ErrReadOnly {
			return
		}
		outcome := outcomeSuccess
		var unsettled *unsettledError
		switch {
		case errors.As(err, &unsettled):
			outcome = outcomeUnsettled
		case err != nil:
			outcome = outcomeFailure
		}
		b.metrics.rotation(provider, name, trigger, outcome)
		b.event(ctx, eventRotate, name, provider, "trigger", trigger, "outcome", outcome)
	}()

	cfg, _, err = b.settleLocked(ctx, s, name)
	switch {
	case err == logical.ErrReadOnly:
		return nil, nil, err
	case err != nil && cfg != nil && cfg.unsettled():
		return nil, nil, &pendingRotationError{name: name, fallbacks: cfg.Fallbacks, provider: cfg.Provider, cause: err}
	case err != nil:
		return nil, nil, err
	case cfg == nil:
		return nil, nil, errConfigNotFound(name)
	case byClock(trigger) && !cfg.rotationDue(b.now()):
		// Not due any more: the settle adopted a fallback (the credential is new, and the
		// schedule counts from now), or the slot's rotation_window closed while it ran. Other
		// nodes now hand out tokens of the stored credential in leases that end at the next
		// slot; rotating it would kill them.
		b.Logger().Info("scheduled rotation not needed any more: its settle adopted a new credential, or its "+
			"rotation_window closed meanwhile", "config", name, "next_rotation", cfg.nextRotation(b.now()))
		return cfg, nil, nil
	}
	ctx, prov, err := b.providerFor(ctx, name, cfg)
	if err != nil {
		return nil, nil, err
	}
	p, ok := prov.(rotator)
	if !ok {
		return nil, nil, &rotationRefused{fmt.Sprintf("provider %s has no rotation API: issue a new key in its console and write it to config/%s", cfg.Provider, name)}
	}
	if err := canRotate(cfg); err != nil {
		return nil, nil, &rotationRefused{err.Error()}
	}

	provider = cfg.Provider
	cur := cfg.cred
	next, markerID, err := b.prepare(ctx, s, p, cfg, name)
	if err != nil {
		return nil, nil, err
	}
	cfg.Fallbacks = append(cfg.Fallbacks, fallback{cred: next, fallbackMeta: fallbackMeta{Since: b.now().UTC(), Trigger: trigger,
		Why: "a rotation sent it to the provider and has not confirmed it yet"}})
	if err := b.putConfig(ctx, s, name, cfg); err != nil {
		// Nothing changed upstream but a new Bloq key, which nobody can hold now: remove it.
		// If that fails too, the marker stays, and the rollback names the key.
		if markerID != "" && b.retire(ctx, p, cfg.Provider, name, next) == nil {
			b.deleteWAL(ctx, s, name, markerID)
		}
		return nil, nil, fmt.Errorf("store the new credential before sending it: %w", err)
	}
	if markerID != "" {
		b.deleteWAL(ctx, s, name, markerID)
	}
	if byClock(trigger) && !cfg.rotationDue(b.now()) {
		cfg, warnings, err = b.withdraw(ctx, s, p, name, cfg, next)
		if err == nil {
			provider = "" // nothing rotated: no rotation to count (a failed withdrawal counts as a failure)
		}
		return cfg, warnings, err
	}

	stepErr := p.Activate(ctx, cur, next)
	if errors.Is(stepErr, errUnchanged) || apiclient.IsRejected(stepErr) {
		// Its only send was refused outright, or never made: the provider cannot adopt it.
		cfg.Fallbacks = cfg.Fallbacks[:len(cfg.Fallbacks)-1]
		if err := b.storeRetrying(ctx, s, name, cfg); err != nil {
			// Kept, it is sent again by every settle and stays unsettled if refused each time:
			// nothing proves an earlier send was refused. An operator's forced credential write ends it.
			b.Logger().Error("could not drop a credential the provider refused outright; the config stays unsettled "+
				"until it settles or an operator writes the credential with force=true", "config", name, "error", err)
		}
		if errors.Is(stepErr, errUnchanged) {
			return nil, nil, fmt.Errorf("rotation failed, %w", stepErr) // "…, nothing changed upstream: <why>"
		}
		return nil, nil, fmt.Errorf("the provider refused the new credential; the stored one is unchanged: %w", stepErr)
	}
	// The provider acknowledged the change, or its outcome is unknown: wait for it.
	if err := b.confirm(ctx, p, next, cfg.RequestTimeout); err != nil {
		why := "the provider acknowledged it but has not applied it yet"
		if stepErr != nil {
			why = "the provider's answer to the change was lost"
		}
		cfg.Fallbacks[len(cfg.Fallbacks)-1].Why = why
		if perr := b.putConfig(ctx, s, name, cfg); perr != nil {
			b.Logger().Warn("could not record why a fallback credential is held", "config", name, "error", perr)
		}
		b.Logger().Warn("rotation unsettled; the new credential is kept as a fallback", "config", name, "error", err)
		return nil, nil, &unsettledError{name: name, provider: cfg.Provider, identifier: registry.Identifier(next),
			since:    cfg.Fallbacks[0].Since,
			activate: stepErr, confirm: err}
	}
	if err := b.adopt(ctx, s, name, cfg, p, next, trigger); err != nil {
		return nil, nil, err
	}
	crashpoint("after-config-write")
	if stepErr != nil {
		warnings = append(warnings, fmt.Sprintf("the provider's answer to the change was lost (%v), "+
			"but the new credential was confirmed and stored", stepErr))
	}
	if w, err := b.retireAll(ctx, s, name, cfg, p); err == nil || len(w) > 0 {
		warnings = append(warnings, w...)
	}
	b.Logger().Info("rotated root credential", "config", name, "provider", cfg.Provider)
	return cfg, warnings, nil
}

// byClock reports whether a rotation of trigger runs because its time came (scheduled or
// planned), and so only while it is due.
func byClock(trigger string) bool { return trigger == triggerScheduled || trigger == triggerPlanned }

// withdraw ends a scheduled rotation that stopped being due while it prepared (its cron
// rotation_window closed during its provider calls or stores, such as a slow Bloq create):
// from then on other nodes hand out tokens of the stored credential in leases that end at the
// next slot, so the new one, stored as a fallback but never sent, is dropped, and a key
// created upstream for it (Bloq) is retired like any replaced key. A failed store (or a crash
// before it) keeps it a fallback, as the rotation's error says: nothing is lost, but the next
// settle completes the rotation, and the tokens other nodes leased meanwhile die with it.
func (b *backend) withdraw(ctx context.Context, s logical.Storage, p rotator, name string, cfg *accountConfig, next credential) (*accountConfig, []string, error) {
	cfg.Fallbacks = cfg.Fallbacks[:len(cfg.Fallbacks)-1]
	if !p.Exclusive() {
		cfg.Retiring = append(cfg.Retiring, next)
	}
	if err := b.storeRetrying(ctx, s, name, cfg); err != nil {
		return nil, nil, fmt.Errorf("the scheduled rotation is no longer due (its rotation_window closed while it "+
			"prepared), and its new credential could not be dropped; it stays a fallback: %w", err)
	}
	b.Logger().Info("scheduled rotation withdrawn: its rotation_window closed while it prepared; the stored "+
		"credential is kept", "config", name, "withdrawn", registry.Identifier(next))
	warnings, _ := b.retireAll(ctx, s, name, cfg, p)
	return cfg, warnings, nil
}

// prepare returns the next credential. For a provider that creates it upstream, a WAL entry
// marks the create call first, and its id is returned: the caller deletes it once the new
// credential is stored as a fallback, so that no crash can hide a key created upstream. If the
// create call fails, the credential it may have created anyway is looked for at once and
// named in the error, and the marker is deleted here.
func (b *backend) prepare(ctx context.Context, s logical.Storage, p rotator, cfg *accountConfig, name string) (next credential, markerID string, err error) {
	c, creates := p.(creator)
	if !creates {
		next, err = p.Prepare(ctx, cfg.cred)
		return next, "", err
	}
	known, err := c.Inventory(ctx, cfg.cred)
	if err != nil {
		return nil, "", err
	}
	marker := newRotationWAL(name, cfg.Provider, nil, nil, b.now()) // no secret: none is needed
	marker.Creating, marker.Known = true, known
	markerID, err = framework.PutWAL(ctx, s, walKindRotation, marker)
	if err != nil {
		return nil, "", fmt.Errorf("write rotation WAL: %w", err)
	}
	next, err = p.Prepare(ctx, cfg.cred)
	if err != nil {
		orphans, lerr := b.reportOrphans(ctx, s, p, cfg, marker)
		switch {
		case lerr != nil:
			// The marker stays: the rollback looks for the orphan once the provider answers.
			return nil, "", fmt.Errorf("%w; a key it may have created upstream is looked for later (%v)", err, lerr)
		case len(orphans) > 0:
			err = fmt.Errorf("%w; %s", err, orphans[0])
		}
		b.deleteWAL(ctx, s, name, markerID)
		return nil, "", err
	}
	return next, markerID, nil
}

// confirm mints with next until the provider accepts it, backing off between tries, for at
// most budget by the backend's clock and never past ctx. It returns nil once next works,
// else the last error.
func (b *backend) confirm(ctx context.Context, p provider, next credential, budget time.Duration) error {
	deadline := b.now().Add(budget)
	wait := confirmWaitMin
	for {
		_, err := p.Mint(ctx, next)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || b.now().Add(wait).After(deadline) {
			return err
		}
		if b.sleep(ctx, wait) != nil {
			return err
		}
		wait = min(2*wait, confirmWaitMax)
	}
}

// pendingRotationError refuses an operation because the provider may still adopt a
// fallback credential of the config.
type pendingRotationError struct {
	name, provider string
	// mount is the request's mount point ("apitokens/"), for the command the error suggests.
	mount     string
	fallbacks []fallback
	// forDelete and forWrite say the refused operation is a delete or a credential write,
	// which force=true overrides.
	forDelete, forWrite bool
	cause               error
}

func (e *pendingRotationError) Error() string {
	what := "an earlier rotation"
	if n := len(e.fallbacks); n > 0 {
		f := e.fallbacks[n-1]
		what = fmt.Sprintf("a rotation begun at %s to %s credential %s", f.Since.UTC().Format(time.RFC3339),
			e.provider, registry.Identifier(f.cred))
	}
	why := ""
	var u *unsettledError
	switch {
	case errors.As(e.cause, &u):
		why = u.reason()
	case e.cause != nil:
		why = e.cause.Error()
	}
	msg := fmt.Sprintf("config %q has %s that is unsettled (%s): the provider may adopt that credential at any "+
		"moment, and the config keeps it as a fallback. It is settled by the next creds read or Vault's periodic "+
		"function once the provider answers; try again then", e.name, what, why)
	mount := strings.TrimSuffix(e.mount, "/")
	if mount == "" {
		mount = "<mount>"
	}
	switch {
	case e.forDelete:
		msg += fmt.Sprintf(", or delete anyway, giving that credential up, with: vault delete %s/config/%s force=true", mount, e.name)
	case e.forWrite:
		msg += fmt.Sprintf(", or store this credential anyway, giving that credential up: write it again with "+
			"force=true (vault write %s/config/%s force=true ...)", mount, e.name)
	}
	return msg
}

func (e *pendingRotationError) Unwrap() error { return e.cause }
