package apitokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
)

// settleGrace is how long after an interrupted rotation began the provider may still refuse
// the new credential while accepting the old one, before Vault concludes that the provider
// never took the new one. Credential stores behind an API apply changes a moment late; until
// the grace has passed, such a refusal settles nothing and the WAL entry is kept.
const settleGrace = 10 * time.Minute

// outcome of settling an interrupted rotation.
type outcome int

const (
	// unresolved: neither credential could be confirmed yet; keep the WAL entry.
	unresolved outcome = iota
	// adoptedNew: the new credential works and is now stored.
	adoptedNew
	// keptOld: the provider never took the new credential; the old one stays stored.
	keptOld
	// dropped: nothing to recover (the config was deleted or replaced by an operator, or
	// the entry marked a create call whose orphan, if any, has been reported).
	dropped
)

// errNotYet is an unresolved settle in which the provider still accepts the old credential
// and refuses the new one, within settleGrace of the rotation.
var errNotYet = errors.New("the provider still accepts the old credential and refuses the new one: " +
	"it may not have applied the change yet")

// settle decides an interrupted rotation by asking the provider which credential it
// accepts, and stores that one. The caller holds the config's exclusive lock. Once a new
// credential may have reached the provider, a refusal of it is final only when the old one
// still works and settleGrace has passed since the rotation began. Retiring the losing
// credential upstream is best effort and only logged.
func (b *backend) settle(ctx context.Context, s logical.Storage, e rotationWAL) (outcome, error) {
	cfg, err := getConfig(ctx, s, e.Name)
	if err != nil {
		return unresolved, err
	}
	if cfg == nil || cfg.Provider != e.Provider ||
		(!cfg.credential.sameRoot(e.Old) && !e.Creating && !cfg.credential.sameRoot(e.New)) {
		return dropped, nil
	}
	p, ok := b.providerFor(e.Name, cfg).(rotator)
	if !ok {
		return dropped, nil
	}
	if e.Creating {
		b.reportOrphans(ctx, s, p, cfg, e)
		return dropped, nil
	}
	if cfg.credential.sameRoot(e.New) {
		// Stored already; only the old credential's retirement may be outstanding.
		b.retire(ctx, p, e.Name, e.Old)
		return adoptedNew, nil
	}

	_, errNew := p.Mint(ctx, e.New)
	if errNew == nil {
		cfg.credential.adoptRoot(e.New)
		cfg.LastRotated = b.now().UTC()
		if err := b.putConfig(ctx, s, e.Name, cfg); err != nil {
			return unresolved, err
		}
		b.Logger().Info("settled an interrupted rotation: the new credential works and is stored", "config", e.Name)
		b.retire(ctx, p, e.Name, e.Old)
		return adoptedNew, nil
	}
	if !apiclient.IsRejected(errNew) {
		return unresolved, fmt.Errorf("confirm new credential: %w", errNew)
	}
	_, errOld := p.Mint(ctx, e.Old)
	if errOld != nil {
		return unresolved, fmt.Errorf("the provider refuses both the new credential (%v) and the old one: %w", errNew, errOld)
	}
	if age := b.now().Sub(e.Started); age < settleGrace {
		return unresolved, fmt.Errorf("%w (%s after the rotation began; the old one is kept only after %s)",
			errNotYet, age.Round(time.Second), settleGrace)
	}
	b.Logger().Info("settled an interrupted rotation: the provider never took the new credential", "config", e.Name)
	b.retire(ctx, p, e.Name, e.New)
	return keptOld, nil
}

func (b *backend) retire(ctx context.Context, p rotator, name string, gone credential) {
	if err := p.Retire(ctx, gone); err != nil {
		b.Logger().Warn("could not remove the replaced credential upstream", "config", name, "error", err)
	}
}

