package apitokens

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/helper/automatedrotationutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/rotation"
)

// minRotationPeriod is the shortest rotation_period accepted.
const minRotationPeriod = time.Minute

// Backoff of a failed scheduled rotation: 1 minute after the first failure, doubling, at
// most an hour.
const (
	rotationRetryMin = time.Minute
	rotationRetryMax = time.Hour
)

// rotationState is a config's automated rotation: Vault's own fields (parsed with the sdk's
// automatedrotationutil, like its engines) and the plugin's record of it. It is stored with
// the config, so every node, and a restarted one, sees the same schedule.
type rotationState struct {
	automatedrotationutil.AutomatedRotationParams
	// Since is when the current schedule was set: the first period counts from it.
	Since time.Time `json:"since,omitempty"`
	// LeasesEndBy is when every lease handed out before the schedule was set has ended (set
	// when a schedule is set on an existing config): its first rotation, which kills their
	// tokens, does not run before it.
	LeasesEndBy time.Time `json:"leases_end_by,omitempty"`
	// BoundSince, when set, is when LeasesEndBy was set for a schedule resumed after a pause
	// (which keeps Since); the bound holds until the first rotation after it.
	BoundSince time.Time `json:"bound_since,omitempty"`
	// Failures counts scheduled rotations failed in a row; RetryAt is when the next try is
	// due, and LastError says why the last one failed (never a secret: provider errors
	// carry none).
	Failures  int       `json:"failures,omitempty"`
	RetryAt   time.Time `json:"retry_at,omitempty"`
	LastError string    `json:"last_error,omitempty"`
}

// clearFailures forgets the failed scheduled rotations: the credential has just rotated.
func (r *rotationState) clearFailures() {
	r.Failures, r.RetryAt, r.LastError = 0, time.Time{}, ""
}

// scheduled reports whether the config rotates on a schedule.
func (c *accountConfig) scheduled() bool {
	r := c.Rotation
	return !r.DisableAutomatedRotation && (r.RotationPeriod > 0 || r.RotationSchedule != "")
}

// nextRotation returns when config c is next due to rotate, by now, by its schedule or its
// planned rotation (plan.go), whichever comes first, or the zero time when it has neither.
// A schedule counts from the later of the last rotation (by any trigger) and the time the
// schedule was set. A cron slot whose rotation_window has passed is skipped for the next
// one; without a window a missed slot is due at once. After a failure, the next try is not
// before its backoff.
func (c *accountConfig) nextRotation(now time.Time) time.Time {
	return earliest(c.nextSlot(now, c.Rotation.RotationWindow), c.planDue())
}

// planDue returns when c's planned rotation may run: its rotates_at, or after a failure its
// backoff, if later; the zero time when c has no plan.
func (c *accountConfig) planDue() time.Time {
	at := c.plan().At
	if r := c.Rotation; !at.IsZero() && r.Failures > 0 && r.RetryAt.After(at) {
		at = r.RetryAt
	}
	return at
}

// planDueAt reports whether the rotation due at now is c's planned one (its trigger).
func (c *accountConfig) planDueAt(now time.Time) bool {
	at := c.planDue()
	return !at.IsZero() && !now.Before(at)
}

