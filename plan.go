package apitokens

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// A planned rotation (rotate-root planned=true) rotates a config's root credential once every
// creds lease already handed out of it has ended, and caps every lease handed out from then
// on at that moment, so that no consumer is left holding a token the rotation killed. What it
// needs to know is when the latest of those leases ends: leaseMarks below.

// plannedRotation is a config's planned rotation, stored in state/<name> (state.go) and
// never in config/<name>, which an older version would rewrite without it.
type plannedRotation struct {
	// At is when the rotation runs (rotates_at): no lease of the credential it replaces ends
	// after it. Zero: no plan.
	At time.Time
	// Made is when it was planned.
	Made time.Time
	// replaces is the credential it rotates: a plan stored beside another credential (an
	// operator's write, a rotation, a crash between putConfig's writes) is not attached.
	replaces credential
}

// plan returns c's planned rotation, or the zero plan when it has none or it plans to replace
// a credential c no longer holds (c's credential changed since: the plan is void).
func (c *accountConfig) plan() plannedRotation {
	p := c.Plan
	if p.At.IsZero() || (p.replaces != nil && !registry.SameRoot(p.replaces, c.cred)) {
		return plannedRotation{}
	}
	return p
}

// keepPlanBackoff moves c's planned rotation to its failure backoff (planDue), for a config
// write that clears the failures: leases handed out meanwhile were capped at the backoff, and
// the plan must not come before them.
func (c *accountConfig) keepPlanBackoff() {
	if !c.Plan.At.IsZero() {
		c.Plan.At = c.planDue()
	}
}

// leaseMarks is, per config, the latest end of a creds lease this backend has handed out
// (by its clock, plus Vault's moment to start the lease: rotationLeaseMargin covers it). It
// lives in memory only: a storage write per read would cost every read, and a performance
// standby cannot write. Each lease is recorded under the config's shared lock, in the same
// step that caps it at the config's scheduled or planned rotation (issueLease), and plans
// and schedules read it under the exclusive lock: so every lease either is in the mark the
// plan reads, or is capped by the plan.
type leaseMarks struct {
	mu  sync.Mutex
	end map[string]time.Time
}

// markKey is what leaseMarks counts leases by: config c's credential (its provider and
// identifier), so that a config deleted and created again, under its name or another, with
// the same credential counts the leases the first handed out; a config whose credential has
// no identifier counts by its name.
func markKey(name string, c *accountConfig) string {
	if id := registry.Identifier(c.cred); id != "" {
		return c.Provider + "\x00" + id
	}
	return "\x00" + name
}

// leaseKey is markKey as computed when c was read or stored (c.markKey), or now.
func (c *accountConfig) leaseKey(name string) string {
	if c.markKey != "" {
		return c.markKey
	}
	return markKey(name, c)
}

// record notes a lease that ends at end, of the credential key names (markKey).
func (m *leaseMarks) record(name string, end time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.end == nil {
		m.end = map[string]time.Time{}
	}
	if end.After(m.end[name]) {
		m.end[name] = end
	}
}

// latest returns the latest end recorded for key (zero if none).
func (m *leaseMarks) latest(name string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.end[name]
}

// forgetEnded drops key's mark if every lease it counts has ended by now (its config is
// deleted: a config created again with the same credential must still count leases that
// have not).
func (m *leaseMarks) forgetEnded(name string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.end[name].After(now) {
		delete(m.end, name)
	}
}

// marksComplete reports whether this node sees every creds lease the mount hands out: on
// Vault Community Edition, standby nodes forward every request to the active node, which
// serves them all; Vault Enterprise's performance standbys serve creds reads themselves,
// and their marks are out of this node's sight. An unknown Vault counts as Enterprise.
func marksComplete(env *logical.PluginEnvironment, err error) bool {
	if err != nil || env == nil || env.VaultVersion == "" {
		return false
	}
	return !strings.Contains(env.VaultVersionMetadata, "ent") && !strings.Contains(env.VaultVersion, "+ent")
}

