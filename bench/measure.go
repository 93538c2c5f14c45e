//go:build linux

package main

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// series is one latency row: an operation and the durations of its calls.
type series struct {
	name    string
	op      func() error
	samples []time.Duration
	errors  int
}

// interleave runs every series perRound times per round, rounds times, round by round, so
// that whatever else the machine does hits all rows alike. A first, unrecorded round warms
// connections and caches.
func interleave(rows []*series, rounds, perRound int) {
	for r := -1; r < rounds; r++ {
		for _, s := range rows {
			for i := 0; i < perRound; i++ {
				start := time.Now()
				err := s.op()
				if r < 0 {
					continue
				}
				if err != nil {
					s.errors++
					continue
				}
				s.samples = append(s.samples, time.Since(start))
			}
		}
	}
}

// quantile returns the q-quantile (0..1) of the samples, nearest rank.
func quantile(samples []time.Duration, q float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// throughput runs op from clients goroutines for d and returns completed operations per
// second, and how many failed.
func throughput(op func() error, clients int, d time.Duration) (float64, int64) {
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if op() == nil {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	time.Sleep(d)
	close(stop)
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds(), failed.Load()
}

// burst releases n goroutines at once, each calling op once, and returns the wall time
// until the last returned and how many failed.
func burst(op func() error, n int) (time.Duration, int64) {
	var failed atomic.Int64
	release := make(chan struct{})
	var ready, done sync.WaitGroup
	for i := 0; i < n; i++ {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-release
			if op() != nil {
				failed.Add(1)
			}
		}()
	}
	ready.Wait()
	start := time.Now()
	close(release)
	done.Wait()
	return time.Since(start), failed.Load()
}

func ms(d time.Duration) string {
	return formatFloat(float64(d)/float64(time.Millisecond), 2) + " ms"
}