// earliest returns the earlier of a and b, ignoring a zero time.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// nextSlot is the schedule's part of nextRotation, with window as the cron rotation_window
// (0: a missed slot stays due).
func (c *accountConfig) nextSlot(now time.Time, window time.Duration) time.Time {
	if !c.scheduled() {
		return time.Time{}
	}
	r := c.Rotation
	from := c.LastRotated
	if r.Since.After(from) {
		from = r.Since
	}
	var next time.Time
	if r.RotationPeriod > 0 {
		next = from.Add(r.RotationPeriod)
	} else {
		sched, err := rotation.DefaultScheduler.Parse(r.RotationSchedule)
		if err != nil { // validated on write; a stored one that no longer parses rotates never
			return time.Time{}
		}
		// A rotation may run up to rotationEarly before its slot (rotationStart): the slot it
		// served must not come out as the next one. Nor may a slot so close after a rotation
		// that no lease fits between them (a missed slot served late, just before the next):
		// that rotation serves it too, or every read in between would be refused.
		next = sched.Next(from.Add(slotServedBy))
		if window > 0 && !now.Before(next.Add(window)) {
			next = sched.Next(now.Add(-window)) // the earliest slot whose window is open or to come
		}
	}
	// The first rotation of a schedule waits for the leases handed out before it was set (or
	// resumed).
	boundSince := r.Since
	if r.BoundSince.After(boundSince) {
		boundSince = r.BoundSince
	}
	if bound := r.LeasesEndBy.Add(rotationLeaseMargin); !r.LeasesEndBy.IsZero() && !c.LastRotated.After(boundSince) &&
		next.Add(-rotationEarly).Before(bound) {
		next = bound.Add(rotationEarly)
		if r.RotationSchedule != "" {
			if sched, err := rotation.DefaultScheduler.Parse(r.RotationSchedule); err == nil {
				next = sched.Next(bound.Add(rotationEarly - time.Nanosecond))
			}
		}
	}
	if r.Failures > 0 && r.RetryAt.After(next) {
		next = r.RetryAt
	}
	return next.UTC()
}

// rotationOwed returns when config c's rotation became, or becomes, due by its schedule or
// its plan: nextRotation with no rotation_window, so that a cron slot missed and skipped for
// the next one still counts from the slot that was missed (overdue, in the metrics).
func (c *accountConfig) rotationOwed(now time.Time) time.Time {
	return earliest(c.nextSlot(now, 0), c.planDue())
}

// rotationEarly is how long before its next_vault_rotation a scheduled rotation may run,
// whether Vault's periodic call or a creds read performs it.
const rotationEarly = time.Second

// rotationLeaseMargin is how long before the earliest moment a scheduled rotation may run
// every creds lease ends: Vault starts the lease a moment after the plugin's clock reads,
// and a client needs a moment to read again.
const rotationLeaseMargin = time.Second

// slotServedBy is how long after a rotation a cron slot counts as served by it: one that
// may run rotationEarly before its slot, and one that ends so soon before a slot that no
// lease of minLease (and its margin) fits before the slot's own rotation may start.
const slotServedBy = rotationEarly + rotationLeaseMargin + minLease

// rotationStart returns W, the earliest moment config c's next scheduled or planned rotation
// may run, by now: its schedule's next rotation - rotationEarly, or its plan's rotates_at,
// whichever is earlier; the zero time when c has neither. It is the one rule that the
// rotations and the leases share:
//
//   - the rotation runs at W or later, never before: rotationDue(now) is exactly now >= W;
//   - every creds lease issued at now ends no later than W - rotationLeaseMargin: its TTL is
//     at most that bound minus now, truncated to whole seconds, and never lengthened to
//     minLease (rotationLeaseCap; issueLease applies it);
//   - a read at a time when no lease of minLease fits before that bound performs the
//     rotation before it mints (rotateFirst): at once if it is due, else it waits until W
//     (rotationImminent, rotateIfDue); so does one whose mint outlasted the room left.
//
// So no token is leased past the rotation that kills it (OffBlocks' PUT, Bloq's key delete).
func (c *accountConfig) rotationStart(now time.Time) time.Time {
	w := c.nextSlot(now, c.Rotation.RotationWindow)
	if !w.IsZero() {
		w = w.Add(-rotationEarly)
	}
	return earliest(w, c.planDue())
}

// rotationDue reports whether config c's scheduled rotation may run at now: now is at or
// after rotationStart.
func (c *accountConfig) rotationDue(now time.Time) bool {
	w := c.rotationStart(now)
	return !w.IsZero() && !now.Before(w)
}

