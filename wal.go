package apitokens

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
)

// walKindRotation marks a rotation in flight: written before the provider's side changes,
// deleted once the outcome is stored. The WAL prefix is seal-wrapped like config/.
const walKindRotation = "rotate-root"

// rotationWAL is everything needed to finish or undo an interrupted rotation: both
// credentials, so recovery can ask the provider which one works.
type rotationWAL struct {
	// Nonce tells this rotation's entry from any other (the rollback hook gets no WAL id).
	Nonce    string     `json:"nonce"`
	Name     string     `json:"name"`
	Provider string     `json:"provider"`
	Old      credential `json:"old"`
	New      credential `json:"new"`
}

func newRotationWAL(name, provider string, old, next credential) (rotationWAL, error) {
	nonce, err := uuid.GenerateUUID()
	if err != nil {
		return rotationWAL{}, err
	}
	return rotationWAL{Nonce: nonce, Name: name, Provider: provider, Old: old, New: next}, nil
}

func decodeRotationWAL(data any) (rotationWAL, error) {
	var e rotationWAL
	raw, err := json.Marshal(data)
	if err == nil {
		err = json.Unmarshal(raw, &e)
	}
	if err == nil && (e.Name == "" || e.Nonce == "") {
		err = fmt.Errorf("entry lacks a config name or nonce")
	}
	return e, err
}

type pendingRotation struct {
	id    string
	entry rotationWAL
}

// pendingRotations lists the WAL entries of interrupted rotations of config name.
func pendingRotations(ctx context.Context, s logical.Storage, name string) ([]pendingRotation, error) {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("list WAL: %w", err)
	}
	var out []pendingRotation
	for _, id := range ids {
		w, err := framework.GetWAL(ctx, s, id)
		if err != nil {
			return nil, fmt.Errorf("read WAL entry: %w", err)
		}
		if w == nil || w.Kind != walKindRotation {
			continue
		}
		e, err := decodeRotationWAL(w.Data)
		if err != nil || e.Name != name {
			continue
		}
		out = append(out, pendingRotation{id: id, entry: e})
	}
	return out, nil
}

// outcome of settling an interrupted rotation.
type outcome int

const (
	// unresolved: neither credential could be confirmed; keep the WAL entry.
	unresolved outcome = iota
	// adoptedNew: the new credential works and is now stored.
	adoptedNew
	// keptOld: the new one is refused and the old one works; it stays stored.
	keptOld
	// dropped: the config was deleted or replaced by an operator; nothing to recover.
	dropped
)

// settle decides an interrupted rotation by asking the provider which credential it
// accepts, and stores that one. The caller holds the config's exclusive lock. Retiring the
// losing credential upstream is best effort and only logged.
func (b *backend) settle(ctx context.Context, s logical.Storage, e rotationWAL) (outcome, error) {
	cfg, err := getConfig(ctx, s, e.Name)
	if err != nil {
		return unresolved, err
	}
	if cfg == nil || cfg.Provider != e.Provider ||
		(!cfg.credential.sameRoot(e.Old) && !cfg.credential.sameRoot(e.New)) {
		return dropped, nil
	}
	p, ok := b.providerFor(e.Name, cfg).(rotator)
	if !ok {
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
	if errOld == nil {
		b.Logger().Info("settled an interrupted rotation: the provider never took the new credential", "config", e.Name)
		b.retire(ctx, p, e.Name, e.New)
		return keptOld, nil
	}
	return unresolved, fmt.Errorf("the provider refuses both the new credential (%v) and the old one: %w", errNew, errOld)
}

func (b *backend) retire(ctx context.Context, p rotator, name string, gone credential) {
	if err := p.Retire(ctx, gone); err != nil {
		b.Logger().Warn("could not remove the replaced credential upstream", "config", name, "error", err)
	}
}

// settlePending settles every interrupted rotation of config name under its exclusive lock
// and deletes the WAL entries it resolved. It reports whether any was resolved.
func (b *backend) settlePending(ctx context.Context, s logical.Storage, name string) (bool, error) {
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()
	return b.settlePendingLocked(ctx, s, name)
}

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
		resolved = true
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
	live := false
	for _, pr := range pending {
		live = live || pr.entry.Nonce == e.Nonce
	}
	if !live {
		return nil
	}
	out, err := b.settle(ctx, req.Storage, e)
	if out == unresolved {
		b.Logger().Warn("interrupted rotation still unresolved; will retry", "config", e.Name, "error", err)
		return fmt.Errorf("config %q: %w", e.Name, err)
	}
	return nil
}
