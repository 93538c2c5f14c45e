package apitokens

import (
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"golang.org/x/sync/singleflight"
)

// The cooperative versions of the backend's long-held blocking primitives (seams.go) that
// the simulation's scheduler (sim_sched_test.go) puts on every node: a task that must wait
// parks, and the scheduler runs another.

// coopLock is a config's lock for the simulation: sync.RWMutex's semantics (a writer that
// waits holds back new readers; an unlock hands the lock to the readers that waited, else
// to the first writer that waited), with parking instead of blocking.
type coopLock struct {
	w       *world
	name    string
	writer  bool
	readers int
	waitW   []*task
	waitR   []*task
}

func (l *coopLock) Lock() {
	if !l.writer && l.readers == 0 && len(l.waitW) == 0 {
		l.writer = true
		return
	}
	l.w.cover["concurrency.lock.waits"]++
	l.waitW = append(l.waitW, l.w.conc.s.cur)
	l.w.conc.s.block("the lock of " + l.name)
}

func (l *coopLock) RLock() {
	if l.TryRLock() {
		return
	}
	l.w.cover["concurrency.rlock.waits"]++
	l.waitR = append(l.waitR, l.w.conc.s.cur)
	l.w.conc.s.block("the read lock of " + l.name)
}

func (l *coopLock) TryRLock() bool {
	if l.writer || len(l.waitW) > 0 {
		return false
	}
	l.readers++
	return true
}

func (l *coopLock) Unlock() {
	if !l.writer {
		panic("simulation: Unlock of the unlocked lock of " + l.name)
	}
	l.writer = false
	s := l.w.conc.s
	switch {
	case len(l.waitR) > 0:
		for _, t := range l.waitR {
			l.readers++
			s.wakeUp(t)
		}
		l.waitR = nil
	case len(l.waitW) > 0:
		l.writer = true
		s.wakeUp(l.waitW[0])
		l.waitW = l.waitW[1:]
	default:
		return
	}
	l.w.yield("the unlock of", l.name)
}

func (l *coopLock) RUnlock() {
	if l.readers <= 0 {
		panic("simulation: RUnlock of the lock of " + l.name + ", which no reader holds")
	}
	l.readers--
	if l.readers > 0 || len(l.waitW) == 0 {
		return
	}
	l.writer = true
	l.w.conc.s.wakeUp(l.waitW[0])
	l.waitW = l.waitW[1:]
	l.w.yield("the read unlock of", l.name)
}

// coopFlight is a singleflight group for the simulation: a call's waiters park until it
// ends. DoChan's call runs as a task of its own, and its caller parks at once until the call
// ends: the backend's callers select on the channel and on their request's context, which in
// the simulation never ends (context.Background()), so they would wait for the call anyway.
type coopFlight struct {
	w     *world
	b     *backend
	label string
	calls map[string]*coopCall
}

type coopCall struct {
	done    bool
	val     any
	err     error
	dups    int
	waiters []*task
}

func (g *coopFlight) Do(key string, fn func() (any, error)) (any, error, bool) {
	if c := g.calls[key]; c != nil {
		c.dups++
		g.w.cover["concurrency.flight."+g.label+".joined"]++
		g.wait(c, key)
		return c.val, c.err, true
	}
	c := g.start(key)
	g.call(c, key, fn)
	return c.val, c.err, c.dups > 0
}

func (g *coopFlight) DoChan(key string, fn func() (any, error)) <-chan singleflight.Result {
	ch := make(chan singleflight.Result, 1)
	s := g.w.conc.s
	c := g.calls[key]
	switch {
	case c != nil:
		c.dups++
		g.w.cover["concurrency.flight."+g.label+".joined"]++
	case s.cur == nil: // outside a round: no one else can join
		c = g.start(key)
		g.call(c, key, fn)
	default:
		c = g.start(key)
		t := s.spawn(s.cur.op, g.label+" flight of "+key, func(*task) { g.call(c, key, fn) })
		t.start, t.started = s.cur.start, true
	}
	g.wait(c, key)
	ch <- singleflight.Result{Val: c.val, Err: c.err, Shared: c.dups > 0}
	return ch
}

func (g *coopFlight) start(key string) *coopCall {
	c := &coopCall{}
	if g.calls == nil {
		g.calls = map[string]*coopCall{}
	}
	g.calls[key] = c
	return c
}

// call runs fn as c, then makes its waiters ready. In a round of several operations it
// counts the races the memo's generations guard (memo.go): a forget of the config while the
// call ran (in a round of one, only the call's own settle forgets).
func (g *coopFlight) call(c *coopCall, key string, fn func() (any, error)) {
	_, gen := g.b.memo.token(key)
	c.val, c.err = fn()
	g.b.memo.mu.Lock()
	e := g.b.memo.entries[key]
	forgotten := !(e != nil && e.gen == gen || e == nil && g.b.memo.gen == gen)
	g.b.memo.mu.Unlock()
	if forgotten && g.w.conc.ops > 1 {
		g.w.cover["concurrency.race.forget-during-"+g.label]++
		g.w.logf("  (%s was forgotten while its %s flight ran)", key, g.label)
	}
	delete(g.calls, key)
	c.done = true
	for _, t := range c.waiters {
		g.w.conc.s.wakeUp(t)
	}
}

func (g *coopFlight) wait(c *coopCall, key string) {
	if c.done {
		return
	}
	c.waiters = append(c.waiters, g.w.conc.s.cur)
	g.w.conc.s.block("the " + g.label + " flight of " + key)
}

// cooperate puts the cooperative lock and flights in b's seams (seams.go).
func (w *world) cooperate(b *backend) {
	locks := map[*locksutil.LockEntry]*coopLock{}
	b.lockSeam = func(name string, e *locksutil.LockEntry) configLock {
		l := locks[e]
		if l == nil {
			l = &coopLock{w: w, name: name}
			locks[e] = l
		}
		return l
	}
	b.settleFlight = &coopFlight{w: w, b: b, label: "settle"}
	b.memo.flight = &coopFlight{w: w, b: b, label: "mint"}
	b.memo.loads = &coopFlight{w: w, b: b, label: "load"}
}
