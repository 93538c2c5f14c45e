package apitokens

import (
	"fmt"
	"math/rand"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// The deterministic simulation's scheduler: the operations of one round (sim_round_test.go)
// each run as a task in a goroutine of its own, but only one task runs at a time. A task
// hands the token back at its yield points: each storage call and each provider call,
// before it is made and when its answer comes back (nodeStorage, nodeTransport), each wait of
// the backend's own (b.sleep), and an unlock that wakes a waiter. Which task runs is decided the PCT way
// (probabilistic concurrency testing, Burckhardt et al., ASPLOS 2010): each task has a
// priority drawn when it starts, the highest ready task runs, and at a few change points,
// drawn for each round among its first yield points, the running task drops below every
// other. So a task that takes over runs to its end, or until it waits, as a rotation that
// starts while a read's mint is in flight must for the mint to outlive it; a uniform choice
// at each point would almost never let it (a rotation has ten yield points or more). Every
// draw comes from the seed's concurrency generator, ties go to the lower task id: which
// interleaving a seed makes depends on the seed alone, never on real time or on the Go
// scheduler, and a seed replays bit for bit.
//
// A task must never block in a Go primitive while another task holds what it waits for: the
// backend's long-held primitives (a config's lock and the singleflight groups, seams.go) are
// replaced on every node by cooperative versions (sim_coop_test.go), which park the task
// (blocked) and let the scheduler run another, and make it ready again when what it waits
// for is released. The
// other mutexes are never held across a storage or provider call, so with one task running
// at a time they are always free; a task blocked anywhere else stalls the round, which the
// scheduler reports (stallAfter) rather than hangs.
//
// A round of one operation, like the world's set-up and its convergence at the end, runs in
// the driver's own goroutine, outside the scheduler: yields do nothing, the locks are free,
// and a flight runs in its caller, as before rounds existed.

type taskState int

const (
	taskReady taskState = iota
	taskBlocked
	taskDone
)

// task is one operation of a round, or the call of a flight a task started (singleflight's
// DoChan runs the call in a goroutine of its own: here, a task of its own).
type task struct {
	id    int
	op    string // the operation's name (a flight's call carries its starter's)
	label string // for the trace: "read ob", "settle flight of ob"
	prio  int64  // the highest ready task runs
	wake  chan struct{}
	state taskState
	waits string // what a blocked task waits for
	// start is when the operation began by the shared clock (a flight's call has its
	// starter's): while the task runs, it is the world's opStart, which bounds how far a slow
	// call may move the clock.
	start   time.Time
	started bool
	// storedConfig: a write of a config/ key by this task landed (concurrency.landed).
	storedConfig bool
}

// sched is a world's scheduler; its tasks are the current round's.
type sched struct {
	w *world
	r *rand.Rand
	// changeAt are the round's change points, by the number of its yields (points at
	// which another task was ready); yields counts them.
	changeAt []int
	yields   int
	// low is below every priority given so far (a change point puts the task under it).
	low   int64
	tasks []*task
	cur   *task // the running task; nil between rounds
	next  *task // the task a yield chose, for the driver to run
	back  chan struct{}
	// abort unwinds every task left after a deadlock (a task resumed panics taskAborted).
	abort    bool
	panicked any
	ids      int
}

// stallAfter is how long (real time) the driver waits for a running task to yield before it
// reports a task blocked in a primitive the scheduler does not know.
const stallAfter = 2 * time.Minute

type taskAborted struct{}

// spawn adds a ready task running fn.
func (s *sched) spawn(op, label string, fn func(t *task)) *task {
	s.ids++
	t := &task{id: s.ids, op: op, label: label, prio: s.r.Int63(), wake: make(chan struct{})}
	s.tasks = append(s.tasks, t)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(taskAborted); !ok {
					s.panicked = fmt.Sprintf("task t%d (%s) panicked: %v\n%s", t.id, t.label, r, debug.Stack())
				}
			}
			t.state = taskDone
			s.back <- struct{}{}
		}()
		<-t.wake
		if !s.abort {
			fn(t)
		}
	}()
	return t
}

// ready are the ready tasks, by id.
func (s *sched) ready() []*task {
	var ready []*task
	for _, t := range s.tasks {
		if t.state == taskReady {
			ready = append(ready, t)
		}
	}
	return ready
}

