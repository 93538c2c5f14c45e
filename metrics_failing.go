package apitokens

import (
	"sync"
	"sync/atomic"
	"time"
)

// mintFailingRecent is how recent a config's last failed creds read must be for the config
// to count as failing (apitokens_mint_failing_since_timestamp_seconds): a config that failed
// once and is not read any more is not an outage of anyone's.
const mintFailingRecent = 5 * time.Minute

// failingRun is a run of creds reads of one config that failed on the provider: when the
// first and the last of them ran.
type failingRun struct{ since, last time.Time }

// failingReads holds, per config, the run of creds reads that failed on the provider since
// its last successful read on this node. A config is in it from a failed read until a
// successful one, a write or delete of the config (its credentials changed), or a scrape
// that does not list it (deleted on another node).
type failingReads struct {
	mu   sync.Mutex
	runs map[string]failingRun
	// n is len(runs), so that a successful read costs no lock while no config is failing.
	n atomic.Int64
}

// failed records a creds read of config name that failed on the provider at when, and
// reports whether it began a run.
func (f *failingReads) failed(name string, when time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[name]
	if !ok {
		if f.runs == nil {
			f.runs = map[string]failingRun{}
		}
		r.since = when
		f.n.Add(1)
	}
	r.last = when
	f.runs[name] = r
	return !ok
}

// end ends config name's run of failed reads: a read succeeded, or its credentials changed.
func (f *failingReads) end(name string) {
	if f.n.Load() == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.runs[name]; ok {
		delete(f.runs, name)
		f.n.Add(-1)
	}
}

// since returns when config name's creds reads began to fail on the provider, and whether
// it is failing at now: its last read failed there, no longer than mintFailingRecent ago.
func (f *failingReads) since(name string, now time.Time) (time.Time, bool) {
	if f.n.Load() == 0 {
		return time.Time{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[name]
	return r.since, ok && now.Sub(r.last) < mintFailingRecent
}

// prune forgets the runs of configs that a scrape's LIST, taken at listedAt, did not list:
// deleted on another node. A run that began after the LIST may be a new config's; it stays.
func (f *failingReads) prune(listed map[string]bool, listedAt time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, r := range f.runs {
		if !listed[name] && r.since.Before(listedAt) {
			delete(f.runs, name)
			f.n.Add(-1)
		}
	}
}