// leasesEndBy bounds when every creds lease of config name handed out before now ends, for
// a plan, a schedule set on an existing config, and the answer of an immediate rotation. It
// is one documented token lifetime from now (a lease lasts at most its token's life:
// tokenLifeBound) unless this node sees every lease (marksComplete); then it is the latest
// lease this backend handed out, or, for leases handed out before it started (by an earlier
// process, another node that was active then, or an earlier version), one documented
// lifetime from its start. The caller holds the config's exclusive lock, so that no lease
// is being recorded meanwhile.
func (b *backend) leasesEndBy(name string, cfg *accountConfig, now time.Time) time.Time {
	life := cfg.tokenLifeBound()
	bound := now.Add(life)
	if b.marksComplete {
		tight := later(b.marks.latest(markKey(name, cfg)), b.started.Add(life))
		if tight.Before(bound) {
			bound = tight
		}
	}
	return bound.UTC()
}

// plannedAt returns when a plan made at now for config name runs: once every lease handed
// out so far has ended (leasesEndBy), and Vault's moment to start the last of them
// (rotationLeaseMargin), in whole seconds, and never before now plus that margin.
func (b *backend) plannedAt(name string, cfg *accountConfig, now time.Time) time.Time {
	at := later(b.leasesEndBy(name, cfg, now), now).Add(rotationLeaseMargin)
	if t := at.Truncate(time.Second); !t.Equal(at) {
		at = t.Add(time.Second)
	}
	return at.UTC()
}

// errNoRoom is a creds read whose token may not be leased at all: its config's scheduled or
// planned rotation, which kills it, comes before a lease of minLease would end.
type errNoRoom struct {
	// rotatesAt is when the rotation may start; zero when the room ran out for want of time
	// left on the token, or time passed since the lease's end was set.
	rotatesAt time.Time
}

func (e *errNoRoom) Error() string {
	if e.rotatesAt.IsZero() {
		return "no room left for a lease of the token"
	}
	return "no room for a lease before the rotation at " + e.rotatesAt.UTC().Format(time.RFC3339)
}

// issueLease returns the lease of t, a token minted with t.cfg's credential for config name.
// Its end is set, and recorded (leaseMarks), in one step under the config's shared lock, by
// the clock read once that lock is held (a read that waited for it behind a plan or a
// rotation must not lease by the time before): the time t has left less a safety margin,
// capped by max_ttl (leaseTTL) and at the config's scheduled or planned rotation as this node
// knows it now. Time may pass again before the lease starts (the goroutine descheduled once
// the lock is released): the lease keeps that end, and is shorter by as much. It returns
// *errNoRoom when no lease of minLease fits before that end, and errCredentialReplaced when
// the config no longer holds t's credential, or holds a fallback (a rotation began since the
// mint): the token may be dead.
func (b *backend) issueLease(ctx context.Context, s logical.Storage, name string, t issuedToken) (time.Duration, error) {
	set, end, err := b.leaseEnd(ctx, s, name, t)
	if err != nil {
		return 0, err
	}
	now := b.now()
	if now.Sub(set) > rotationLeaseMargin {
		return 0, &errNoRoom{} // descheduled for longer than the mark allows for: lease again
	}
	ttl := end.Sub(now).Truncate(time.Second)
	if maxTTL := t.cfg.MaxTTL; maxTTL > 0 && ttl > maxTTL {
		ttl = maxTTL // a duration from the hand-out: the mark allows for the moment since
	}
	if ttl < minLease {
		return 0, &errNoRoom{}
	}
	return ttl, nil
}

