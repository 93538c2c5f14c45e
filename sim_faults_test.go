package apitokens

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// The fault classes of the safety-net issue, each with its own swarm switch, drawn from the
// world's third generator (fr) so that every decision the first two take is as it was before
// these classes existed, and a seed kept in testdata replays its scenario until one of them
// comes:
//
//   - landErr: a storage write lands, then reports an error, and the node goes on (Raft
//     committed the entry and the request timed out; a Consul answer was lost);
//   - noExpiry, slow, retryAfter: provider answers with no expiry at all (an opaque token, no
//     expiry field: the documented lifetime of its kind applies), and a clock that moves
//     during a call (a slow request or answer, a 429's Retry-After wait);
//   - typo, partial, writeBack: operator writes the generator never made: a secret re-typed
//     with a trailing line break, only the secret half of a root credential, a Bloq key that
//     is being retired written back as the credential;
//   - crashAfterCreate: the node dies right after a Bloq key is created upstream, before its
//     fallback is stored.
type faultSwarm struct {
	landErr, readFail        int
	omitToken                int
	noExpiry, slow, retryAft int
	typo, partial, writeBack int
	crashAfterCreate         int
}

func newFaultSwarm(fr *rand.Rand) faultSwarm {
	pick := func(max int) int {
		if fr.Intn(3) == 0 {
			return 0
		}
		return 1 + fr.Intn(max)
	}
	return faultSwarm{landErr: pick(6), noExpiry: pick(60), slow: pick(15), retryAft: pick(60),
		typo: pick(40), partial: pick(50), writeBack: pick(70), crashAfterCreate: pick(20)}
}

// errCallTimeout is a call whose deadline passed while the request or its answer was on
// its way.
var errCallTimeout = errors.New("simulated: context deadline exceeded (Client.Timeout exceeded while awaiting headers)")

// errStorageLanded is a storage write's error after the write landed.
var errStorageLanded = errors.New("simulated storage: context deadline exceeded (the write was committed)")

// landsThenFails reports whether a storage write of key lands and then reports an error.
func (w *world) landsThenFails(key string) bool {
	if w.fs.landErr == 0 || w.fr.Intn(100) >= w.fs.landErr {
		return false
	}
	w.faulted = true
	w.cover["fault.storage-landed-error"]++
	w.logf("  storage write of %s lands, then reports an error", key)
	return true
}

// readFaults draws, from a generator of its own (so that no other decision of a seed moves),
// whether Bloq lists its keys as a paged object, and whether and how often config reads from
// storage fail: a Raft read or a Consul request
// that times out, with an error that wraps context.DeadlineExceeded while the reader's own
// context is live.
func (w *world) readFaults(seed int64) {
	w.gr = rand.New(rand.NewSource(seed ^ 0x9e7f411d))
	if w.gr.Intn(3) == 0 {
		w.fs.readFail = 1 + w.gr.Intn(8)
	}
	if w.gr.Intn(3) == 0 {
		w.fs.omitToken = 1 + w.gr.Intn(10)
	}
	// A provider answer shape, drawn here too: Bloq's key list as a paged object.
	if w.gr.Intn(3) == 0 {
		w.cover["provider.bloq-key-list-envelope"]++
		w.sim.SetBloqKeyListEnvelope(true)
	}
}

// omitsToken is the simulator's choice, per token, of an answer that accepts the credential
// (and rotates a Bloq refresh token, where that mode is on) but omits the token itself.
func (w *world) omitsToken(provider, kind string) bool {
	if w.fs.omitToken == 0 || w.gr.Intn(100) >= w.fs.omitToken {
		return false
	}
	w.faulted = true
	w.cover["fault.omitted-token."+provider+"."+kind]++
	w.logf("  provider answers without the %s %s token", provider, kind)
	return true
}

