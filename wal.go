package apitokens

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// walKindRotation marks a rotation WAL entry. This version writes one only before a Bloq
// key is created upstream (a create marker): the new credential itself is stored in the
// config as a fallback before it is sent (settle.go). Entries that earlier versions wrote for
// a whole rotation (the old and the new credential) are turned into fallbacks when found.
// The WAL prefix is seal-wrapped like config/.
const walKindRotation = "rotate-root"

// rotationWAL is a rotation WAL entry.
//
// An entry with Creating set is written by a provider whose new credential is created
// upstream (Bloq) just before the create call, when no new credential exists yet: if the
// rotation dies before the fallback is stored, the key it may have created is an orphan
// that nobody holds, and recovery names it (Known lists what existed before). Its secret
// exists only in the create call's answer, so no protocol can keep it.
//
// Its stored form is rotationWALWire's (stored_form.go).
type rotationWAL struct {
	// Nonce tells this entry from any other (the rollback hook gets no WAL id).
	Nonce    string
	Name     string
	Provider string
	Old, New credential
	// Started is when the rotation began, by the backend's clock.
	Started time.Time
	// Creating marks an entry written before a create call; New is empty.
	Creating bool
	// Known are the identifiers of the account's credentials upstream before the create call.
	Known []string
}

func newRotationWAL(name, provider string, old, next credential, started time.Time) rotationWAL {
	return rotationWAL{Nonce: uuid.NewString(), Name: name, Provider: provider, Old: old, New: next, Started: started}
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

// unreadable reports whether a newer version wrote the entry, for a provider this version
// does not know: it may hold a credential this version cannot read, so it is never settled,
// and given up only by force.
func (pr pendingRotation) unreadable() bool { return !knownProvider(pr.entry.Provider) }

// pendingRotations lists the WAL entries of interrupted rotations of config name.
func pendingRotations(ctx context.Context, s logical.Storage, name string) ([]pendingRotation, error) {
	all, err := rotationEntries(ctx, s)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(pr pendingRotation) bool { return pr.entry.Name != name }), nil
}

// rotationEntries lists every rotation WAL entry that decodes; an entry storage cannot read
// is an error (it may hold a credential), one of another kind is left out.
func rotationEntries(ctx context.Context, s logical.Storage) ([]pendingRotation, error) {
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
		if e, err := decodeRotationWAL(w.Data); err == nil {
			out = append(out, pendingRotation{id: id, entry: e})
		}
	}
	return out, nil
}

// deleteWAL removes a settled entry. A failure is only logged: the rollback finds the entry
// again and settles it again (a marker's orphan search is repeated, a conversion finds the
// config already holding the credential).
func (b *backend) deleteWAL(ctx context.Context, s logical.Storage, name, id string) {
	if err := framework.DeleteWAL(ctx, s, id); err != nil {
		b.Logger().Warn("could not delete a settled WAL entry; the rollback will clear it", "config", name, "error", err)
	}
}

// settleWAL settles config name's WAL entries under its exclusive lock: a create marker is
// deleted once the key its call may have orphaned is looked for and named (reportOrphans);
// an entry of an earlier version becomes a fallback of the config (its new credential, when
// the old one is stored) or a retiring credential (its old one, when the new one is stored
// and the old lives on upstream). A marker the provider cannot be asked about yet is kept
// and blocks nothing: the orphan it names is no credential Vault holds. It reports whether
// it changed anything.
func (b *backend) settleWAL(ctx context.Context, s logical.Storage, name string) (bool, error) {
	pending, err := pendingRotations(ctx, s, name)
	if err != nil {
		return false, err
	}
	if len(pending) == 0 {
		b.earlier.settled(name)
		return false, nil
	}
	if !b.WriteSafeReplicationState() {
		return false, logical.ErrReadOnly
	}
	changed := false
	for _, pr := range pending {
		cfg, err := getConfig(ctx, s, name)
		if err != nil {
			return changed, err
		}
		e := pr.entry
		if pr.unreadable() {
			b.Logger().Error("keeping a rotation WAL entry of a provider this version of the plugin does not know: "+
				"a newer version wrote it, and it may hold a credential; upgrade the plugin to settle it",
				"config", name, "provider", e.Provider)
			continue
		}
		if cfg == nil || cfg.Provider != e.Provider {
			b.deleteWAL(ctx, s, name, pr.id)
			continue
		}
		ctx, prov, err := b.providerFor(ctx, name, cfg)
		if err != nil {
			return changed, err
		}
		p, ok := prov.(rotator)
		switch {
		case !ok:
		case e.Creating:
			if _, err := b.reportOrphans(ctx, s, p, cfg, e); err != nil {
				b.Logger().Warn("could not look for a key an interrupted rotation may have created; will retry", "config", name, "error", err)
				continue
			}
		case registry.SameRoot(cfg.cred, e.Old) && !slices.ContainsFunc(cfg.Fallbacks, func(f fallback) bool { return registry.SameRoot(f.cred, e.New) }):
			cfg.Fallbacks = append(cfg.Fallbacks, fallback{cred: e.New, fallbackMeta: fallbackMeta{Since: e.Started,
				Why: "an interrupted rotation of an earlier plugin version sent it"}})
			if err := b.putConfig(ctx, s, name, cfg); err != nil {
				return changed, err
			}
		case registry.SameRoot(cfg.cred, e.New) && !p.Exclusive() && !slices.ContainsFunc(cfg.Retiring, func(r credential) bool { return registry.SameRoot(e.Old, r) }):
			cfg.Retiring = append(cfg.Retiring, e.Old)
			if err := b.putConfig(ctx, s, name, cfg); err != nil {
				return changed, err
			}
		}
		b.deleteWAL(ctx, s, name, pr.id)
		changed = true
	}
	// What is left, if anything, is a create marker or an entry this version cannot read,
	// or one whose delete failed after its credential was stored: none is an earlier
	// version's credential that the config does not hold.
	b.earlier.settled(name)
	return changed, nil
}

