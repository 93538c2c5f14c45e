package apitokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// The rule that keeps every root credential (README, "Crash safety"):
//
// A credential sent to the provider in a change whose refusal is not conclusive may become
// the live one at any later time: an answer can be lost, and a lagging provider can apply a
// change long after it answered, or after a newer answer. So it is never discarded
// automatically. It is stored in its config as a fallback before it is sent, and dropped only
//
//  1. when it, or another fallback, or a rotation's new credential, is seen working: that one
//     becomes current at once, and every other fallback and the credential it replaced are
//     dropped. They can never come back: each was sent to replace that same current
//     credential, and the provider applies a change only while the credential whose token
//     authorised it is still the account's (OffBlocks' PUT is authorised by a Bearer of the
//     current pair, and any applied change kills every token of that pair). A Bloq key that
//     was replaced lives on until Vault deletes it, so it is kept as retiring until then;
//  2. when the only send of it was refused outright (a 400, 401 or 403 to rotate-root's own
//     change, or nothing was sent): the provider never took it;
//  3. for a provider whose old credential lives on (Bloq): when the provider refuses it, it
//     is retired instead: kept as retiring, deleted upstream, and dropped once deleted (or no
//     longer listed: Bloq lists a key as soon as its create call answers);
//  4. when an operator writes a credential with force=true, or deletes the config with
//     force=true (a credential write without it is refused while a fallback is held).
//
// While a config holds a fallback, no token of its current credential is handed out: the
// provider may adopt the fallback at any moment, and every token of the current one dies
// then. Reads and Vault's rollback settle it instead, and answer 502 while it stays open.

// unsettledError is a config whose provider may adopt a fallback credential at any moment:
// a rotation not confirmed, or a settle that could not decide.
type unsettledError struct {
	name, provider, identifier string
	// since is when the first fallback the config holds was sent (or stored).
	since time.Time
	// why, when set, says why the fallback is held instead of activate.
	why string
	// activate is the last change's error: nil means the provider acknowledged it.
	activate error
	// confirm is the last confirmation's error.
	confirm error
}

func (e *unsettledError) Error() string {
	return fmt.Sprintf("rotation of %q is unsettled: %s. The new credential is kept as a fallback and settled by "+
		"the next creds read or Vault's periodic function; no token of the old credential is handed out meanwhile "+
		"(it may die at any moment)", e.name, e.reason())
}