// cronInstead makes a schedule write, one time in three (from the seed's own fault generator),
// a cron rotation_schedule with a rotation_window instead of a rotation_period: a slot missed
// is still due until its window closes, and is skipped after.
func (w *world) cronInstead(data map[string]any) {
	if w.gr.Intn(3) != 0 {
		return
	}
	delete(data, "rotation_period")
	data["rotation_schedule"] = []string{"0 * * * *", "*/20 * * * *", "30 */2 * * *"}[w.gr.Intn(3)]
	data["rotation_window"] = []int{3600, 5400}[w.gr.Intn(2)]
	w.cover["schedule.cron-window"]++
}

// toWindowClose moves a clock step to a rotation, half the time, for a config with a cron
// rotation_window, to a few seconds before the next slot's window closes instead (a rotation
// that starts then may outlast it).
func (w *world) toWindowClose(cfg *accountConfig, next, to time.Time) time.Time {
	if cfg.Rotation.RotationWindow == 0 || w.gr.Intn(2) != 0 {
		return to
	}
	w.cover["clock-to-window-close"]++
	return next.Add(cfg.Rotation.RotationWindow - time.Duration(w.gr.Intn(30000))*time.Millisecond)
}

// wholeConfig is the operator's choice, one write in three (from the seed's own fault
// generator), to repeat the whole config, provider included, as Terraform does, when writing
// the credential of a config that exists.
func (w *world) wholeConfig() bool {
	if w.gr.Intn(3) != 0 {
		return false
	}
	w.cover["operator.whole-config"]++
	return true
}

// readFails is a storage read's error, when the swarm makes this read of key fail.
func (w *world) readFails(key string) error {
	if w.fs.readFail == 0 || w.gr.Intn(100) >= w.fs.readFail {
		return nil
	}
	w.faulted = true
	w.cover["fault.storage-read-error"]++
	w.logf("  storage read of %s times out", key)
	return fmt.Errorf("simulated storage read: %w", context.DeadlineExceeded)
}

// drawNoExpiry is the simulator's choice, per token, of an answer without any expiry.
func (w *world) drawNoExpiry(provider, kind string) bool {
	if w.fs.noExpiry == 0 || w.fr.Intn(100) >= w.fs.noExpiry {
		return false
	}
	w.cover["fault.no-expiry."+provider+"."+kind]++
	w.logf("  provider answers a %s %s token with no expiry", provider, kind)
	return true
}

// callBudget is how much the shared clock may still move during the call of req: what its
// deadline leaves (the real clock barely moves here) less what the operation has already
// spent by the shared clock, so that the simulation never takes longer than the code's own
// deadlines would let it.
func (w *world) callBudget(req *http.Request) time.Duration {
	dl, ok := req.Context().Deadline()
	if !ok {
		return 0
	}
	return time.Until(dl) - w.clock.Now().Sub(w.opStart)
}

// slowCall moves the clock during a call (before the provider serves it, or before its
// answer arrives): true when that passes the call's deadline, which then fails the call
// (before: nothing was sent; after: the answer is lost).
func (w *world) slowCall(req *http.Request, route, when string) (timedOut bool) {
	if w.fs.slow == 0 || w.fr.Intn(100) >= w.fs.slow {
		return false
	}
	d := []time.Duration{300 * time.Millisecond, 2 * time.Second, 8 * time.Second, 25 * time.Second, 55 * time.Second}[w.fr.Intn(5)]
	w.faulted = true
	if d >= w.callBudget(req) {
		w.cover["fault.slow-timeout."+when]++
		w.logf("  %s: %s %s outlasts the call's deadline", route, when, d)
		return true
	}
	w.clock.Advance(d)
	w.cover["fault.slow."+when]++
	w.logf("  %s: %s takes %s", route, when, d)
	return false
}

// throttle is a 429 with a Retry-After the client honours: with retryAfter on, the clock
// moves by the wait when the call's deadline leaves room for it (the client retries then).
func (w *world) throttle(req *http.Request, route string) (*http.Response, error) {
	after := 2
	if w.fs.retryAft > 0 && w.fr.Intn(100) < w.fs.retryAft {
		after = []int{1, 5, 20, 40}[w.fr.Intn(4)]
		if d := time.Duration(after) * time.Second; d < w.callBudget(req) {
			w.clock.Advance(d)
			w.cover["fault.retry-after-wait"]++
			w.logf("  %s: 429, the client waits %ds", route, after)
		}
	}
	return w.fault("429", route, answer(req, http.StatusTooManyRequests, http.Header{"Retry-After": {strconv.Itoa(after)}}), nil)
}

