//go:build linux

package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// burstKind is one of the three bursts of a round.
type burstKind int

const (
	burstOn burstKind = iota
	burstOff
	burstFloor
	burstKinds
)

// burstFigures are one kind's bursts, one per round, in round order.
type burstFigures struct {
	walls  []time.Duration
	calls  []int // provider token calls during the burst (reuse on and off only)
	errors int64
}

type burstResults [burstKinds]burstFigures

// runBursts runs rounds rounds of the three bursts (reuse on, reuse off, floor), each of n
// concurrent reads, in an order that rotates by one each round (round 0: on, off, floor;
// round 1: off, floor, on; ...), so that no kind always comes first or follows the same
// one. Each creds burst reads a config of its own, written before the first round and never
// read before its burst (a cold config). Before every burst the same unrecorded kv burst
// runs: whatever a burst leaves behind (connections, goroutines, garbage) is then the same
// for every kind.
func runBursts(n, rounds int, sim *simProcess, config func(string, bool) error,
	read func(string) func() error, warm, floorOp func() error) (*burstResults, error) {
	progress("bursts: writing %d cold configs", 2*rounds)
	for i := 0; i < rounds; i++ {
		if err := config(fmt.Sprintf("burst-on-%d", i), true); err != nil {
			return nil, err
		}
		if err := config(fmt.Sprintf("burst-off-%d", i), false); err != nil {
			return nil, err
		}
	}
	var res burstResults
	for i := 0; i < rounds; i++ {
		progress("bursts: round %d of %d", i+1, rounds)
		for j := 0; j < int(burstKinds); j++ {
			kind := burstKind((i + j) % int(burstKinds))
			var op func() error
			switch kind {
			case burstOn:
				op = read(fmt.Sprintf("apitokens/creds/burst-on-%d", i))
			case burstOff:
				op = read(fmt.Sprintf("apitokens/creds/burst-off-%d", i))
			default:
				op = floorOp
			}
			burst(warm, n)
			before, err := sim.tokenCalls()
			if err != nil {
				return nil, err
			}
			wall, errs := burst(op, n)
			after, err := sim.tokenCalls()
			if err != nil {
				return nil, err
			}
			f := &res[kind]
			f.walls, f.errors = append(f.walls, wall), f.errors+errs
			if kind != burstFloor {
				f.calls = append(f.calls, after-before)
			}
		}
	}
	return &res, nil
}

// rows adds the three burst rows: the median wall time over the rounds, then every round's.
func (res *burstResults) rows(r *report, n int) {
	on, off, floor := &res[burstOn], &res[burstOff], &res[burstFloor]
	onMed, floorMed := medianDuration(on.walls), medianDuration(floor.walls)
	oneCall := !slices.ContainsFunc(on.calls, func(c int) bool { return c != 1 })
	limit := time.Duration(1.3 * float64(floorMed))
	r.add(fmt.Sprintf("burst of %s reads, cold config, reuse on", thousands(n)),
		fmt.Sprintf("%s; provider calls per burst: %s; %d errors", wallFigure(on.walls), joinInts(on.calls), on.errors),
		fmt.Sprintf("wall ≤ 1.3 × floor burst = %s, exactly 1 provider call per burst, 0 errors", wholeMs(limit)),
		verdict(onMed <= limit && oneCall && on.errors == 0))
	r.add(fmt.Sprintf("burst of %s reads, cold config, reuse off", thousands(n)),
		fmt.Sprintf("%s; provider calls per burst: %s; %d errors", wallFigure(off.walls), joinInts(off.calls), off.errors),
		"none: shows why reuse exists", "")
	r.add(fmt.Sprintf("burst of %s reads, floor plugin", thousands(n)),
		fmt.Sprintf("%s; %d errors", wallFigure(floor.walls), floor.errors),
		"reference: the same load on the floor", "")
}

// wallFigure reads "median 240 ms (231, 240, 262)", the rounds in their order.
func wallFigure(walls []time.Duration) string {
	each := make([]string, len(walls))
	for i, w := range walls {
		each[i] = strconv.FormatInt(w.Round(time.Millisecond).Milliseconds(), 10)
	}
	return fmt.Sprintf("median %s (%s)", wholeMs(medianDuration(walls)), strings.Join(each, ", "))
}

func wholeMs(d time.Duration) string {
	return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + " ms"
}

// medianDuration is the middle value (of an even count, the mean of the two middle ones).
func medianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func joinInts(xs []int) string {
	each := make([]string, len(xs))
	for i, x := range xs {
		each[i] = thousands(x)
	}
	return strings.Join(each, ", ")
}

// thousands writes n with commas between groups of three digits: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}