// rotationLeaseCap returns the longest lease a creds read of config c at now may get because
// of its schedule, and false when it has none: from now to rotationStart(now) -
// rotationLeaseMargin, truncated to whole seconds (Vault's lease unit) so that the lease never
// ends past that bound. It is not floored: it is less than minLease, even negative, when no
// lease fits before the rotation (then the read must rotate first: rotateFirst).
func (c *accountConfig) rotationLeaseCap(now time.Time) (time.Duration, bool) {
	w := c.rotationStart(now)
	if w.IsZero() {
		return 0, false
	}
	return w.Add(-rotationLeaseMargin).Sub(now).Truncate(time.Second), true
}

// rotateFirst reports whether a creds read of config c at now must perform its scheduled
// rotation before it mints, because no lease of minLease fits before it: the rotation is
// due, or imminent (then the read waits for it: rotateIfDue).
func (c *accountConfig) rotateFirst(now time.Time) bool {
	limit, ok := c.rotationLeaseCap(now)
	return ok && limit < minLease
}

// rotationImminent reports whether config c's scheduled rotation is not due at now but so
// close that no lease of minLease fits before it: a read then waits until rotationStart.
func (c *accountConfig) rotationImminent(now time.Time) bool {
	return c.rotateFirst(now) && !c.rotationDue(now)
}

// leasesEndBy bounds when every creds lease of config c handed out before now ends: the
// backend's bound (backend.leasesEndBy), set in c.leasesBound by the caller, or else one
// documented token lifetime from now (tokenLifeBound); and no later than c's next scheduled
// or planned rotation may run, which caps them.
func (c *accountConfig) leasesEndBy(now time.Time) time.Time {
	bound := c.leasesBound
	if bound.IsZero() {
		bound = now.Add(c.tokenLifeBound())
	}
	if w := c.rotationStart(now); !w.IsZero() && w.Before(bound) {
		bound = w
	}
	return bound.UTC()
}

// tokenLifeBound is the longest lease a creds read of config c hands out: the documented
// lifetime of the tokens it mints (documentedLifetime: 1 hour for OffBlocks, a Bloq client
// token and OpsNow, 12 hours for a Bloq account token). It holds whatever the provider
// answers: the provider clients cap every token's expiry at its issue time plus that same
// lifetime (apiclient.NewToken), and a lease ends before its token. max_ttl does not shorten
// it: a lease handed out before max_ttl was lowered keeps its length.
func (c *accountConfig) tokenLifeBound() time.Duration {
	return documentedLifetime(c)
}

// rotationData adds the schedule's fields to a config read, in Vault's engines' shape, with
// next_vault_rotation and last_vault_rotation (RFC 3339), planned_rotation (RFC 3339) when a
// rotation is planned, and the last failure, if any.
func (c *accountConfig) rotationData(d map[string]any, now time.Time) {
	r := c.Rotation
	r.PopulateAutomatedRotationData(d)
	delete(d, "rotation_policy")
	// Whole seconds, like max_ttl (the helper gives floats).
	d["rotation_period"], d["rotation_window"] = int64(r.RotationPeriod/time.Second), int64(r.RotationWindow/time.Second)
	if next := c.nextRotation(now); !next.IsZero() {
		d["next_vault_rotation"] = next.Format(time.RFC3339)
	}
	if p := c.plan(); !p.At.IsZero() {
		d["planned_rotation"] = p.At.UTC().Format(time.RFC3339)
	}
	if !c.LastRotated.IsZero() {
		d["last_vault_rotation"] = c.LastRotated.UTC().Format(time.RFC3339)
	}
	if r.Failures > 0 {
		d["rotation_failures"] = r.Failures
		d["last_rotation_error"] = r.LastError
	}
}

// rotateIfDue performs config name's scheduled rotation for a creds read that must rotate
// first (rotateFirst): if the rotation is imminent it waits, holding no lock, until it may
// run (rotationStart), or returns ctx's error if ctx ends first; then it is
// rotateScheduled. It reports whether a rotation was due. Where storage cannot be written it
// waits for nothing and returns logical.ErrReadOnly.
func (b *backend) rotateIfDue(ctx context.Context, s logical.Storage, name string) (bool, error) {
	if err := b.awaitRotationStart(ctx, s, name); err != nil {
		return false, err
	}
	return b.rotateScheduled(ctx, s, name)
}

