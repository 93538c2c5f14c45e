package apitokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
)

// outcome of settling an interrupted rotation.
type outcome int

const (
	// unresolved: neither credential could be confirmed yet; keep the WAL entry.
	unresolved outcome = iota
	// adoptedNew: the new credential works and is now stored.
	adoptedNew
	// keptOld: the provider refused the new credential outright; the old one stays stored.
	keptOld
	// dropped: nothing to recover (the config was deleted or replaced by an operator, or
	// the entry marked a create call whose orphan, if any, has been named).
	dropped
)

// errNotYet is an unresolved settle in which the provider acknowledged the new credential
// but still accepts the old one and refuses the new: it has not applied the change yet.
var errNotYet = errors.New("the provider acknowledged the new credential but still accepts the old one: " +
	"it has not applied the change yet")

// settle decides an interrupted rotation by asking the provider which credential it
// accepts, and stores that one. The caller holds the config's exclusive lock; id is the
// entry's WAL id (settle may replace the entry, see below).
//
// The new credential is never given up because the provider refuses it: a provider may
// apply a change a moment after acknowledging it. When the new one is refused and the old
// one works, a provider whose activation kills the old credential (Exclusive) is asked
// again, with the same new credential: a definite refusal (400, 401, 403) of that means it
// never took it (kept old); an acknowledgement is written to a new WAL entry, and from then
// on the rotation waits for the provider to apply it, never keeping the old one. Retiring
// the losing credential upstream is best effort and only logged.
func (b *backend) settle(ctx context.Context, s logical.Storage, id string, e rotationWAL) (outcome, error) {
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
		if _, err := b.reportOrphans(ctx, s, p, cfg, e); err != nil {
			return unresolved, err // keep the marker until the orphan can be looked for
		}
		return dropped, nil
	}
	if cfg.credential.sameRoot(e.New) {
		// Stored already; only the old credential's retirement may be outstanding.
		b.retire(ctx, p, e.Provider, e.Name, e.Old)
		return adoptedNew, nil
	}

	_, errNew := p.Mint(ctx, e.New)
	if errNew == nil {
		return b.adopt(ctx, s, p, cfg, e)
	}
	if !apiclient.IsRejected(errNew) {
		return unresolved, fmt.Errorf("confirm new credential: %w", errNew)
	}
	if _, errOld := p.Mint(ctx, e.Old); errOld != nil {
		return unresolved, fmt.Errorf("the provider refuses the new credential (%v), and the old one does not work either: %w", errNew, errOld)
	}
	switch {
	case !p.Exclusive():
		b.Logger().Info("settled an interrupted rotation: the new credential does not work, the old one does and is kept", "config", e.Name)
		b.retire(ctx, p, e.Provider, e.Name, e.New)
		return keptOld, nil
	case e.Acknowledged:
		return unresolved, errNotYet
	}
	// Whether the provider ever received the change is unknown: send it again.
	actErr := p.Activate(ctx, e.Old, e.New)
	switch {
	case apiclient.IsRejected(actErr):
		b.Logger().Info("settled an interrupted rotation: the provider refuses the new credential", "config", e.Name, "error", actErr)
		return keptOld, nil
	case actErr != nil:
		return unresolved, fmt.Errorf("send the new credential again: %w", actErr)
	}
	ackID, err := b.acknowledge(ctx, s, id, e)
	if err != nil {
		return unresolved, err
	}
	if _, errNew = p.Mint(ctx, e.New); errNew != nil {
		return unresolved, fmt.Errorf("%w (%v)", errNotYet, errNew)
	}
	out, err := b.adopt(ctx, s, p, cfg, e)
	if out == adoptedNew {
		b.deleteWAL(ctx, s, e.Name, ackID)
	}
	return out, err
}

// adopt stores the rotation's new credential, confirmed to work, and retires the old one.
func (b *backend) adopt(ctx context.Context, s logical.Storage, p rotator, cfg *accountConfig, e rotationWAL) (outcome, error) {
	cfg.credential.adoptRoot(e.New)
	cfg.LastRotated = b.now().UTC()
	cfg.Rotation.clearFailures()
	if err := b.putConfig(ctx, s, e.Name, cfg); err != nil {
		return unresolved, err
	}
	b.Logger().Info("settled an interrupted rotation: the new credential works and is stored", "config", e.Name)
	b.retire(ctx, p, e.Provider, e.Name, e.Old)
	return adoptedNew, nil
}