// reportOrphans names, in a warning in the log, every credential upstream that an
// interrupted create call may have made and nobody holds: listed now, absent before the
// call (e.Known), and neither stored nor held by another rotation of the config. Vault never
// deletes it: an operator could have created it in the same moment. It returns the warnings.
func (b *backend) reportOrphans(ctx context.Context, s logical.Storage, p rotator, cfg *accountConfig, e rotationWAL) []string {
	c, ok := p.(creator)
	if !ok {
		return nil
	}
	now, err := c.Inventory(ctx, cfg.credential)
	if err != nil {
		msg := fmt.Sprintf("an interrupted rotation of %q may have created a %s credential upstream that nobody holds, "+
			"and the provider could not be asked (%v): look in its console for one created around %s other than %s",
			e.Name, e.Provider, err, e.Started.UTC().Format(time.RFC3339), cfg.credential.identifier(cfg.Provider))
		b.Logger().Warn(msg)
		return []string{msg}
	}
	held := []string{cfg.credential.identifier(cfg.Provider)}
	if pending, err := pendingRotations(ctx, s, e.Name); err == nil {
		for _, pr := range pending {
			held = append(held, pr.entry.New.identifier(e.Provider))
		}
	}
	var warnings []string
	for _, id := range now {
		if slices.Contains(e.Known, id) || slices.Contains(held, id) {
			continue
		}
		msg := fmt.Sprintf("%s credential %s was created upstream by an interrupted rotation of %q and is used by nobody: "+
			"delete it in the provider's console", e.Provider, id, e.Name)
		b.Logger().Warn(msg, "config", e.Name, "orphan", id)
		warnings = append(warnings, msg)
	}
	return warnings
}

// settlePending settles every interrupted rotation of config name under its exclusive lock
// and deletes the WAL entries it resolved. It reports whether any was resolved.
func (b *backend) settlePending(ctx context.Context, s logical.Storage, name string) (bool, error) {
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()
	return b.settlePendingLocked(ctx, s, name)
}

// settlePendingLocked is settlePending for a caller that holds the lock. It stops at the
// first entry it cannot settle and returns why.
func (b *backend) settlePendingLocked(ctx context.Context, s logical.Storage, name string) (bool, error) {
	pending, err := pendingRotations(ctx, s, name)
	if err != nil {
		return false, err
	}
	resolved := false
	for _, pr := range pending {
		out, err := b.settle(ctx, s, pr.entry)
		if out == unresolved {
			return resolved, err
		}
		if out != dropped {
			b.memo.forget(name) // a settled recovery: the shared token may be dead
			resolved = true
		}
		if err := framework.DeleteWAL(ctx, s, pr.id); err != nil {
			return resolved, fmt.Errorf("delete settled WAL entry: %w", err)
		}
	}
	return resolved, nil
}

// walRollback is Vault's rollback hook for WAL entries older than walRollbackMinAge. It
// returns nil once the entry is resolved (Vault then deletes it) and an error to keep it.
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data any) error {
	if kind != walKindRotation {
		b.Logger().Warn("dropping a WAL entry of unknown kind", "kind", kind)
		return nil
	}
	e, err := decodeRotationWAL(data)
	if err != nil {
		b.Logger().Error("dropping an unreadable rotation WAL entry", "error", err)
		return nil
	}
	lock := b.lock(e.Name)
	lock.Lock()
	defer lock.Unlock()

	// The rotation that wrote the entry may have finished while we waited for the lock.
	pending, err := pendingRotations(ctx, req.Storage, e.Name)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(pending, func(pr pendingRotation) bool { return pr.entry.Nonce == e.Nonce }) {
		return nil
	}
	out, err := b.settle(ctx, req.Storage, e)
	if out != unresolved {
		if out != dropped {
			b.memo.forget(e.Name)
		}
		return nil
	}
	if errors.Is(err, errNotYet) {
		b.Logger().Info("interrupted rotation not settled yet; will retry", "config", e.Name, "reason", err)
	} else {
		b.Logger().Warn("interrupted rotation still unresolved; will retry", "config", e.Name, "error", err)
	}
	if errors.Is(err, logical.ErrReadOnly) {
		return logical.ErrReadOnly
	}
	return fmt.Errorf("config %q: %w", e.Name, err)
}
