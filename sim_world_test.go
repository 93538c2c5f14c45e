package apitokens

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// The deterministic simulation's world: one provider simulator, one storage, and the Vault
// nodes (backend instances) that share it, all on one fake clock and driven by one
// goroutine at a time (a round's operations are interleaved by sim_sched_test.go's scheduler).
// Every decision (operation, fault, lag, crash point, interleaving) comes from the seed's
// generators, so a seed replays bit for bit. See simulation_test.go for the driver and
// sim_check_test.go for the invariants.

// swarm is which fault kinds a seed turns on and how often (swarm testing: lopsided mixes
// find more than uniform ones). Rates are per provider or storage call, in percent.
type swarm struct {
	refused, unavailable, throttled, lost int // provider call faults
	rejected                              int // a change (PUT credentials, a key created) refused outright
	hostile, farExpiry                    int // a token issued is no Bearer token; it claims a far expiry
	impostor                              int // a mint answered 200 with no Bearer token, credential unchecked
	lagPct                                int // an OffBlocks update applies late
	applyEarly                            int // a pending update applies between two calls
	storageFail, crash                    int // storage write fails; the node dies at a call
	concurrent                            int // rounds of several operations (sim_round_test.go)
	multiNode, bloq                       bool
}

func newSwarm(r *rand.Rand) swarm {
	pick := func(max int) int {
		if r.Intn(3) == 0 {
			return 0 // this kind is off for the seed
		}
		return 1 + r.Intn(max)
	}
	return swarm{
		refused: pick(8), unavailable: pick(10), throttled: pick(6), lost: pick(12), rejected: pick(30),
		lagPct: pick(60), applyEarly: pick(25), storageFail: pick(6), crash: pick(4),
		multiNode: r.Intn(3) == 0, bloq: r.Intn(2) == 0,
	}
}

// hostileSwarm picks the rates of the hostile answers (tokens that are no Bearer token, far
// expiries, impostor 200s) from hr, the world's second generator: drawn apart from the
// seed's first one, they leave every decision that generator takes as it was before these
// kinds existed, so a seed kept in testdata replays its scenario until a hostile answer comes.
func (sw *swarm) hostileSwarm(hr *rand.Rand) {
	pick := func(max int) int {
		if hr.Intn(3) == 0 {
			return 0
		}
		return 1 + hr.Intn(max)
	}
	sw.hostile, sw.farExpiry, sw.impostor = pick(10), pick(25), pick(6)
}

// node is one Vault server's backend on the shared storage.
type node struct {
	w       *world
	id      int
	b       *backend
	storage *nodeStorage
	standby bool
	// dead is set when the node crashes: from then on nothing it does reaches storage or
	// the provider, as after a SIGKILL; the world replaces it with a fresh instance.
	dead bool
	// crashAt, when positive, is the node's outside call (storage or provider) at which it
	// dies during the current operation; calls counts them.
	crashAt, calls int
}

// world is one seed's universe.
type world struct {
	seed int64
	r    *rand.Rand
	// hr draws the hostile answers only (hostileSwarm); fr the safety net's fault classes
	// (faultSwarm), whose switches are fs.
	hr, fr, gr *rand.Rand
	sw         swarm
	fs         faultSwarm
	clock      *fakeClock
	sim        *simulator.Server
	h          http.Handler
	store      *logical.InmemStorage
	nodes      []*node
	nextID     int

	obID, bqUser string
	// learned are the Bloq client secrets that were ever in storage. (A key whose secret
	// only a crashed node's memory held is named by the rotation's create marker: no
	// protocol can keep it.)
	learned map[string]bool
	// givenUp are credentials (by secret) an operator explicitly gave up.
	givenUp map[string]bool
	// excusedAt is, per config, the event (seq) at which an operator's action that kills
	// tokens on purpose (rotate-root, a credential write, a delete) last ended.
	excusedAt map[string]int
	// orphanNamed are the identifiers a node named in an orphan warning; protected the keys an
	// operator wrote that Vault may not delete upstream (I8), current each config's stored
	// identifier at the last check, byOperator whether an operator's write stored it in the
	// current operation, deletedSeen how many Bloq deletes the last check saw.
	orphanNamed, protected map[string]bool
	current                map[string]string
	byOperator             map[string]bool
	deletedSeen            int
	// opStart is when the current operation began by the shared clock; timedOut are the
	// calls (by context) that a slow answer ran past their deadline.
	opStart  time.Time
	timedOut map[context.Context]bool
	issued   []issuedLease
	// lastExpiry is the expiry of the last token handed out.
	lastExpiry time.Time
	// opN numbers the operations, op names the one running; bad is the first violation found.
	opN int
	op  string
	bad *violation
	// faulted records that the current operation met a fault (provider, storage or crash).
	faulted bool
	trace   []string
	cover   map[string]int
	labels  map[string]string
	// conc runs rounds of concurrent operations (sim_round_test.go).
	conc *concurrency
}