// acknowledge replaces WAL entry id by one that records that the provider acknowledged the
// new credential, under a new nonce (a rollback holding the old entry finds it gone), and
// returns the new entry's id.
func (b *backend) acknowledge(ctx context.Context, s logical.Storage, id string, e rotationWAL) (string, error) {
	e.Acknowledged, e.Nonce = true, uuid.NewString()
	ackID, err := framework.PutWAL(ctx, s, walKindRotation, e)
	if err != nil {
		return "", fmt.Errorf("record the provider's acknowledgement: %w", err)
	}
	b.deleteWAL(ctx, s, e.Name, id)
	return ackID, nil
}

// retire removes gone upstream, best effort: a failure is logged with gone's identifier,
// so that an operator can remove it by hand.
func (b *backend) retire(ctx context.Context, p rotator, provider, name string, gone credential) error {
	err := p.Retire(ctx, gone)
	if err != nil {
		b.Logger().Warn("could not remove a credential upstream that nobody uses now; remove it in the provider's console",
			"config", name, "provider", provider, "identifier", gone.identifier(provider), "error", err)
	}
	return err
}

// reportOrphans names, in a warning in the log, every credential upstream that an
// interrupted create call may have made and nobody holds: listed now, absent before the
// call (e.Known), and neither stored nor held by another rotation of the config. Vault never
// deletes it: an operator could have created it in the same moment. It returns the
// warnings, or an error when the provider cannot be asked.
func (b *backend) reportOrphans(ctx context.Context, s logical.Storage, p rotator, cfg *accountConfig, e rotationWAL) ([]string, error) {
	c, ok := p.(creator)
	if !ok {
		return nil, nil
	}
	now, err := c.Inventory(ctx, cfg.credential)
	if err != nil {
		return nil, fmt.Errorf("list the credentials upstream to look for one an interrupted rotation created: %w", err)
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
	return warnings, nil
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
	if !b.WriteSafeReplicationState() {
		return false, logical.ErrReadOnly // settling writes: Vault forwards to the node that can
	}
	pending, err := pendingRotations(ctx, s, name)
	if err != nil {
		return false, err
	}
	resolved := false
	for _, pr := range pending {
		out, err := b.settle(ctx, s, pr.id, pr.entry)
		if out == unresolved {
			return resolved, readOnlyAware(err)
		}
		if out != dropped {
			b.recovered(ctx, pr.entry, out)
			resolved = true
		}
		b.deleteWAL(ctx, s, name, pr.id)
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

	// The rotation that wrote the entry may have finished, or replaced it, while we waited
	// for the lock: settle the entry as it is stored now, if it still is.
	pending, err := pendingRotations(ctx, req.Storage, e.Name)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(pending, func(pr pendingRotation) bool { return pr.entry.Nonce == e.Nonce })
	if i < 0 {
		return nil
	}
	out, err := b.settle(ctx, req.Storage, pending[i].id, pending[i].entry)
	if out != unresolved {
		if out != dropped {
			b.recovered(ctx, pending[i].entry, out)
		}
		return nil
	}
	if errors.Is(err, errNotYet) {
		b.Logger().Info("interrupted rotation not settled yet; will retry", "config", e.Name, "reason", err)
	} else {
		b.Logger().Warn("interrupted rotation still unresolved; will retry", "config", e.Name, "error", err)
	}
	return fmt.Errorf("config %q: %w", e.Name, readOnlyAware(err))
}

// recovered accounts for a settled recovery: it drops the shared token (the credential may
// have changed, or the old tokens died), counts it and sends its event.
func (b *backend) recovered(ctx context.Context, e rotationWAL, out outcome) {
	b.memo.forget(e.Name)
	o := outcomeSuccess
	if out == keptOld {
		o = outcomeKeptOld
	}
	b.metrics.rotation(e.Provider, e.Name, triggerRecovered, o)
	b.event(ctx, eventRotate, e.Name, e.Provider, "trigger", triggerRecovered, "outcome", o)
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
