package apitokens

import (
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"time"
)

// Rounds: the simulation's driver (runSeed) runs a round at each step, of one operation, or,
// in a seed whose swarm turns concurrency on, now and then of two or three, possibly on
// different nodes, that the scheduler (sim_sched_test.go) interleaves at their storage and
// provider calls. The invariants are checked after each round.
//
// Every decision about concurrency (whether a seed has it, how often, which operations join
// a round, which task runs at each yield point) is drawn from the world's concurrency
// generator, seeded from the seed apart from the first one, as the hostile answers are: a
// seed whose swarm has concurrency off draws from the first generator exactly what it drew
// before rounds existed, and replays its scenario, trace included.
//
// What the checks of an operation assume it ran alone for, they check only when it did:
// a fault-free read that failed (I5), and an unforced credential write while a rotation is
// unsettled (I7). Events are numbered (seq) so that an operator's action that kills tokens
// excuses exactly the leases of reads that began before it ended (I2), and a token handed out
// dead, or while a change is pending, by a read that overlapped such an action (I3). What an
// operator's write or delete gives up, and which stored key an operator wrote, are followed
// within the round (giveUpOthers, watch, landed). In a round of one operation every check is
// exactly what it was.

// simConcurrent, false, turns concurrency off in every seed: a seed then replays the
// scenario it made before rounds existed, as each does until its first round of several.
var simConcurrent = flag.Bool("concurrent", true, "TestSimulation: let a seed's swarm run rounds of concurrent operations")

// concurrency is a world's state for rounds.
type concurrency struct {
	r *rand.Rand // draws every decision of concurrency
	s *sched
	// seq numbers events: reads' starts, I3's findings, excusing actions' starts and ends.
	seq int
	// ops is the number of operations in the current round (0 between rounds); switched
	// records that a task of it was preempted.
	ops      int
	switched bool
	// spans are the current round's operator actions that may kill tokens on purpose.
	spans []*excuseSpan
	// excusable are the current round's I3 findings that such an action may excuse.
	excusable []excusableFinding
	// configWrites counts the writes of each config/ key that landed.
	configWrites map[string]int
	// clockSteps sums the clock steps that clock operations made.
	clockSteps time.Duration
	// deleteSaw is the storage as it was before each write of a delete in the current round;
	// goneAtStore, per config, the Bloq keys deleted upstream when a credential write of the
	// round last stored it.
	deleteSaw   string
	goneAtStore map[string][]string
	// wroteDead is, per config, the key of a dead credential an operator's write stored.
	wroteDead map[string]string
	w         *world
}

func newConcurrency(w *world, seed int64) *concurrency {
	c := &concurrency{r: rand.New(rand.NewSource(seed ^ 0x7a5c0c0c)), configWrites: map[string]int{}, w: w,
		wroteDead: map[string]string{}}
	c.s = &sched{w: w, r: c.r, back: make(chan struct{})}
	if c.r.Intn(3) != 0 {
		if rate := 5 + c.r.Intn(31); *simConcurrent {
			w.sw.concurrent = rate
		}
	}
	return c
}

// tick returns the next event number.
func (c *concurrency) tick() int {
	c.seq++
	return c.seq
}

// alone reports whether the current operation is its round's only one.
func (w *world) alone() bool { return w.conc.ops <= 1 }

// tracePrefix names the running task in a round of several operations.
func (c *concurrency) tracePrefix() string {
	if c.ops <= 1 || c.s.cur == nil {
		return ""
	}
	return fmt.Sprintf("[t%d] ", c.s.cur.id)
}

// roundOp is one operation of a round, on config name.
type roundOp struct {
	op   simOp
	name string
}

// companionWeights weigh the operations that join a round's first one: those that race a
// read in flight (a rotation, a config write, an invalidation, a tick, another read) more
// than their weight as a round's first operation.
var companionWeights = map[string]int{"read": 10, "rotate": 5, "write": 4, "credential-write": 1, "delete": 1,
	"tick": 5, "invalidate": 4, "clock": 2, "clock-to-rotation": 1, "clock-to-expiry": 1, "provider-applies": 2,
	"restart": 1}

func (c *concurrency) pickCompanion() simOp {
	total := 0
	for _, o := range simOps {
		total += companionWeights[o.name]
	}
	n := c.r.Intn(total)
	for _, o := range simOps {
		if n < companionWeights[o.name] {
			return o
		}
		n -= companionWeights[o.name]
	}
	panic("unreachable")
}