// leaseEnd is issueLease's step under the config's shared lock: when it was set, and the
// lease's latest end by the token's expiry (less the safety margin) and the config's
// rotation, untruncated; max_ttl is applied at the hand-out, within rotationLeaseMargin of
// set, which the mark recorded allows for.
func (b *backend) leaseEnd(ctx context.Context, s logical.Storage, name string, t issuedToken) (set, end time.Time, err error) {
	lock := b.lock(name)
	lock.RLock()
	defer lock.RUnlock()
	cfg, err := b.cachedConfig(ctx, s, name)
	switch {
	case err != nil:
		return set, end, err
	case cfg == nil:
		return set, end, errConfigNotFound(name)
	case cfg != t.cfg && (cfg.unsettled() || !registry.SameRoot(cfg.cred, t.cfg.cred)):
		// A rotation began since the mint: the provider may have applied it already. (The
		// config the token was minted with, still in memory, is unchanged: a remembered
		// config is never modified, only replaced.)
		return set, end, errCredentialReplaced
	}
	now := b.now()
	if _, err := leaseTTL(now, t.ExpiresAt, t.cfg.MaxTTL); err != nil {
		b.metrics.reads.failed(name, now)
		return set, end, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("%s: %v", t.cfg.Provider, err))
	}
	end = leaseEndAt(now, t.ExpiresAt, 0)
	if limit, ok := cfg.rotationLeaseCap(now); ok && capLeasesAtRotation() {
		if limit < minLease {
			return set, end, &errNoRoom{rotatesAt: cfg.rotationStart(now)}
		}
		// Untruncated, as end: truncated once, when the lease is handed out.
		end = earliest(end, cfg.rotationStart(now).Add(-rotationLeaseMargin))
	}
	mark := end
	if maxTTL := t.cfg.MaxTTL; maxTTL > 0 {
		mark = earliest(mark, now.Add(maxTTL+rotationLeaseMargin))
	}
	b.marks.record(cfg.leaseKey(name), mark)
	return now, end, nil
}

// planRotation plans config name's rotation (rotate-root planned=true), under the config's
// exclusive lock: the config is settled first, as for an immediate rotation, and a config
// that cannot rotate, or holds a fallback, is refused the same way. A plan made already is
// returned as it is (made false). Otherwise the plan runs at plannedAt, replaces the current
// credential, and is stored in state/<name>; from the moment it is stored, every lease is
// capped at it (issueLease), and the leases recorded before it end by it.
func (b *backend) planRotation(ctx context.Context, s logical.Storage, name string) (p plannedRotation, made bool, warnings []string, err error) {
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()
	cfg, _, err := b.settleLocked(ctx, s, name)
	switch {
	case err == logical.ErrReadOnly:
		return p, false, nil, err
	case err != nil && cfg != nil && cfg.unsettled():
		return p, false, nil, &pendingRotationError{name: name, fallbacks: cfg.Fallbacks, provider: cfg.Provider, cause: err}
	case err != nil:
		return p, false, nil, err
	case cfg == nil:
		return p, false, nil, errConfigNotFound(name)
	}
	if why := canRotate(cfg); why != nil {
		return p, false, nil, &rotationRefused{fmt.Sprintf("%v; configs that cannot rotate: %s", why, cannotRotate)}
	}
	if p = cfg.plan(); !p.At.IsZero() {
		return p, false, nil, nil
	}
	if !b.WriteSafeReplicationState() {
		return p, false, nil, logical.ErrReadOnly // the active node plans: Vault forwards the request there
	}
	now := b.now()
	p = plannedRotation{At: b.plannedAt(name, cfg, now), Made: now.UTC(), replaces: cfg.cred}
	cfg.Plan = p
	if err := b.putConfig(ctx, s, name, cfg); err != nil {
		return plannedRotation{}, false, nil, readOnlyAware(err)
	}
	if next := cfg.nextSlot(now, cfg.Rotation.RotationWindow); !next.IsZero() && next.Before(p.At) {
		warnings = append(warnings, fmt.Sprintf("the schedule rotates the credential first, at %s; that rotation "+
			"replaces this plan", next.Format(time.RFC3339)))
	}
	b.Logger().Info("rotation planned", "config", name, "provider", cfg.Provider, "rotates_at", p.At)
	return p, true, warnings, nil
}

// cancelPlan drops config name's planned rotation, under the config's exclusive lock, and
// returns it (the zero plan when there was none). The leases capped at it simply end
// earlier.
func (b *backend) cancelPlan(ctx context.Context, s logical.Storage, name string) (plannedRotation, error) {
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()
	cfg, err := getConfig(ctx, s, name)
	switch {
	case err != nil:
		return plannedRotation{}, err
	case cfg == nil:
		return plannedRotation{}, errConfigNotFound(name)
	}
	p := cfg.plan()
	if p.At.IsZero() {
		return p, nil
	}
	cfg.Plan = plannedRotation{}
	if err := b.putConfig(ctx, s, name, cfg); err != nil {
		return plannedRotation{}, readOnlyAware(err)
	}
	b.Logger().Info("planned rotation cancelled", "config", name, "provider", cfg.Provider, "rotates_at", p.At)
	return p, nil
}
