// Package apitokens is a Vault secrets engine that mints short-lived Bearer tokens from
// provider accounts (OffBlocks, Bloq, OpsNow) whose root credentials it stores, with a lease
// that ends when the token does, and rotates those root credentials crash-safely.
package apitokens

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"
)

// Version is the plugin's semantic version, set at build time with
// -ldflags "-X github.com/apitokens/vault-plugin-secrets-apitokens.Version=v1.2.3". Vault
// compares it with the version the plugin was registered under.
var Version = "v0.2.0-dev" // the next release, as -dev: make and scripts/version.sh add +<commit>; never a released version

// walRollbackMinAge is how old an interrupted rotation's WAL entry must be before Vault's
// rollback manager settles it. A running rotation holds the config's lock, so an early
// rollback only waits for it.
const walRollbackMinAge = time.Minute

var backendHelp = `
The apitokens secrets engine mints short-lived provider API tokens (` + providerDisplays() + `)
from root credentials stored under config/<name>. Read creds/<name> for a fresh Bearer token
whose lease ends before the token does; rotate stored credentials with rotate-root/<name>.
The mount's figures are at metrics, and its own settings at settings.
`

// backend is the engine's state. Every operation on one config name is serialised through
// that name's lock: creds reads share it, rotations and config writes hold it alone. Its
// HandleRequest and HandleExistenceCheck check every request's input before the framework
// sees it (input.go).
type backend struct {
	*framework.Backend

	locks []*locksutil.LockEntry
	// lockSeam, when set, wraps each config's lock (lock); only the deterministic
	// simulation sets it, to a cooperative lock its scheduler can switch at (seams.go).
	lockSeam func(name string, l *locksutil.LockEntry) configLock
	// now is the clock for lease arithmetic and last_rotated; tests replace it.
	now func() time.Time

	// sleep waits between retries within a request; tests make it advance their clock.
	sleep func(ctx context.Context, d time.Duration) error

	// clients are the provider clients, one per provider, base URL and timeout (providerFor).
	clientsMu sync.Mutex
	clients   map[string]provider

	// refreshTokens are new Bloq refresh tokens not stored yet.
	refreshTokens heldRefreshTokens
	// memo holds each config and its shared token in memory.
	memo memo
	// earlier knows which configs have an earlier version's rotation WAL entry (legacy.go).
	earlier earlierWAL
	// settleFlight makes creds reads that must settle a config wait for one settle
	// (settleForRead).
	settleFlight flightGroup
	// metrics are the mount's figures (metrics.go).
	metrics *metrics
	// marks are the latest ends of the creds leases this backend handed out (plan.go);
	// marksComplete says whether they are every lease the mount handed out since started,
	// when this backend was set up, by its clock.
	marks         leaseMarks
	marksComplete bool
	started       time.Time
	// passes counts the periodic function's passes (periodic.go).
	passes atomic.Uint64
	// settingsMu serialises loading and writing the mount's settings (path_settings.go).
	settingsMu sync.Mutex
	// view is the mount's storage, for work that Vault starts without a request
	// (reloading settings another node changed).
	view logical.Storage
	// routes are the paths' patterns for checking a request's input (input.go).
	routes inputRoutes

	// retryWaitMin and retryWaitMax override the HTTP backoff bounds (tests shorten them).
	retryWaitMin, retryWaitMax time.Duration
	// transport and backoff, when set, replace the HTTP transport and the wait before a
	// retry of every provider client: the deterministic simulation serves the providers in
	// process and retries without waiting in real time.
	transport http.RoundTripper
	backoff   func(min, max time.Duration, attempt int, resp *http.Response) time.Duration
}

// Factory returns a configured backend; it is the plugin's entry point.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func newBackend() *backend {
	b := &backend{
		locks:   locksutil.CreateLocks(),
		now:     time.Now,
		sleep:   sleepCtx,
		clients: make(map[string]provider),
		metrics: newMetrics(),
		memo:    memo{flight: new(singleflight.Group), loads: new(singleflight.Group)},
		// the simulation replaces the groups (seams.go)
		settleFlight: new(singleflight.Group),
	}
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{configPrefix, statePrefix, framework.WALPrefix},
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			[]*framework.Path{pathCreds(b), pathRotateRoot(b), pathMetrics(b), pathSettings(b)},
		),
		PeriodicFunc:      b.periodic,
		InitializeFunc:    b.initialize,
		Secrets:           []*framework.Secret{secretToken(b)},
		WALRollback:       b.walRollback,
		WALRollbackMinAge: walRollbackMinAge,
		Invalidate:        b.invalidate,
		Clean:             b.clean,
		RunningVersion:    Version,
	}
	return b
}

// Setup keeps the mount's storage view, notes when it started and whether it sees every
// creds lease (marksComplete), then sets up the framework backend.
func (b *backend) Setup(ctx context.Context, conf *logical.BackendConfig) error {
	b.view = conf.StorageView
	b.started = b.now()
	if conf.System != nil {
		b.marksComplete = marksComplete(conf.System.PluginEnv(ctx))
	}
	return b.Backend.Setup(ctx, conf)
}

// lock returns the lock that serialises work on one config name.
func (b *backend) lock(name string) configLock {
	l := locksutil.LockForKey(b.locks, name)
	if b.lockSeam != nil {
		return b.lockSeam(name, l)
	}
	return l
}

// invalidate drops what this node remembers of a config that changed on another node: its
// decoded config and its shared token; changed mount settings are read again. A refresh
// token not stored yet is kept: it is newer than anything the change can hold, unless an
// operator wrote one, which is done on this node (the active one) and drops it there.
func (b *backend) invalidate(_ context.Context, key string) {
	if name, ok := strings.CutPrefix(key, configPrefix); ok {
		b.memo.forget(name)
	}
	if name, ok := strings.CutPrefix(key, statePrefix); ok {
		b.memo.forget(name)
	}
	if strings.HasPrefix(key, framework.WALPrefix) {
		b.earlier.invalidate()
	}
	if key == settingsKey {
		go b.reloadSettings() // not within Vault's invalidation call, which must not wait on storage
	}
}

// sleepCtx waits for d, or until ctx ends (then it returns ctx's error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clean drops what the backend holds in memory. The connections stay in the process's
// shared pools, which other mounts may be using; idle ones close after 90 s.
func (b *backend) clean(context.Context) {
	b.memo.forgetAll()
	b.clientsMu.Lock()
	defer b.clientsMu.Unlock()
	clear(b.clients)
}
