//go:build linux

package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
)

// lease is one creds read's answer as the soak checks it: the token (never printed), and the
// lease's issue and expire times by Vault (sys/leases/lookup).
type lease struct {
	config, token string
	start, end    time.Time
	// fresh: the token differs from the last one this reader got of the config.
	fresh bool
}

// checker validates sampled leases' tokens at the simulator (POST /_sim/validate, which says
// whether a token is usable at its provider right now) while their leases run.
type checker struct {
	url    string
	web    *http.Client
	st     *soakStats
	wg     sync.WaitGroup
	queued atomic.Int64
}

func newChecker(simURL string, st *soakStats) *checker {
	web := cleanhttp.DefaultPooledClient()
	web.Timeout = 10 * time.Second
	return &checker{url: simURL + "/_sim/validate", web: web, st: st}
}

// endMargin is how long before its lease's end a lease's last check is sent: at most 1 s, a
// quarter of the lease when shorter, so that the simulator answers before the end.
func endMargin(l lease) time.Duration { return min(time.Second, l.end.Sub(l.start)/4) }

// schedule checks l's token twice while its lease runs: at a random moment of the lease
// (before its last margin) and just before its end (endMargin).
func (c *checker) schedule(l lease, rng *rand.Rand) {
	c.st.sampled(l)
	margin := endMargin(l)
	random := l.start.Add(time.Duration(rng.Float64() * float64(l.end.Sub(l.start)-margin)))
	for i, at := range []time.Time{random, l.end.Add(-margin)} {
		c.wg.Add(1)
		c.queued.Add(1)
		time.AfterFunc(time.Until(at), func() {
			defer c.wg.Done()
			defer c.queued.Add(-1)
			c.check(l, at, i == 1)
		})
	}
}

// pending is how many checks are still due.
func (c *checker) pending() int64 { return c.queued.Load() }

// wait returns once every scheduled check has run.
func (c *checker) wait() { c.wg.Wait() }

// check asks the simulator whether l's token is usable now. A refusal answered before the
// lease's end is a token dead inside its lease; one answered after it, of a check sent before
// it, is counted apart (the provider may have refused it after the lease ended).
func (c *checker) check(l lease, due time.Time, last bool) {
	sent := time.Now()
	if !sent.Before(l.end) {
		c.st.lateCheck(fmt.Sprintf("%s: lease of %s from %s, check due at %s (%s) ran %s late",
			l.config, l.end.Sub(l.start), stamp(l.start), stamp(due), which(last), sent.Sub(due).Round(time.Millisecond)))
		return
	}
	req, err := http.NewRequest(http.MethodPost, c.url, nil)
	if err != nil {
		c.st.checkOutcome(checkError)
		return
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := c.web.Do(req)
	got := time.Now()
	if err != nil {
		c.st.checkOutcome(checkError)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		c.st.checkOutcome(checkValid)
	case resp.StatusCode != http.StatusUnauthorized:
		c.st.checkOutcome(checkError)
	case got.Before(l.end):
		c.st.deadToken(l, sent, last, oneLine(fmt.Errorf("%s", body)))
	default:
		c.st.checkOutcome(checkRefusedAtEnd)
	}
}

// The outcomes of a check, other than a token dead inside its lease.
const (
	checkValid = iota
	checkRefusedAtEnd
	checkLate
	checkError
	checkOutcomes
)

// deadToken is a token the provider refused while its lease ran; the token is not kept.
type deadToken struct {
	config             string
	start, end, sentAt time.Time
	last               bool   // the lease's last check (just before its end)
	why                string // the simulator's answer
	rotations          int    // rotations of the config observed before the check
	lastRotation       time.Time
}

// which names a lease's check: the last, just before its end, or the other.
func which(last bool) string {
	if last {
		return "near its end"
	}
	return "at a random moment"
}

func (d deadToken) String() string {
	last := "none"
	if !d.lastRotation.IsZero() {
		last = d.lastRotation.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("config %s: lease %s → %s, checked at %s (%s): %s; %d rotations observed before, the last at %s",
		d.config, stamp(d.start), stamp(d.end), stamp(d.sentAt), which(d.last), d.why, d.rotations, last)
}

// stamp is t in UTC to the millisecond.
func stamp(t time.Time) string { return t.UTC().Format("15:04:05.000") }