// awaitRotationStart waits until config name's imminent scheduled rotation may run, holding
// no lock while it waits; it returns at once when none is imminent, ctx's error if ctx ends
// first, and logical.ErrReadOnly where storage cannot be written (the active node rotates).
func (b *backend) awaitRotationStart(ctx context.Context, s logical.Storage, name string) error {
	lock := b.lock(name)
	for {
		lock.RLock()
		cfg, err := b.cachedConfig(ctx, s, name)
		lock.RUnlock()
		now := b.now()
		if err != nil || cfg == nil || !cfg.rotationImminent(now) {
			return err
		}
		if !b.WriteSafeReplicationState() {
			return logical.ErrReadOnly // the active node rotates: Vault forwards the read there now
		}
		if err := b.sleep(ctx, cfg.rotationStart(now).Sub(now)); err != nil {
			return fmt.Errorf("wait for the scheduled rotation of %q: %w", name, err)
		}
	}
}

// rotationRecordTimeout bounds the storage write that records a failed scheduled rotation.
const rotationRecordTimeout = 10 * time.Second

// rotateScheduled rotates config name if its scheduled rotation is due, under the config's
// lock, through the same fallback-first rotation as rotate-root, under a deadline of its own
// (rotationBudget; not ctx's cancellation). A failure of any kind is recorded on the config,
// which retries it with backoff, under a context of its own (the rotation's may be done);
// the rotation's own error is returned as well. It reports whether a rotation was due when it
// took the lock (rotateLocked may then find it needed no more, and rotate nothing). Where
// storage cannot be written it rotates nothing and returns logical.ErrReadOnly.
func (b *backend) rotateScheduled(ctx context.Context, s logical.Storage, name string) (bool, error) {
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()
	cfg, err := getConfig(ctx, s, name)
	if err != nil || cfg == nil || !cfg.rotationDue(b.now()) {
		return false, err
	}
	if !b.WriteSafeReplicationState() {
		return true, logical.ErrReadOnly
	}
	// The rotation is not the caller's to cancel (a reader that gives up, say): once begun it
	// runs to its end, or to its own deadline, and its outcome is recorded.
	trigger := triggerScheduled
	if cfg.planDueAt(b.now()) {
		trigger = triggerPlanned
	}
	rotCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rotationBudget(cfg))
	defer cancel()
	_, _, rerr := b.rotateLocked(rotCtx, s, name, trigger)
	if rerr == nil {
		return true, nil
	}
	// A rotation that used its whole budget leaves rotCtx done, and storage refuses a done
	// context: the failure is recorded under a context of its own, or its backoff is lost.
	recCtx, recCancel := context.WithTimeout(context.WithoutCancel(ctx), rotationRecordTimeout)
	defer recCancel()
	// Record the failure on the config as it is now (the rotation may have changed it).
	if cfg, err = getConfig(recCtx, s, name); err != nil || cfg == nil {
		if err != nil {
			b.Logger().Error("could not record a failed scheduled rotation", "config", name, "error", err)
		}
		return true, rerr
	}
	r := &cfg.Rotation
	r.Failures++
	r.RetryAt = b.now().Add(min(rotationRetryMin<<min(r.Failures-1, 10), rotationRetryMax)).UTC()
	r.LastError = rerr.Error()
	if err := b.putConfig(recCtx, s, name, cfg); err != nil {
		b.Logger().Error("could not record a failed scheduled rotation", "config", name, "error", err)
	}
	b.Logger().Warn("scheduled rotation failed; will retry", "config", name, "retry_at", r.RetryAt, "error", rerr)
	return true, rerr
}

// rotationBudget bounds one scheduled rotation: its provider calls (each within
// request_timeout) and its confirmation (at most request_timeout more).
func rotationBudget(cfg *accountConfig) time.Duration { return 4 * cfg.RequestTimeout }
