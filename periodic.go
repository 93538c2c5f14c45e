package apitokens

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// periodic is the backend's PeriodicFunc, which Vault calls about once a minute: it settles
// every config that holds a fallback or retiring credential, or has a WAL entry (an earlier
// version's, turned into a fallback at once rather than after the rollback's minute;
// settle.go) and performs every scheduled rotation that is due, one config at a time, and
// waits for none (a read that finds one imminent does). It does nothing where storage cannot
// be written (a performance standby or secondary): the active node rotates.
//
// A pass costs a LIST of the configs and of the WAL, and then, per config, a look at the
// config this node holds in memory (loaded from storage the first time, under the config's
// shared lock): a config that needs neither settling nor rotating costs no storage read.
// What this node holds is what storage holds: every write here updates or drops it, and
// Vault's Invalidate drops it when another node writes. A due config is read again from
// storage, under its lock, before it rotates. In case storage ever changed unseen, one pass
// in fullPassEvery reads every config from storage instead.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	start := time.Now()
	fromStorage := b.passes.Add(1)%fullPassEvery == 0
	names, err := req.Storage.List(ctx, configPrefix)
	if err != nil {
		return err
	}
	walNames, err := walConfigNames(ctx, req.Storage)
	if err != nil {
		return err
	}
	for _, name := range names {
		cfg, err := b.configForPass(ctx, req.Storage, name, fromStorage)
		if err != nil {
			b.Logger().Warn("could not read a config; its settling and scheduled rotation wait for the next pass", "config", name, "error", err)
		}
		if err != nil || cfg == nil {
			continue
		}
		if cfg.unsettled() || len(cfg.Retiring) > 0 || walNames[name] {
			settled, _, err := b.settle(ctx, req.Storage, name)
			if err != nil {
				b.Logger().Debug("config not settled", "config", name, "error", err)
				if settled != nil && settled.unsettled() {
					continue // a rotation would only settle it again, and count a failure
				}
			}
			// A settle may have changed the config: rotateScheduled reads it again.
		} else if !cfg.rotationDue(b.now()) {
			continue
		}
		if _, err := b.rotateScheduled(ctx, req.Storage, name); err != nil {
			b.Logger().Debug("scheduled rotation not done", "config", name, "error", err)
		}
	}
	b.metrics.periodicPass(time.Since(start), len(names))
	return nil
}

// fullPassEvery is how often (in passes, about a minute apart) the periodic pass reads every
// config from storage rather than from memory.
const fullPassEvery = 60

// configForPass returns config name for the periodic pass: from memory, or loaded under the
// config's shared lock and remembered; from storage only if fromStorage.
func (b *backend) configForPass(ctx context.Context, s logical.Storage, name string, fromStorage bool) (*accountConfig, error) {
	if fromStorage {
		return getConfig(ctx, s, name)
	}
	if cfg, _ := b.memo.config(name); cfg != nil {
		return cfg, nil
	}
	lock := b.lock(name)
	lock.RLock()
	defer lock.RUnlock()
	return b.cachedConfig(ctx, s, name)
}