// crashesAfterCreate reports whether the node dies right after the provider created a key
// (route), before the answer reaches the code.
func (w *world) crashesAfterCreate(n *node, route string) bool {
	if !strings.HasSuffix(route, "/client-keys") || !strings.HasPrefix(route, http.MethodPost) ||
		w.fs.crashAfterCreate == 0 || w.fr.Intn(100) >= w.fs.crashAfterCreate {
		return false
	}
	n.dead = true
	w.faulted = true
	w.cover["fault.crash-after-create"]++
	w.logf("  node %d crashes right after the provider created a key", n.id)
	return true
}

// orphanSink records the identifiers the backend names in orphan warnings (its log's
// "orphan" field): I6 requires every key a rotation left upstream to be named.
type orphanSink struct{ w *world }

func (s orphanSink) Accept(_ string, _ hclog.Level, msg string, args ...any) {
	if strings.HasPrefix(msg, "delete: an interrupted rotation may have created a credential upstream") {
		// A delete gives up a create marker whose orphan could not be looked for, telling the
		// operator to find the key in the console: every key Vault does not hold is named.
		stored := s.w.storedID("bq")
		for _, id := range s.w.sim.BloqClientIDs(s.w.bqUser) {
			if id != stored {
				s.w.orphanNamed[id] = true
			}
		}
	}
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k == "orphan" {
			if id, ok := args[i+1].(string); ok {
				s.w.orphanNamed[id] = true
			}
		}
	}
}

// simLogger is a node's logger: nothing is written, orphan warnings are recorded.
func (w *world) simLogger() hclog.Logger {
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{Output: discard{}, Level: hclog.Off})
	l.RegisterSink(orphanSink{w})
	return l
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// storedID is the identifier of config name's stored credential ("" if none).
func (w *world) storedID(name string) string {
	cfg, _ := getConfig(context.Background(), w.store, name)
	if cfg == nil {
		return ""
	}
	_, a := simProviderOf(name)
	return a.id(cfg)
}

// preferRetiring is the key an operator copies from the console: with writeBack on, often
// one that config name still holds as retiring (it is listed until Vault deletes it),
// otherwise picked.
func (w *world) preferRetiring(name, picked string, listed []string) string {
	if w.fs.writeBack == 0 || w.fr.Intn(100) >= w.fs.writeBack {
		return picked
	}
	cfg, _ := getConfig(context.Background(), w.store, name)
	if cfg == nil {
		return picked
	}
	for _, r := range cfg.Retiring {
		if id := registry.Identifier(r); slices.Contains(listed, id) {
			w.cover["operator.writes-back-retiring"]++
			return id
		}
	}
	return picked
}

// operatorVariant changes the fields of a credential write as operators do: the secret half
// alone where the stored identifier is already the written one (partial), and a secret
// re-typed with a trailing line break (typo). It returns the written identifier.
func (w *world) operatorVariant(name, provider string, data map[string]any) string {
	d, _ := registry.Lookup(provider)
	var idField, secretField string
	for _, f := range d.Fields() {
		switch {
		case f.Root && f.Secret():
			secretField = f.Name
		case f.Root:
			idField = f.Name
		}
	}
	id, _ := data[idField].(string)
	if w.fs.partial > 0 && w.fr.Intn(100) < w.fs.partial && w.configExists(name) && w.storedID(name) == id {
		for _, f := range d.Fields() {
			if f.Name != secretField {
				delete(data, f.Name) // the account's login too: only the secret is written
			}
		}
		w.cover["operator.secret-alone."+provider]++
	}
	if s, ok := data[secretField].(string); ok && w.fs.typo > 0 && w.fr.Intn(100) < w.fs.typo {
		data[secretField] = s + "\n"
		w.cover["operator.trailing-line-break."+provider]++
	}
	return id
}
