//go:build acceptance

package acceptance

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A token handed out by a creds read, checked at the provider until its lease ends.
type handed struct {
	config, token string
	// by is the version the mount ran both just before and just after the read ("" when it
	// changed in between: a reload during the read, which then cannot say which served it).
	by string
	// read is when the read began; leaseEnd is read plus the lease: the earliest its lease
	// can end (Vault starts it later), so a death before it is surely inside the lease.
	read, leaseEnd time.Time
	lastOK, next   time.Time // lastOK: the last check it passed (zero: none yet)
	died           time.Time // the first check that found it refused
	why            string
}

// A mark says what the mount runs from a moment on: a version, or "" while a recipe reloads.
type mark struct {
	at      time.Time
	running string
}

// tracker runs the readers and checks every token they get until its lease ends.
type tracker struct {
	sim   *simulator.Server
	mu    sync.Mutex
	all   []*handed
	marks []mark
	reads map[string]int // "<version> ok|failed"
	// exempt: a token of the config handed out before then may die inside its lease (an
	// operator's immediate rotate-root, which the invariants allow).
	exempt map[string]time.Time
	// gate is held by each read of gated configs; kill takes it, so no such read is in flight
	// when the plugin is killed (a rotated refresh token whose answer is lost to a crash is
	// lost for good, in every version: not what this test is about).
	gate    sync.RWMutex
	gated   map[string]bool
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

// Pacing of the readers and of the checks (not synchronisation: every wait on an outcome
// polls it with a deadline).
const (
	readPause  = 400 * time.Millisecond
	checkEvery = 2 * time.Second
	checkTick  = 100 * time.Millisecond
	// lastCheck: the last check of a token is at most this long before its lease's end.
	lastCheck = 500 * time.Millisecond
)

func newTracker(sim *simulator.Server, running string) *tracker {
	return &tracker{sim: sim, marks: []mark{{time.Now(), running}}, reads: map[string]int{},
		exempt: map[string]time.Time{}, gated: map[string]bool{}, stop: make(chan struct{})}
}

// start runs n readers of every config in names, each from its own client, and the checker.
func (k *tracker) start(t *testing.T, v *vaultServer, names []string, n int) {
	for i := 0; i < n; i++ {
		c, err := v.client.Clone()
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(v.client.Token())
		k.wg.Add(1)
		go k.reader(c, names, i)
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		for {
			select {
			case <-k.stop:
				return
			case <-time.After(checkTick):
				k.check(false)
			}
		}
	}()
}

func (k *tracker) reader(c *api.Client, names []string, offset int) {
	defer k.wg.Done()
	for i := offset; ; i++ {
		select {
		case <-k.stop:
			return
		case <-time.After(readPause):
		}
		name := names[i%len(names)]
		if k.gated[name] {
			k.gate.RLock()
		}
		before, start := runningVersion(c), time.Now()
		s, err := c.Logical().Read("apitokens/creds/" + name)
		after := runningVersion(c)
		if k.gated[name] {
			k.gate.RUnlock()
		}
		k.record(name, before, after, start, s, err)
	}
}

// runningVersion is the version the apitokens/ mount runs now ("" if Vault does not say).
func runningVersion(c *api.Client) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Sys().GetMountWithContext(ctx, "apitokens")
	if err != nil {
		return ""
	}
	return m.RunningVersion
}