// readerError is the error's text for a creds reader, who may not read config: since when
// the rotation is unsettled and why, without the credential's identifier, and what an
// operator does. The provider's answers it quotes still carry the identifiers their calls
// sent: readerText redacts those.
func (e *unsettledError) readerError() string {
	since := ""
	if !e.since.IsZero() {
		since = " since " + e.since.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("rotation of %q unsettled%s: %s. No token is handed out until the provider settles on one "+
		"credential (creds reads and Vault's periodic function ask it); read again later. If it lasts, an operator "+
		"must see config/%s, which says what to do", e.name, since, e.how(), e.name)
}

// reason says why the rotation is unsettled, naming the new credential, each distinct error
// once.
func (e *unsettledError) reason() string {
	return fmt.Sprintf("new %s credential %s: %s", e.provider, e.identifier, e.how())
}

// how says what is known of the change and the confirmation, each distinct error once.
func (e *unsettledError) how() string {
	how := "the provider acknowledged the change"
	switch {
	case e.why != "":
		how = e.why
	case errors.Is(e.activate, errUnchanged):
		how = "the change could not be sent again, which proves nothing about the first sending"
	case e.activate != nil && apiclient.IsRejected(e.activate):
		how = "the change sent again was refused, which proves nothing about the first sending"
	case e.activate != nil:
		how = "the provider's answer to the change is unknown"
	}
	if errs := distinctErrors(e.activate, e.confirm); len(errs) > 0 {
		how += " (" + strings.Join(errs, "; ") + ")"
	}
	return how
}

// distinctErrors are the texts of errs, leaving out nil ones and any that another one
// contains (a provider's answer quoted twice reads as two failures).
func distinctErrors(errs ...error) []string {
	var texts []string
	for _, err := range errs {
		if err != nil {
			texts = append(texts, err.Error())
		}
	}
	var out []string
	for i, t := range texts {
		dup := false
		for j, o := range texts {
			if i != j && strings.Contains(o, t) && (len(o) > len(t) || j < i) {
				dup = true
			}
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out
}

func (e *unsettledError) Unwrap() error { return e.confirm }

// settle applies the rule to config name under its exclusive lock (settleLocked).
func (b *backend) settle(ctx context.Context, s logical.Storage, name string) (*accountConfig, bool, error) {
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()
	return b.settleLocked(ctx, s, name)
}

// settleForRead is settle for a creds read: reads of one config that need it while a settle
// runs wait for that one (and share its outcome) instead of queueing on the lock to ask the
// provider again each, and sending a lagging provider the same change once per reader. The
// settle runs to its end under a deadline of its own (rotationBudget), not the first
// reader's, so a reader that gives up fails no other.
func (b *backend) settleForRead(ctx context.Context, s logical.Storage, name string) (*accountConfig, bool, error) {
	type settled struct {
		cfg     *accountConfig
		changed bool
	}
	ch := b.settleFlight.DoChan(name, func() (any, error) {
		detached := context.WithoutCancel(ctx)
		budget := rotationBudget(&accountConfig{configTail: configTail{RequestTimeout: apiclient.DefaultTimeout}})
		if cfg, err := getConfig(detached, s, name); err == nil && cfg != nil {
			budget = rotationBudget(cfg)
		}
		sctx, cancel := context.WithTimeout(detached, budget)
		defer cancel()
		cfg, changed, err := b.settle(sctx, s, name)
		return settled{cfg, changed}, err
	})
	select {
	case r := <-ch:
		v, _ := r.Val.(settled)
		return v.cfg, v.changed, r.Err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// unsettledErr is the error of a creds read of config name while it holds a fallback.
func (c *accountConfig) unsettledErr(name string) *unsettledError {
	f := c.Fallbacks[len(c.Fallbacks)-1]
	return &unsettledError{name: name, provider: c.Provider, identifier: registry.Identifier(f.cred), since: c.Fallbacks[0].Since,
		why: f.Why}
}

// settleLocked brings config name to a settled state where it can: it turns WAL entries of
// earlier plugin versions into fallbacks and names keys orphaned by interrupted create calls
// (wal.go), adopts the first fallback that works, asks the provider again about one that
// does not, and removes retiring credentials upstream. The caller holds the config's
// exclusive lock. It returns the config as stored (nil if none), whether anything changed,
// and an *unsettledError while the config still holds a fallback; logical.ErrReadOnly where
// storage cannot be written and there is something to settle. After a failed store the
// returned config is the one the settle tried to store, not the stored one.
func (b *backend) settleLocked(ctx context.Context, s logical.Storage, name string) (*accountConfig, bool, error) {
	walChanged, err := b.settleWAL(ctx, s, name)
	if err != nil {
		return nil, walChanged, err
	}
	cfg, err := getConfig(ctx, s, name)
	if err != nil || cfg == nil || (!cfg.unsettled() && len(cfg.Retiring) == 0) {
		return cfg, walChanged, err
	}
	if !b.WriteSafeReplicationState() {
		return cfg, walChanged, logical.ErrReadOnly // settling writes: Vault forwards to the node that can
	}
	ctx, prov, err := b.providerFor(ctx, name, cfg)
	if err != nil {
		return cfg, walChanged, err
	}
	p, ok := prov.(rotator)
	if !ok {
		return cfg, walChanged, nil
	}
	changed := walChanged
	var unsettled error
	if cfg.unsettled() {
		c, err := b.resolve(ctx, s, name, cfg, p)
		changed = changed || c
		var u *unsettledError
		if err != nil && !errors.As(err, &u) {
			return cfg, changed, err
		}
		unsettled = err
	}
	if _, err := b.retireAll(ctx, s, name, cfg, p); err == nil {
		changed = true
	}
	return cfg, changed, unsettled
}

// resolve applies the rule to cfg's fallbacks and stores what it decides: the newest that
// works is adopted (rule 1). If none does, a refused one is retired where the old credential
// lives on (rule 3); where the change kills the old credential (OffBlocks), the
// newest is sent again from the current credential and confirmed, which either adopts it or
// leaves it held. It reports whether it changed the config, and returns an *unsettledError
// while a fallback remains.
func (b *backend) resolve(ctx context.Context, s logical.Storage, name string, cfg *accountConfig, p rotator) (bool, error) {
	var refused error
	dropped := false
	for i := len(cfg.Fallbacks) - 1; i >= 0; i-- {
		f := cfg.Fallbacks[i]
		_, err := p.Mint(ctx, f.cred)
		if err == nil {
			return true, b.adopt(ctx, s, name, cfg, p, f.cred, triggerRecovered)
		}
		refused = err
		// Where the old credential lives on (Bloq), a refused one is retired: recorded first,
		// then deleted upstream (retireAll), so a delete whose record fails is not forgotten.
		if !p.Exclusive() && apiclient.IsRejected(err) {
			cfg.Fallbacks = slices.Delete(cfg.Fallbacks, i, i+1)
			cfg.Retiring = append(cfg.Retiring, f.cred)
			dropped = true
			b.Logger().Info("settled: the provider refuses a fallback credential, which is retired (deleted upstream); "+
				"the current one is kept", "config", name, "retired", registry.Identifier(f.cred))
			b.countRecovery(ctx, name, cfg.Provider, outcomeKeptOld)
		}
	}
	if dropped {
		if err := b.putConfig(ctx, s, name, cfg); err != nil {
			return false, err
		}
	}
	if !cfg.unsettled() {
		return dropped, nil
	}
	newest := cfg.Fallbacks[len(cfg.Fallbacks)-1]
	actErr := refused
	if p.Exclusive() {
		// Whether the provider has the change is unknown, or it has not applied it yet: send
		// it again. A refusal of this send proves nothing about an earlier one.
		actErr = p.Activate(ctx, cfg.cred, newest.cred)
		if actErr == nil || !(errors.Is(actErr, errUnchanged) || apiclient.IsRejected(actErr)) {
			if err := b.confirm(ctx, p, newest.cred, cfg.RequestTimeout); err == nil {
				return true, b.adopt(ctx, s, name, cfg, p, newest.cred, triggerRecovered)
			} else if actErr == nil {
				refused = err
			}
		}
	}
	return dropped, &unsettledError{name: name, provider: cfg.Provider, identifier: registry.Identifier(newest.cred),
		since:    cfg.Fallbacks[0].Since,
		activate: actErr, confirm: refused}
}

// adopt makes next, seen working, config name's current credential and stores it (rule 1):
// every fallback is dropped, and the replaced credential is kept as retiring where it lives on
// upstream. cfg is changed. A failed store leaves storage as it was: next is still a fallback
// there, adopted again by the next settle.
func (b *backend) adopt(ctx context.Context, s logical.Storage, name string, cfg *accountConfig, p rotator, next credential, trigger string) error {
	old := cfg.cred
	cfg.cred = registry.AdoptRoot(cfg.cred, next)
	cfg.Fallbacks = nil
	if !p.Exclusive() && !registry.SameRoot(old, next) {
		cfg.Retiring = append(cfg.Retiring, old)
	}
	cfg.LastRotated = b.now().UTC()
	cfg.Rotation.clearFailures()
	if err := b.putConfig(ctx, s, name, cfg); err != nil {
		return fmt.Errorf("store the new credential (the provider accepts it; it stays a fallback and is adopted "+
			"by the next creds read or Vault's periodic function): %w", err)
	}
	b.memo.forget(name) // the old credential's tokens may be dead
	if trigger == triggerRecovered {
		b.Logger().Info("settled: a fallback credential works and is now the stored one", "config", name)
		b.countRecovery(ctx, name, cfg.Provider, outcomeSuccess)
	}
	return nil
}

// retireAll removes cfg's retiring credentials upstream, best effort, and stores what is left
// when that changed. It returns one warning per credential it could not remove, or an error
// when there was nothing to do or the store failed.
func (b *backend) retireAll(ctx context.Context, s logical.Storage, name string, cfg *accountConfig, p rotator) ([]string, error) {
	if len(cfg.Retiring) == 0 {
		return nil, errors.New("nothing to retire")
	}
	var left []credential
	var warnings []string
	for _, r := range cfg.Retiring {
		if sameKey(cfg.cred, r) {
			// Never delete the key the config now uses (a write must have brought it back
			// without dropping it here): it is simply no longer retiring.
			b.Logger().Warn("a retiring credential is the current one again: kept upstream", "config", name,
				"identifier", registry.Identifier(r))
			continue
		}
		if err := b.retire(ctx, p, cfg.Provider, name, registry.WithAccount(r, cfg.cred)); err != nil && !errors.Is(err, errNotListed) {
			left = append(left, r)
			warnings = append(warnings, fmt.Sprintf("the new credential is stored, but the replaced one (%s) could not be "+
				"removed upstream yet: %v; creds reads and Vault's rollback try again", registry.Identifier(r), err))
		}
	}
	if len(left) == len(cfg.Retiring) {
		return warnings, errors.New("nothing retired")
	}
	cfg.Retiring = left
	return warnings, b.putConfig(ctx, s, name, cfg)
}

// sameKey reports whether a and b name the same credential upstream (their identifier: the
// key a provider call, and a delete, names).
func sameKey(a, b credential) bool { return registry.Identifier(a) == registry.Identifier(b) }

// retire removes gone upstream: a failure is logged with gone's identifier (errNotListed is
// returned but not logged).
func (b *backend) retire(ctx context.Context, p rotator, provider, name string, gone credential) error {
	err := p.Retire(ctx, gone)
	if err != nil && !errors.Is(err, errNotListed) {
		b.Logger().Warn("could not remove a credential upstream that nobody uses now; will retry",
			"config", name, "provider", provider, "identifier", registry.Identifier(gone), "error", err)
	}
	return err
}

// countRecovery accounts for a settled rotation of config name: it counts it and sends its
// event.
func (b *backend) countRecovery(ctx context.Context, name, provider, outcome string) {
	b.metrics.rotation(provider, name, triggerRecovered, outcome)
	b.event(ctx, eventRotate, name, provider, "trigger", triggerRecovered, "outcome", outcome)
}

// readOnlyAware returns logical.ErrReadOnly for a storage write refused because this node
// cannot write (the sentinel itself in-process; over the plugin's gRPC storage, only its
// text survives), so that Vault forwards the request; any other error as it is.
func readOnlyAware(err error) error {
	if err != nil && (errors.Is(err, logical.ErrReadOnly) || strings.Contains(err.Error(), logical.ErrReadOnly.Error())) {
		return logical.ErrReadOnly
	}
	return err
}