// walConfigNames returns the names of the configs that have rotation WAL entries.
func walConfigNames(ctx context.Context, s logical.Storage) (map[string]bool, error) {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	names := map[string]bool{}
	for _, id := range ids {
		if w, err := framework.GetWAL(ctx, s, id); err == nil && w != nil && w.Kind == walKindRotation {
			if e, err := decodeRotationWAL(w.Data); err == nil {
				names[e.Name] = true
			}
		}
	}
	return names, nil
}

// walRollback is Vault's rollback hook for WAL entries older than walRollbackMinAge: it
// settles the entry's config (settleWAL) and returns nil once the entry is gone (Vault then
// deletes it), or an error to keep it. An entry this version cannot read (of another kind,
// one that does not decode, or of a provider it does not know: a newer version wrote it) is
// kept, and logged each time Vault's rollback finds it: it may hold the only copy of a
// credential.
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data any) error {
	if kind != walKindRotation {
		b.Logger().Error("keeping a WAL entry of a kind this version of the plugin does not know: a newer "+
			"version wrote it, and it may hold a credential; upgrade the plugin to settle it", "kind", kind)
		return fmt.Errorf("WAL entry of unknown kind %q kept: upgrade the plugin", kind)
	}
	e, err := decodeRotationWAL(data)
	if err != nil {
		b.Logger().Error("keeping a rotation WAL entry this version of the plugin cannot read: a newer "+
			"version may have written it, and it may hold a credential; upgrade the plugin to settle it", "error", err)
		return fmt.Errorf("unreadable rotation WAL entry kept: %w", err)
	}
	lock := b.lock(e.Name)
	lock.Lock()
	defer lock.Unlock()
	if _, err := b.settleWAL(ctx, req.Storage, e.Name); err != nil {
		return fmt.Errorf("config %q: %w", e.Name, readOnlyAware(err))
	}
	pending, err := pendingRotations(ctx, req.Storage, e.Name)
	if err != nil {
		return err
	}
	if i := slices.IndexFunc(pending, func(pr pendingRotation) bool { return pr.entry.Nonce == e.Nonce }); i >= 0 {
		if pending[i].unreadable() {
			return fmt.Errorf("config %q: an interrupted rotation's entry of provider %q, which this version does not "+
				"know, is kept: upgrade the plugin", e.Name, e.Provider)
		}
		return fmt.Errorf("config %q: an interrupted rotation's create call is not settled yet", e.Name)
	}
	return nil
}

// reportOrphans names, in a warning in the log, every credential upstream that an
// interrupted create call may have made and nobody holds: listed now, absent before the
// call (e.Known), and neither stored nor held as a fallback or retiring. Vault never deletes
// it: an operator could have created it in the same moment. It returns the warnings, or an
// error when the provider cannot be asked.
func (b *backend) reportOrphans(ctx context.Context, s logical.Storage, p rotator, cfg *accountConfig, e rotationWAL) ([]string, error) {
	c, ok := p.(creator)
	if !ok {
		return nil, nil
	}
	now, err := c.Inventory(ctx, cfg.cred)
	if err != nil {
		return nil, fmt.Errorf("list the credentials upstream to look for one an interrupted rotation created: %w", err)
	}
	held := []string{registry.Identifier(cfg.cred)}
	for _, f := range cfg.Fallbacks {
		held = append(held, registry.Identifier(f.cred))
	}
	for _, r := range cfg.Retiring {
		held = append(held, registry.Identifier(r))
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