// pickRound picks the round's first operation, its config and its crash point from the
// first generator, as single operations always were, then its companions, if any.
func (w *world) pickRound() []roundOp {
	op := w.pickOp()
	names := w.configNames()
	name := names[w.r.Intn(len(names))]
	w.faulted = false
	if w.sw.crash > 0 && w.r.Intn(100) < 4*w.sw.crash {
		n := w.nodes[w.r.Intn(len(w.nodes))]
		n.crashAt = 1 + w.r.Intn(16) // a Bloq rotation makes 15 outside calls
	}
	ops := []roundOp{{op, name}}
	c := w.conc
	if w.sw.concurrent > 0 && c.r.Intn(100) < w.sw.concurrent {
		for k := 1 + c.r.Intn(2); k > 0; k-- {
			o := roundOp{c.pickCompanion(), name}
			if c.r.Intn(4) == 0 {
				o.name = names[c.r.Intn(len(names))]
			}
			ops = append(ops, o)
		}
	}
	return ops
}

// runRound runs ops as the tasks of one round, restarts the nodes that died, and checks
// the invariants. A round of one operation runs it as rounds always did, in the driver's
// goroutine: outside a round nothing yields, no lock is ever contended, and a flight runs in
// its caller.
func (w *world) runRound(ops []roundOp) {
	c := w.conc
	c.ops, c.switched = len(ops), false
	clear(w.timedOut)
	labels := make([]string, len(ops))
	for i, o := range ops {
		labels[i] = o.op.name + " " + o.name
		w.cover["op."+o.op.name]++
	}
	w.logf("%d: %s", w.opN, strings.Join(labels, " & "))
	if len(ops) > 1 {
		w.cover[fmt.Sprintf("concurrency.round.%d", len(ops))]++
		for i := range ops {
			w.logf("  t%d is %s", c.s.ids+1+i, labels[i])
		}
	}
	took := make([]time.Duration, len(ops))
	if len(ops) == 1 { // as before rounds: in the driver's goroutine, where nothing yields
		start := w.clock.Now()
		w.op, w.opStart = ops[0].op.name, start
		ops[0].op.run(w, ops[0].name)
		took[0] = w.clock.Now().Sub(start)
	} else {
		for i, o := range ops {
			c.s.spawn(o.op.name, labels[i], func(t *task) {
				steps := c.clockSteps
				o.op.run(w, o.name)
				took[i] = w.clock.Now().Sub(t.start)
				if isClockOp(o.op.name) {
					c.clockSteps += took[i] // a clock operation neither yields nor waits: its steps alone
					return
				}
				took[i] -= c.clockSteps - steps
			})
		}
		c.s.plan()
		c.s.run()
		if c.switched {
			w.cover["concurrency.interleaved"]++
		}
	}
	w.restart()
	for i, o := range ops {
		if !isClockOp(o.op.name) {
			w.checkDeadline(o.op.name, took[i])
		}
	}
	w.checkExcusable()
	w.checkRecoverable()
	w.checkLeases()
	w.checkOperatorKeys()
	c.ops, c.spans, c.excusable, c.deleteSaw, c.goneAtStore = 0, nil, nil, "", nil
	w.opN += len(ops) - 1 // opN numbers operations: a round of three takes three of the seed's steps
}

func isClockOp(name string) bool { return strings.HasPrefix(name, "clock") }

// excuseSpan is an operator's action on config that may kill its tokens on purpose
// (rotate-root, a credential write, a delete), from its start to its end (0 while it runs);
// excused says it did count as made.
type excuseSpan struct {
	config     string
	start, end int
	excused    bool
}

func (w *world) beginExcuse(config string) *excuseSpan {
	sp := &excuseSpan{config: config, start: w.conc.tick()}
	w.conc.spans = append(w.conc.spans, sp)
	return sp
}

// endExcuse ends sp; an action that counts as made excuses the leases of every read that
// began before now (excusedAt).
func (w *world) endExcuse(sp *excuseSpan, excused bool) {
	sp.end, sp.excused = w.conc.tick(), excused
	if excused {
		w.excusedAt[sp.config] = sp.end
	}
}

// excusableFinding is an I3 finding of a read (of lease l, ended at event end) that an
// operator's action overlapping the read would excuse.
type excusableFinding struct {
	l   issuedLease
	end int
	msg string
}

// violateUnlessExcused is I3's violation of a read that handed out lease l, unless an
// operator's action on its config that kills tokens on purpose overlapped the read: known at
// the round's end (checkExcusable), when every action of the round has ended. A read alone
// in its round overlaps none.
func (w *world) violateUnlessExcused(l issuedLease, format string, args ...any) {
	if w.alone() {
		w.violate("I3", format, args...)
		return
	}
	w.conc.excusable = append(w.conc.excusable, excusableFinding{l: l, end: w.conc.tick(), msg: fmt.Sprintf(format, args...)})
}

