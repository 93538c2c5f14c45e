package apitokens

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"
)

// earlierWAL is what a node knows of the WAL entries that an earlier plugin version (v0.1.0)
// wrote for a whole rotation, holding its new credential: the provider may adopt that
// credential at any moment, so from the first request after an upgrade such a config is
// unsettled, exactly as one holding a fallback, until settleWAL has turned the entry into
// one (issue 27). Vault's rollback does that only after walRollbackMinAge, and the periodic
// function within a minute; a read must not hand out tokens of the old credential meanwhile.
//
// The WAL is listed once per process, at the first creds read, and again after Vault
// invalidates a WAL key (another node changed the WAL). A create marker holds no credential
// and blocks nothing.
type earlierWAL struct {
	mu      sync.RWMutex
	scanned bool
	names   map[string]bool
	// gen is bumped by every change, so that a scan begun before one never installs its
	// result after it.
	gen uint64
}

// pending reports whether config name has such an entry, listing the WAL the first time.
func (l *earlierWAL) pending(ctx context.Context, s logical.Storage, name string) (bool, error) {
	l.mu.RLock()
	if l.scanned {
		defer l.mu.RUnlock()
		return l.names[name], nil
	}
	gen := l.gen
	l.mu.RUnlock()
	names, err := earlierWALNames(ctx, s)
	if err != nil {
		return false, fmt.Errorf("list the rotations an earlier plugin version left: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen == gen {
		l.names, l.scanned = names, true
	}
	return names[name], nil
}

// settled records that config name has no such entry left (settleWAL converted them).
func (l *earlierWAL) settled(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.names, name)
	l.gen++
}

// invalidate makes the next read list the WAL again.
func (l *earlierWAL) invalidate() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.scanned = false
	l.gen++
}

// earlierWALNames are the configs with a rotation WAL entry that holds a new credential (an
// earlier version's whole rotation) of a provider this version knows.
func earlierWALNames(ctx context.Context, s logical.Storage) (map[string]bool, error) {
	all, err := rotationEntries(ctx, s)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, pr := range all {
		// A create marker holds no credential; an entry of a provider this version does not
		// know is kept and never settled (wal.go): neither makes its config unsettled.
		if !pr.entry.Creating && !pr.unreadable() {
			names[pr.entry.Name] = true
		}
	}
	return names, nil
}

// earlierWALErr is the error of a creds read of config name while such an entry is pending.
func (c *accountConfig) earlierWALErr(name string) *unsettledError {
	return &unsettledError{name: name, provider: c.Provider, why: legacyRotationWhy}
}
