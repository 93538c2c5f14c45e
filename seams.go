package apitokens

import (
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"golang.org/x/sync/singleflight"
)

// The backend's blocking primitives that are held across storage and provider calls (a
// config's lock, and the singleflight groups that make readers wait for one settle, one
// shared mint or one cold load) are reached through the smallest interfaces their callers
// use. In production they are exactly locksutil's RWMutex and singleflight.Group, and nothing
// else changes. The deterministic simulation (sim_sched_test.go) puts cooperative versions
// in their place: its scheduler runs one operation at a time and switches between them at
// their storage and provider calls, which an operation parked in a real lock or group would
// deadlock, since whether a goroutine is blocked cannot be observed deterministically.
// Mutexes never held across a storage or provider call (memo.mu, clientsMu, the metrics'
// and held refresh tokens' mutexes) need no seam: with one operation running at a time they
// are always free. settingsMu is held across the settings' storage calls: it needs one the
// day the simulation writes the mount's settings.

// configLock is a config's lock (backend.lock): a *locksutil.LockEntry in production.
type configLock interface {
	Lock()
	Unlock()
	RLock()
	RUnlock()
	TryRLock() bool
}

// flightGroup is a singleflight group (backend.settleFlight, memo.flight, memo.loads): a
// *singleflight.Group in production.
type flightGroup interface {
	Do(key string, fn func() (any, error)) (v any, err error, shared bool)
	DoChan(key string, fn func() (any, error)) <-chan singleflight.Result
}

var (
	_ configLock  = (*locksutil.LockEntry)(nil)
	_ flightGroup = (*singleflight.Group)(nil)
)
