package apitokens

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The deterministic simulation of the whole backend (the FoundationDB / TigerBeetle way):
// from a seed, a sequence of operations and faults against one or two Vault nodes sharing
// one storage, with the fake clock and the in-process provider simulator, and the
// invariants of sim_check_test.go after every step. A failing seed prints a one-line
// reproduction and its trace.
//
//	go test -run TestSimulation -seeds=200000     # more seeds (make simulate)
//	go test -run TestSimulation -seed=1234 -v     # replay one, printing its trace
var (
	simSeed  = flag.Int64("seed", 0, "TestSimulation: replay only this seed, printing its trace")
	simSeeds = flag.Int("seeds", 0, "TestSimulation: how many seeds to run (default 2000; 200 under the race detector, "+
		"where make test's simulate-ci runs the 2000 without it)")
	simFirst = flag.Int64("first-seed", 1, "TestSimulation: the first seed")
	simSteps = flag.Int("steps", 60, "TestSimulation: operations per seed")
	simMax   = flag.Int("maxfail", 3, "TestSimulation: stop after this many failing seeds")
	simBrief = flag.Int("brief", 120, "TestSimulation: trace lines printed per failing seed")
)

// runSeed runs one seed's world for steps rounds (of one operation, or a few concurrent
// ones), then lets it converge.
func runSeed(seed int64, r *rand.Rand, steps int) *world {
	w := newWorld(seed, r)
	faults := w.sw
	w.sw = swarm{multiNode: faults.multiNode, bloq: faults.bloq}
	readFail := w.fs.readFail // the operator's first writes are not refused by storage either
	w.fs.readFail = 0
	w.logf("seed %d: swarm %+v", seed, faults)
	for _, name := range w.configNames() {
		w.opCredentialWrite(name)
	}
	w.checkOperatorKeys()
	w.sw, w.fs.readFail = faults, readFail
	for w.opN = 1; w.opN <= steps && w.bad == nil; w.opN++ {
		w.runRound(w.pickRound()) // one operation, or a few interleaved (sim_round_test.go)
	}
	if w.bad == nil {
		w.converge()
	}
	return w
}

// report is the failure text of a world: the reproduction line, the violation and the trace.
func (w *world) report() string {
	trace := w.trace
	if len(trace) > *simBrief {
		trace = append([]string{"..."}, trace[len(trace)-*simBrief:]...)
	}
	return fmt.Sprintf("seed %d violates %s: %s\nreproduce: go test -run 'TestSimulation$' -seed=%d -v .\n%s",
		w.seed, w.bad.inv, w.bad.msg, w.seed, strings.Join(trace, "\n"))
}

// regressionSeeds are seeds that once failed, kept in testdata and run first.
func regressionSeeds(t *testing.T) []int64 {
	f, err := os.Open("testdata/simulation-seeds.txt")
	if err != nil {
		return nil
	}
	defer f.Close()
	var seeds []int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := strconv.ParseInt(strings.Fields(line)[0], 10, 64)
		if err != nil {
			t.Fatalf("testdata/simulation-seeds.txt: %q: %v", line, err)
		}
		seeds = append(seeds, s)
	}
	return seeds
}

func TestSimulation(t *testing.T) {
	if *simSeed != 0 {
		w := runSeed(*simSeed, rand.New(rand.NewSource(*simSeed)), *simSteps)
		t.Log(strings.Join(w.trace, "\n"))
		if w.bad != nil {
			t.Fatal(w.report())
		}
		return
	}
	seeds := regressionSeeds(t)
	n := *simSeeds
	if n == 0 {
		n = 2000
		if raceEnabled {
			n = 200 // ten times slower under -race; make test runs the 2000 without it (simulate-ci)
		}
	}
	for s := *simFirst; s < *simFirst+int64(n); s++ {
		seeds = append(seeds, s)
	}
	base := runtime.NumGoroutine()
	var (
		mu     sync.Mutex
		cover  = map[string]int{}
		failed []*world
		next   = make(chan int64)
		wg     sync.WaitGroup
	)
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range next {
				w := runSeed(seed, rand.New(rand.NewSource(seed)), *simSteps)
				mu.Lock()
				for k, v := range w.cover {
					cover[k] += v
				}
				if w.bad != nil {
					failed = append(failed, w)
				}
				mu.Unlock()
			}
		}()
	}
	for _, s := range seeds {
		mu.Lock()
		stop := len(failed) >= *simMax
		mu.Unlock()
		if stop {
			break
		}
		next <- s
	}
	close(next)
	wg.Wait()
	sort.Slice(failed, func(i, j int) bool { return failed[i].seed < failed[j].seed })
	for _, w := range failed {
		t.Error(w.report())
	}
	if n := goroutinesSettle(base); n > base {
		t.Errorf("I4: %d goroutines outlive the simulation (%d before)", n, base)
	}
	keys := make([]string, 0, len(cover))
	for k := range cover {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s=%d ", k, cover[k])
	}
	t.Logf("%d seeds; coverage: %s", len(seeds), sb.String())
}

// byteSource is a rand.Source drawing from fuzz input, then from a fixed generator once the
// input is used up: the fuzzer steers every decision the simulation takes.
type byteSource struct {
	data []byte
	rest rand.Source
}

func (s *byteSource) Int63() int64 {
	if len(s.data) >= 8 {
		v := binary.LittleEndian.Uint64(s.data)
		s.data = s.data[8:]
		return int64(v & (1<<63 - 1))
	}
	return s.rest.Int63()
}

func (s *byteSource) Seed(int64) {}

// FuzzSimulation explores the simulation with coverage guidance: the input chooses the
// swarm, the operations and the faults.
func FuzzSimulation(f *testing.F) {
	for _, s := range []int64{1, 2, 3} {
		seed := make([]byte, 64)
		binary.LittleEndian.PutUint64(seed, uint64(s))
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w := runSeed(0, rand.New(&byteSource{data: data, rest: rand.NewSource(1)}), 40)
		if w.bad != nil {
			t.Fatal(w.report())
		}
	})
}