// issuedLease is one token handed out by a creds read.
type issuedLease struct {
	config, token    string
	at, end, expires time.Time
	// step is the round; seq numbers the read's start among the world's events (excusedAt).
	step, seq int
}

func newWorld(seed int64, r *rand.Rand) *world {
	w := &world{seed: seed, r: r, hr: rand.New(rand.NewSource(seed ^ 0x5eed4057)), sw: newSwarm(r), store: &logical.InmemStorage{},
		clock: &fakeClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}, sim: simulator.New(),
		learned: map[string]bool{}, givenUp: map[string]bool{}, excusedAt: map[string]int{},
		cover: map[string]int{}, labels: map[string]string{}, fr: rand.New(rand.NewSource(seed ^ 0x5afe7e57)),
		orphanNamed: map[string]bool{}, protected: map[string]bool{}, current: map[string]string{}, byOperator: map[string]bool{},
		timedOut: map[context.Context]bool{}}
	w.sim.SetClock(w.clock.Now)
	w.sim.SetOffBlocksLagFunc(w.drawLag)
	w.sim.SetBloqKeyLagFunc(w.drawLag)
	w.sw.hostileSwarm(w.hr)
	w.conc = newConcurrency(w, seed)
	w.sim.SetHostileTokens(w.drawHostileToken)
	w.sim.SetClaimedExpiry(w.drawClaimedExpiry)
	w.fs = newFaultSwarm(w.fr)
	w.readFaults(seed)
	w.sim.SetNoExpiry(w.drawNoExpiry)
	w.h = w.sim.Handler()
	w.obID = w.sim.AddOffBlocks(obKey, obSecret)
	w.bqUser = w.sim.AddBloqUser(bqUser, bqPass)
	w.sim.AddBloqKey(w.bqUser, bqClient, bqSecret)
	w.learned[bqSecret] = true
	w.nodes = []*node{w.newNode(false)}
	if w.sw.multiNode {
		w.nodes = append(w.nodes, w.newNode(true))
	}
	return w
}

// drawLag is the simulator's lag for each accepted OffBlocks update and each created Bloq key.
func (w *world) drawLag() time.Duration {
	if w.r.Intn(100) >= w.sw.lagPct {
		return 0
	}
	w.faulted = true
	w.cover["fault.lag"]++
	lags := []time.Duration{time.Second, 5 * time.Second, 40 * time.Second, 3 * time.Minute, 2 * time.Hour}
	return lags[w.r.Intn(len(lags))]
}

// hostileTokens are values a provider (or whoever answers on its URL) may hand out as a
// token in a 200: none is a Bearer token (RFC 6750 §2.1), and each would write attacker-chosen
// text where a template renders it.
var hostileTokens = []string{"abc\nexport LD_PRELOAD=/tmp/x.so\r\n\x1b[2J", "two words", "tok\x00en", "\xff\xfe",
	"tok\"; rm -rf ~; \""}

// drawHostileToken is the simulator's choice, for each token it issues, of a hostile value in
// its place ("" for the real token): the credential was accepted, but the answer is unusable.
func (w *world) drawHostileToken(provider, kind string) string {
	if w.omitsToken(provider, kind) {
		return simulator.EmptyToken
	}
	if w.sw.hostile == 0 || w.hr.Intn(100) >= w.sw.hostile {
		return ""
	}
	w.faulted = true
	w.cover["fault.hostile-token."+provider+"."+kind]++
	w.cover["fault.hostile-token.during."+w.op]++ // a rotate's confirmation, a tick's settle, a read
	v := hostileTokens[w.hr.Intn(len(hostileTokens))]
	w.logf("  provider answers a %s %s token that is no Bearer token", provider, kind)
	return v
}

// drawClaimedExpiry is the simulator's choice, for each token it issues, of a later expiry
// than the real one for it to claim (its JWT exp and the answer's expiry field): a day and an
// hour, a year, or year 9999.
func (w *world) drawClaimedExpiry(provider, kind string, real time.Time) time.Time {
	if w.sw.farExpiry == 0 || w.hr.Intn(100) >= w.sw.farExpiry {
		return real
	}
	w.faulted = true
	w.cover["fault.claimed-expiry."+provider+"."+kind]++
	w.cover["fault.claimed-expiry.during."+w.op]++
	claims := []time.Time{real.Add(25 * time.Hour), real.AddDate(1, 0, 0), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)}
	c := claims[w.hr.Intn(len(claims))]
	w.logf("  provider's %s %s token claims to live until %s", provider, kind, c.Format(time.RFC3339))
	return c
}