// choose is the ready task of the highest priority (the first by id among equals).
func (s *sched) choose(ready []*task) *task {
	best := ready[0]
	for _, t := range ready[1:] {
		if t.prio > best.prio {
			best = t
		}
	}
	return best
}

// plan draws the round's change points: one to three among its first 2 to 25 yields.
func (s *sched) plan() {
	s.yields, s.changeAt = 0, nil
	k := 2 + s.r.Intn(24)
	for d := 1 + s.r.Intn(3); d > 0; d-- {
		s.changeAt = append(s.changeAt, 1+s.r.Intn(k))
	}
}

// run runs the round's tasks to their end. A round where no task is ready while some are
// blocked is a deadlock: a violation (the backend's locks and flights must never deadlock),
// after which every task left is unwound.
func (s *sched) run() {
	for {
		t := s.next
		s.next = nil
		if t == nil {
			ready := s.ready()
			if len(ready) == 0 {
				if !s.deadlocked() {
					break
				}
				continue
			}
			t = s.choose(ready)
		}
		s.resume(t)
	}
	s.tasks, s.cur = nil, nil
}

// resume gives the token to t until it yields, blocks or ends.
func (s *sched) resume(t *task) {
	s.cur = t
	if !t.started {
		t.start, t.started = s.w.clock.Now(), true
		s.w.logf("  -- begins")
	}
	s.w.op, s.w.opStart = t.op, t.start
	t.wake <- struct{}{}
	timer := time.NewTimer(stallAfter)
	defer timer.Stop()
	select {
	case <-s.back:
	case <-timer.C:
		panic(fmt.Sprintf("seed %d: task t%d (%s) has not yielded for %s: it blocks in a primitive the scheduler "+
			"does not know\n%s", s.w.seed, t.id, t.label, stallAfter, strings.Join(s.w.trace, "\n")))
	}
	if s.panicked != nil {
		panic(s.panicked)
	}
}

// deadlocked reports blocked tasks as a violation and unwinds them; false if there are none.
func (s *sched) deadlocked() bool {
	var waits []string
	for _, t := range s.tasks {
		if t.state == taskBlocked {
			waits = append(waits, fmt.Sprintf("t%d (%s) waits for %s", t.id, t.label, t.waits))
		}
	}
	if len(waits) == 0 || s.abort {
		return false
	}
	s.w.violate("I4", "deadlock: %s", strings.Join(waits, "; "))
	s.abort = true
	for _, t := range s.tasks {
		if t.state == taskBlocked {
			t.state = taskReady
		}
	}
	return true
}

// yield is a scheduling point of the running task: the scheduler may run another ready task
// first. what and arg name it in the trace.
func (w *world) yield(what, arg string) {
	s := w.conc.s
	t := s.cur
	if t == nil || s.abort || len(s.tasks) < 2 {
		return
	}
	ready := s.ready()
	if len(ready) < 2 {
		return
	}
	w.cover["concurrency.yield"]++
	s.yields++
	if slices.Contains(s.changeAt, s.yields) {
		s.low--
		t.prio = s.low
	}
	next := s.choose(ready)
	if next == t {
		return
	}
	w.cover["concurrency.switch"]++
	w.conc.switched = true
	w.logf("  -- yields at %s %s; t%d (%s) runs", what, arg, next.id, next.label)
	s.next = next
	s.park(t)
}

// park hands the token back to the driver and waits for it again.
func (s *sched) park(t *task) {
	s.back <- struct{}{}
	<-t.wake
	if s.abort {
		panic(taskAborted{})
	}
}

// block parks the running task until another makes it ready (wakeUp).
func (s *sched) block(what string) {
	t := s.cur
	if t == nil {
		panic("the simulation's " + what + " would block outside a round: a task deadlocks on itself")
	}
	if s.abort {
		panic(taskAborted{})
	}
	t.state, t.waits = taskBlocked, what
	s.park(t)
}

// wakeUp makes a blocked task ready (after a deadlock, the tasks being unwound are ready,
// or done, already).
func (s *sched) wakeUp(t *task) {
	if t.state == taskBlocked {
		t.state, t.waits = taskReady, ""
	}
}