func (k *tracker) record(name, before, after string, start time.Time, s *api.Secret, err error) {
	by := before
	if before != after {
		by = ""
	}
	tok := ""
	if err == nil && s != nil {
		tok, _ = s.Data["token"].(string)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	outcome := "ok"
	if tok == "" {
		outcome = "failed"
	}
	k.reads[fmt.Sprintf("%s %s %s", or(by, "reload"), name, outcome)]++
	if tok == "" {
		return
	}
	end := start.Add(time.Duration(s.LeaseDuration) * time.Second)
	k.all = append(k.all, &handed{config: name, token: tok, by: by, read: start, leaseEnd: end, next: start})
}

// check validates every token whose lease has not ended and whose check is due (all of
// them, if now), about every checkEvery and last within lastCheck of its lease's end.
func (k *tracker) check(now bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, h := range k.all {
		at := time.Now()
		if !h.died.IsZero() || !at.Before(h.leaseEnd) || (!now && at.Before(h.next)) {
			continue
		}
		if _, err := k.sim.Validate(h.token); err != nil {
			h.died, h.why = at, err.Error()
			continue
		}
		h.lastOK, h.next = at, at.Add(checkEvery)
		if last := h.leaseEnd.Add(-lastCheck); h.next.After(last) {
			h.next = last
			if !last.After(at) {
				h.next = h.leaseEnd // checked for the last time
			}
		}
	}
}

// mark records what the mount runs from now on, after checking every live token, so that a
// death is placed on the right side of it.
func (k *tracker) mark(running string) {
	k.check(true)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.marks = append(k.marks, mark{time.Now(), running})
}

// kill runs f with no gated read in flight.
func (k *tracker) kill(f func()) {
	k.gate.Lock()
	defer k.gate.Unlock()
	f()
}

// halt stops the readers and the checker; it may be called again.
func (k *tracker) halt() {
	k.stopped.Do(func() { close(k.stop) })
	k.wg.Wait()
}

// finish stops the readers and checks the tokens they got until the last lease has ended.
func (k *tracker) finish() {
	k.halt()
	for {
		k.check(false)
		k.mu.Lock()
		left := time.Duration(0)
		for _, h := range k.all {
			if h.died.IsZero() {
				left = max(left, time.Until(h.leaseEnd))
			}
		}
		k.mu.Unlock()
		if left <= 0 {
			return
		}
		time.Sleep(min(left, checkTick))
	}
}

// ranDuring is what the mount ran over (from, to]: one version, or "" if a reload or another
// version came in between.
func (k *tracker) ranDuring(from, to time.Time) string {
	running := k.marks[0].running
	for _, m := range k.marks {
		if !m.at.After(from) {
			running = m.running
		} else if m.at.Before(to) && m.running != running {
			return ""
		}
	}
	return running
}

// deaths sums up, per config, tokens that died inside their lease.
type deaths map[string]*deathGroup

type deathGroup struct {
	n, unseen                int // unseen: refused at their first check
	read0, read1, die0, die1 time.Time
	why                      map[string]bool
}

func (d deaths) add(h *handed) {
	g := d[h.config]
	if g == nil {
		g = &deathGroup{read0: h.read, die0: h.died, why: map[string]bool{}}
		d[h.config] = g
	}
	g.n++
	if h.lastOK.IsZero() {
		g.unseen++
	}
	g.read0, g.read1 = minTime(g.read0, h.read), maxTime(g.read1, h.read)
	g.die0, g.die1 = minTime(g.die0, h.died), maxTime(g.die1, h.died)
	g.why[h.why] = true
}

func (d deaths) total() int {
	n := 0
	for _, g := range d {
		n += g.n
	}
	return n
}

// lines says, per config: how many, when handed out, when found refused, why.
func (d deaths) lines() []string {
	var out []string
	const f = "15:04:05.000"
	for name, g := range d {
		var why []string
		for w := range g.why {
			why = append(why, w)
		}
		sort.Strings(why)
		out = append(out, fmt.Sprintf("%s: %d tokens handed out %s to %s, found refused %s to %s (%s); %d of them "+
			"already at their first check", name, g.n, g.read0.Format(f), g.read1.Format(f), g.die0.Format(f),
			g.die1.Format(f), strings.Join(why, "; "), g.unseen))
	}
	sort.Strings(out)
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// report logs the figures, and fails the test if a token handed out by main (mainV) died
// inside its lease while main ran (but for those an operator's rotate-root may kill), or if
// either version handed out none.
func (k *tracker) report(t *testing.T, mainV, oldV string) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	distinct := map[string]bool{}
	byVersion := map[string]int{}
	underMain, under010, acrossReload, exempted, byOld, byUnknown := deaths{}, deaths{}, deaths{}, deaths{}, deaths{}, deaths{}
	for _, h := range k.all {
		distinct[h.token] = true
		byVersion[h.by]++
		if h.died.IsZero() {
			continue
		}
		when := k.ranDuring(maxTime(h.read, h.lastOK), h.died)
		switch {
		case h.by == oldV:
			byOld.add(h)
		case h.by == "":
			byUnknown.add(h)
		case !k.exempt[h.config].IsZero() && h.read.Before(k.exempt[h.config]):
			exempted.add(h)
		case when == mainV:
			underMain.add(h)
		case when == oldV:
			under010.add(h)
		default:
			acrossReload.add(h)
		}
	}
	var reads []string
	for key, n := range k.reads {
		reads = append(reads, fmt.Sprintf("%s %d", key, n))
	}
	sort.Strings(reads)
	t.Logf("creds reads (version, config, outcome): %s", strings.Join(reads, ", "))
	t.Logf("tokens checked at the provider until their leases ended: %d handed out (%d distinct tokens): "+
		"%d by %s, %d by %s, %d by a read during a reload (version unknown)",
		len(k.all), len(distinct), byVersion[mainV], mainV, byVersion[oldV], oldV, byVersion[""])
	t.Logf("handed out by %s, died inside their lease: %d while %s ran, %d while %s ran (it ignores main's "+
		"lease bounds), %d across a reload, %d after an operator's rotate-root of their config",
		mainV, underMain.total(), mainV, under010.total(), oldV, acrossReload.total(), exempted.total())
	t.Logf("handed out by %s, died inside their lease: %d; handed out during a reload, died inside their lease: %d",
		oldV, byOld.total(), byUnknown.total())
	for _, group := range []struct {
		what string
		d    deaths
	}{{"by " + mainV + ", killed while " + oldV + " ran", under010}, {"by " + mainV + ", killed across a reload", acrossReload},
		{"by " + mainV + ", after an operator's rotate-root", exempted}, {"by " + oldV, byOld}, {"during a reload", byUnknown}} {
		for _, l := range group.d.lines() {
			t.Logf("  died inside their lease, handed out %s: %s", group.what, l)
		}
	}
	for _, l := range underMain.lines() {
		t.Errorf("handed out by %s, died inside their lease while %s ran: %s", mainV, mainV, l)
	}
	if len(k.all) == 0 || byVersion[mainV] == 0 || byVersion[oldV] == 0 {
		t.Errorf("vacuous: %d tokens handed out, %d by %s, %d by %s", len(k.all), byVersion[mainV], mainV, byVersion[oldV], oldV)
	}
}

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}