func (w *world) checkExcusable() {
	for _, f := range w.conc.excusable {
		excused := false
		for _, sp := range w.conc.spans {
			if sp.config == f.l.config && sp.excused && sp.start < f.end && sp.end > f.l.seq {
				excused = true
			}
		}
		if !excused {
			w.violate("I3", "%s", f.msg)
		}
	}
}

// landed counts a storage write that landed. In a round of several operations it also
// follows, write by write, which credential each config stores and who stored it, which
// I8's check after the round (checkOperatorKeys) would see only as the round's net change
// (an operator's write, and a rotation that replaced the written key in the same round,
// look like the write alone): a change that no operator's write made lifts the protection
// of the credential it replaced, as checkOperatorKeys does after a single operation. It
// keeps what an operator's write stored after (goneAtStore).
func (c *concurrency) landed(key string) {
	name, ok := strings.CutPrefix(key, configPrefix)
	if !ok {
		return
	}
	c.configWrites[name]++
	if c.ops <= 1 || c.s.cur == nil {
		return
	}
	c.s.cur.storedConfig = true
	w := c.w
	byOperator := c.s.cur.op == "credential-write" || c.s.cur.op == "write" // a config write changes no credential unless it writes one
	if cur := w.storedID(name); cur != "" && cur != w.current[name] {
		if prev := w.current[name]; prev != "" && !byOperator {
			delete(w.protected, prev)
		}
		w.current[name] = cur
	}
	if byOperator {
		if c.goneAtStore == nil {
			c.goneAtStore = map[string][]string{}
		}
		c.goneAtStore[name] = w.sim.BloqDeletedClientIDs()
	}
}

// wroteStale handles an operator's credential write of config name, meant for key id with
// secret secret, that a rotation running meanwhile made stale: the operator copied the key
// from the console before the rotation replaced it. The config then holds a dead credential
// that only an operator can replace (wroteDead, operatorMustWrite):
//   - the write gave the secret alone (operatorVariant's partial write, for the key stored
//     when the operator looked), and it landed on the key the rotation stored instead;
//   - the key was deleted upstream before the write stored it; I8 protects it no more (no
//     later delete can be of it).
func (w *world) wroteStale(name, id, secret string) {
	switch stored := w.storedID(name); {
	case stored != "" && stored != id && w.storedSecret(name) == secret:
		// Checked first: the key meant may also have been deleted upstream meanwhile, but
		// what the config holds now is the other key, with the secret written.
		w.conc.wroteDead[name] = stored
		w.logf("  (the secret written for %s was stored with %s, which a rotation stored meanwhile)", w.label(id),
			w.label(stored))
	case slices.Contains(w.conc.goneAtStore[name], id):
		delete(w.protected, id)
		w.conc.wroteDead[name] = id
		w.logf("  (%s was deleted upstream before the write stored it)", w.label(id))
	}
}

// giveUpOthers gives up every credential of config name's account but the one whose secret
// an operator's credential write just stored. A write runs with the credential the operator
// read from the console when it began: a rotation that ran meanwhile (the write waits for its
// lock) made credentials the operator never saw, and the write replaced them, as it replaces
// every other one.
func (w *world) giveUpOthers(name, written string) {
	for _, s := range w.accountSecrets(name) {
		if s != written && !w.givenUp[s] {
			w.givenUp[s] = true
			w.logf("  (the write gives up %s, made while it ran)", w.label(s))
		}
	}
}

// watch wraps a storage write's apply: in a round of several operations, a delete's write
// keeps the storage as it was just before it landed (deleteSaw). An unforced delete gives up
// what the config's records held when it dropped them, which a concurrent rotation may have
// changed since the delete began.
func (c *concurrency) watch(key string, apply func() error) func() error {
	if c.ops <= 1 || c.s.cur == nil || c.s.cur.op != "delete" {
		return apply
	}
	return func() error {
		c.deleteSaw += c.w.storageText()
		return apply()
	}
}

// operatorMustWrite reports whether only an operator can give config name a working
// credential again: the OffBlocks provider adopted a pair an operator gave up; or config name
// still stores the dead credential an operator's write stored over a rotation running
// meanwhile (wroteStale).
func (w *world) operatorMustWrite(name string) bool {
	if name == "ob" {
		_, live := w.sim.OffBlocksPair(w.obID)
		return w.givenUp[live]
	}
	id := w.conc.wroteDead[name]
	return id != "" && w.storedID(name) == id
}
