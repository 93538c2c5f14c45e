package apitokens

import (
	"math/rand"
	"regexp"
	"strings"
	"testing"
)

// Tests of the simulation's scheduler itself (sim_sched_test.go).

// randomIDs are the identifiers the backend generates from crypto/rand (a new OffBlocks key,
// a WAL entry's id) that error texts quote: the trace names credentials by label, but quotes
// these as they are.
var randomIDs = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{24,}\b`)

func replayable(trace []string) []string {
	out := make([]string, len(trace))
	for i, l := range trace {
		out[i] = randomIDs.ReplaceAllString(l, "<id>")
	}
	return out
}

// A seed whose rounds interleave operations replays bit for bit: the same trace (but for the
// random identifiers errors quote) and the same coverage, run twice at once, so that the Go
// scheduler runs the two differently.
func TestSimulationConcurrentSeedsReplay(t *testing.T) {
	checked := 0
	for seed := int64(1); checked < 6 && seed < 400; seed++ {
		worlds := make(chan *world, 2)
		for range 2 {
			go func() { worlds <- runSeed(seed, rand.New(rand.NewSource(seed)), *simSteps) }()
		}
		a, b := <-worlds, <-worlds
		if a.cover["concurrency.switch"] < 5 {
			continue // few interleavings: not the seeds this test is for
		}
		checked++
		ta, tb := replayable(a.trace), replayable(b.trace)
		for i := range min(len(ta), len(tb)) {
			if ta[i] != tb[i] {
				t.Fatalf("seed %d does not replay: line %d is\n%s\nin one run and\n%s\nin the other", seed, i, ta[i], tb[i])
			}
		}
		if len(ta) != len(tb) {
			t.Fatalf("seed %d does not replay: %d trace lines in one run, %d in the other", seed, len(ta), len(tb))
		}
		for k, v := range a.cover {
			if b.cover[k] != v {
				t.Fatalf("seed %d does not replay: coverage %s is %d in one run, %d in the other", seed, k, v, b.cover[k])
			}
		}
	}
	if checked < 6 {
		t.Fatalf("only %d of the first 400 seeds interleave operations", checked)
	}
}

// Two tasks that take two locks in opposite orders deadlock: the scheduler reports it as a
// violation and unwinds both tasks (their deferred unlocks run, and their goroutines end:
// TestSimulation's leak check would see one left).
func TestSimulationSchedulerReportsDeadlock(t *testing.T) {
	w := newWorld(1, rand.New(rand.NewSource(1)))
	s := w.conc.s
	lockA, lockB := &coopLock{w: w, name: "a"}, &coopLock{w: w, name: "b"}
	unlocked := 0
	take := func(first, second *coopLock) func(*task) {
		return func(*task) {
			first.Lock()
			defer func() { first.Unlock(); unlocked++ }()
			w.yield("between the locks", "")
			second.Lock()
			defer second.Unlock()
		}
	}
	w.conc.ops = 2
	t1 := s.spawn("t1", "a then b", take(lockA, lockB))
	t2 := s.spawn("t2", "b then a", take(lockB, lockA))
	t1.prio, t2.prio = 2, 1
	s.changeAt, s.yields = []int{1}, 0 // t1 drops below t2 at its first yield
	s.run()
	if w.bad == nil || w.bad.inv != "I4" || !strings.Contains(w.bad.msg, "deadlock") {
		t.Fatalf("no deadlock reported: %v\n%s", w.bad, strings.Join(w.trace, "\n"))
	}
	if !strings.Contains(w.bad.msg, "t1 (a then b) waits for the lock of b") ||
		!strings.Contains(w.bad.msg, "t2 (b then a) waits for the lock of a") {
		t.Fatalf("the report does not say who waits for what: %s", w.bad.msg)
	}
	if unlocked != 2 || s.tasks != nil {
		t.Fatalf("the tasks were not unwound: %d of their first locks released", unlocked)
	}
}