// newNode starts a backend on the shared storage: the active node, or a performance standby
// (writes refused with logical.ErrReadOnly, and WriteSafeReplicationState false).
func (w *world) newNode(standby bool) *node {
	w.nextID++
	n := &node{w: w, id: w.nextID, standby: standby}
	conf := logical.TestBackendConfig()
	n.storage = &nodeStorage{n: n}
	conf.StorageView = n.storage
	sys := &logical.StaticSystemView{DefaultLeaseTTLVal: time.Hour, MaxLeaseTTLVal: 24 * time.Hour}
	if standby {
		sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	}
	// A world with a performance standby, which serves creds reads itself, is Vault
	// Enterprise: no node sees every lease (marksComplete), and plans wait one documented
	// lifetime. A single node is Community Edition: plans wait for its latest lease.
	sys.PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "1.19.5"}
	if w.sw.multiNode {
		sys.PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "1.19.5+ent", VaultVersionMetadata: "ent"}
	}
	conf.System = sys
	conf.Logger = w.simLogger()
	conf.EventsSender = simEvents{w}
	b := newBackend()
	b.now = w.clock.Now
	b.sleep = func(ctx context.Context, d time.Duration) error {
		w.clock.Advance(d)
		w.yield("a wait of", d.String())
		return ctx.Err()
	}
	w.cooperate(b)
	b.transport = &nodeTransport{n: n}
	b.backoff = func(time.Duration, time.Duration, int, *http.Response) time.Duration { return 0 }
	if err := b.Setup(context.Background(), conf); err != nil {
		panic(err)
	}
	n.b = b
	return n
}

// call counts one outside call of n and reports whether n is (now) dead: at its crashAt-th
// call it dies.
func (n *node) call() bool {
	if n.dead {
		return true
	}
	n.calls++
	if n.crashAt > 0 && n.calls == n.crashAt {
		n.dead = true
		n.w.faulted = true
		n.w.cover["fault.crash"]++
		n.w.logf("  node %d crashes at its call %d", n.id, n.calls)
	}
	return n.dead
}

var errSimDead = errors.New("simulated crash: this node is gone")

// simEvents counts the protocol's outcomes from the events the backend sends (rotations by
// trigger and outcome, settled recoveries among them): the simulation's branch coverage.
type simEvents struct{ w *world }

func (e simEvents) SendEvent(_ context.Context, t logical.EventType, ev *logical.EventData) error {
	f := ev.GetMetadata().GetFields()
	key := "event." + strings.TrimPrefix(string(t), "apitokens/")
	if tr := f["trigger"].GetStringValue(); tr != "" {
		key += "." + tr + "." + f["outcome"].GetStringValue()
		if f["outcome"].GetStringValue() == outcomeSuccess {
			e.w.rotated(f["name"].GetStringValue())
		}
	}
	e.w.cover[key]++
	return nil
}

// storageText is every value in storage, for the recoverability check (a credential is
// recoverable when its secret is stored anywhere: config, fallback or WAL).
func (w *world) storageText() string {
	ctx := context.Background()
	var keys []string
	var walk func(prefix string)
	walk = func(prefix string) {
		ks, _ := w.store.List(ctx, prefix)
		for _, k := range ks {
			if strings.HasSuffix(k, "/") {
				walk(prefix + k)
			} else {
				keys = append(keys, prefix+k)
			}
		}
	}
	walk("")
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		if e, _ := w.store.Get(ctx, k); e != nil {
			sb.Write(e.Value)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// label names a credential by the order the simulation first saw it (secrets are random,
// labels are not), so that traces replay bit for bit.
func (w *world) label(key string) string {
	if key == "" {
		return "-"
	}
	if l, ok := w.labels[key]; ok {
		return l
	}
	l := fmt.Sprintf("cred%d", len(w.labels))
	w.labels[key] = l
	return l
}

func (w *world) logf(format string, args ...any) {
	w.trace = append(w.trace, w.conc.tracePrefix()+fmt.Sprintf(format, args...))
}

// active is the node that can write.
func (w *world) active() *node { return w.nodes[0] }

// restart replaces dead nodes by fresh instances on the same storage (a restarted Vault, or
// a standby taking over), and clears every node's crash point.
func (w *world) restart() {
	for i, n := range w.nodes {
		if n.dead {
			w.logf("  node %d restarts as node %d", n.id, w.nextID+1)
			w.nodes[i] = w.newNode(n.standby)
		}
		w.nodes[i].crashAt, w.nodes[i].calls = 0, 0
	}
}
