package apitokens

import (
	"context"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The invariants, checked after every step against the provider simulator's ground truth
// and the history of what was handed out, never against the backend's view of itself:
//
//	I1  every credential the provider accepts now, or may accept later (an update it has
//	    accepted and can still apply), is recoverable from Vault's storage (its secret is
//	    stored: config, fallback or WAL), unless an operator explicitly gave it up (a
//	    credential write, a forced delete, or a delete of the config that held it).
//	    Bloq: every live key whose secret Vault ever received.
//	I2  every token handed out is valid at the provider until its lease ends, unless a
//	    manual rotate-root, a credential write or a forced delete of its config came after
//	    it was issued (scheduled rotations are not excused).
//	I3  no token is handed out that is dead, that is no Bearer token (RFC 6750 §2.1's
//	    b64token), whose lease ends later than a margin (a tenth of its life left, at most a
//	    minute) before the token really dies (whatever expiry it claims, or none),
//	    or whose credential an update the provider has accepted may replace at any moment
//	    (OffBlocks).
//	I4  every operation ends within its deadline (by the shared clock); no goroutine
//	    outlives the seed.
//	I5  creds reads agree with storage: no token for a config that is not stored, and a
//	    read with no fault, of a config whose stored credential works and with no update
//	    pending at the provider, succeeds. No read, faults or not, is refused because its
//	    token came too late for a lease before a scheduled rotation (the read waits for the
//	    rotation and mints again: checkNoRoomRefusal).
//	I6  at the end, with faults off and the provider caught up, Vault's rollback and one
//	    read settle everything: each stored credential is the provider's live one, reads
//	    succeed, no fallback or rotation WAL entry is left, and no Bloq key that Vault
//	    replaced still lives upstream; no key is left retiring, and every key the provider
//	    lists is stored, given up, or named in an orphan warning (sim_keys_test.go).
//	I7  an operator's credential write without force=true while a rotation is unsettled is
//	    refused and changes nothing in storage (it gives nothing up).
//	I8  a credential an operator wrote is never deleted upstream by Vault unless a confirmed
//	    rotation replaced it and no operator write stored it again (sim_keys_test.go).

// opDeadline bounds one operation by the shared clock: a scheduled rotation's budget (4 ×
// the largest request_timeout the simulation sets, 30 s) and a read's own calls after it.
const opDeadline = 8 * 30 * time.Second

type violation struct{ inv, msg string }

func (w *world) violate(inv, format string, args ...any) {
	if w.bad == nil {
		w.bad = &violation{inv: inv, msg: fmt.Sprintf(format, args...)}
		w.logf("  VIOLATION %s: %s", inv, w.bad.msg)
	}
}

// checkDeadline is I4's deadline, for an operation that took took by the shared clock (the
// invariants after each round are in runRound).
func (w *world) checkDeadline(op string, took time.Duration) {
	if took > opDeadline {
		w.violate("I4", "%s took %s by the shared clock (deadline %s)", op, took, opDeadline)
	}
}

// checkRecoverable is I1.
func (w *world) checkRecoverable() {
	stored := w.storageText()
	need := w.accountSecrets("ob")
	if w.sw.bloq {
		for _, s := range w.accountSecrets("bq") {
			if strings.Contains(stored, s) {
				w.learned[s] = true // once stored, a key must stay recoverable
			}
			if w.learned[s] {
				need = append(need, s)
			}
		}
	}
	for _, s := range need {
		if !w.givenUp[s] && !strings.Contains(stored, s) {
			w.violate("I1", "the provider accepts (or may adopt) credential %s, which Vault's storage no longer holds", w.label(s))
		}
	}
}

// excusedOB reports whether an update an operator gave up may still kill OffBlocks tokens,
// or has: the live pair is one an operator gave up.
func (w *world) excusedOB() bool {
	if _, live := w.sim.OffBlocksPair(w.obID); w.givenUp[live] {
		return true
	}
	for _, p := range w.sim.OffBlocksPendingPairs(w.obID) {
		if w.givenUp[p[1]] {
			return true
		}
	}
	return false
}

// checkLeases is I2, over the leases that have not ended.
func (w *world) checkLeases() {
	now := w.clock.Now()
	running := w.issued[:0]
	for _, l := range w.issued {
		if !now.Before(l.end) {
			continue
		}
		running = append(running, l)
		if w.excusedAt[l.config] > l.seq || (l.config == "ob" && w.excusedOB()) {
			continue
		}
		if _, err := w.sim.Validate(l.token); err != nil {
			w.violate("I2", "token %s of %s, issued at step %d, died (%v) %s before its lease ends",
				w.label(l.token), l.config, l.step, err, l.end.Sub(now))
		}
	}
	w.issued = running
}

// leaseMargin is how long before a token really dies its lease must end, for a token with
// left to live when handed out: a tenth of that, at most a minute (the README's rule, written
// out here rather than taken from the code under test).
func leaseMargin(left time.Duration) time.Duration { return min(left/10, time.Minute) }

// b64token is RFC 6750 §2.1's Bearer token, written out here rather than taken from the
// code under test.
var b64token = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// checkHandedOut is I3, at the moment a read hands a token out.
func (w *world) checkHandedOut(l issuedLease) {
	if !b64token.MatchString(l.token) {
		w.violate("I3", "read of %s handed out a value that is no Bearer token (%d bytes)", l.config, len(l.token))
		return
	}
	if real, ok := w.sim.RealExpiry(l.token); ok && l.end.After(real.Add(-leaseMargin(real.Sub(l.at)))) {
		w.violate("I3", "read of %s handed out a token with a lease ending %s after a margin before the token really dies "+
			"(%s before it)", l.config, l.end.Sub(real.Add(-leaseMargin(real.Sub(l.at)))), real.Sub(l.end))
		return
	}
	if _, err := w.sim.Validate(l.token); err != nil && !(l.config == "ob" && w.excusedOB()) {
		w.violateUnlessExcused(l, "read of %s handed out a dead token (%v)", l.config, err)
		return
	}
	if l.config == "ob" && !w.excusedOB() {
		if pairs := w.sim.OffBlocksPendingPairs(w.obID); len(pairs) > 0 {
			w.violateUnlessExcused(l, "read of ob handed out a token with a %s lease while the provider may apply %s at any moment",
				l.end.Sub(l.at), w.label(pairs[0][1]))
		}
	}
}

// noRoomRefusal is the text of the 503 a creds read answers when, round after round, its
// token came too late for a lease before the config's scheduled rotation (pathCredsRead).
const noRoomRefusal = "too soon for a lease of this token: read again"

// rotationFaults counts the faults so far that can stop a read from performing a due
// scheduled rotation: storage that fails (the rotation cannot read or record the config),
// and crashes and kills (the node's answer reaches no one), counting the nodes dead now.
func (w *world) rotationFaults() int {
	n := 0
	for _, k := range []string{"fault.storage", "fault.storage-landed-error", "fault.storage-read-error",
		"fault.crash", "fault.crash-after-create"} {
		n += w.cover[k]
	}
	for _, node := range w.nodes {
		if node.dead {
			n++
		}
	}
	return n
}

// checkNoRoomRefusal is I5's last part: a read whose mint outlasted the room before a
// scheduled rotation waits for the rotation and mints again, so its refusal for want of room
// is a violation whatever other faults it met (slow calls are what make a mint outlast the
// room), unless storage failed or a node crashed during it (rotationFaults went up from
// before): then the rotation itself may not run.
func (w *world) checkNoRoomRefusal(name string, err error, faultsBefore int) {
	if err == nil || !strings.Contains(err.Error(), noRoomRefusal) {
		return
	}
	if w.rotationFaults() > faultsBefore {
		w.cover["read.no-room.excused"]++
		return
	}
	w.violate("I5", "creds/%s was refused for want of room before a scheduled rotation: %v", name, err)
}

// converge is I6: faults stop, the provider catches up, Vault's rollback runs, and every
// config must settle on the provider's live credential.
func (w *world) converge() {
	w.sw = swarm{multiNode: w.sw.multiNode, bloq: w.sw.bloq}
	w.fs = faultSwarm{}
	w.restart()
	w.logf("converge: faults off, clock +3h, rollback, reads")
	for _, name := range w.configNames() {
		w.fixTypo(name)
	}
	w.checkOperatorKeys()
	w.clock.Advance(3 * time.Hour)
	for i := 0; i < 2; i++ {
		w.opTick("")
	}
	for _, name := range w.configNames() {
		if !w.configExists(name) {
			continue
		}
		if w.operatorMustWrite(name) {
			continue // an operator gave up the live credential, or wrote a dead one: theirs to write
		}
		if _, err := w.request(w.active(), logical.ReadOperation, "creds/"+name, nil); err != nil {
			w.violate("I6", "after faults stopped, creds/%s still fails: %v", name, err)
		}
		if !w.storedCredentialLive(name) {
			w.violate("I6", "after faults stopped, %s's stored credential is not the provider's live one", name)
		}
		if name == "bq" {
			stored := w.storedSecret(name)
			for _, s := range w.sim.BloqLiveSecrets(w.bqUser) {
				if s != stored && w.learned[s] && !w.givenUp[s] {
					w.violate("I6", "after faults stopped, bloq key %s that a rotation replaced still lives upstream", w.label(s))
				}
			}
		}
		w.checkLeftUpstream(name)
		resp, err := w.request(w.active(), logical.ReadOperation, "config/"+name, nil)
		if err == nil && resp != nil {
			if n, _ := resp.Data["fallback_credentials"].(int); n > 0 {
				w.violate("I6", "after faults stopped, %s still holds %d fallback credentials", name, n)
			}
		}
	}
	ids, _ := framework.ListWAL(context.Background(), w.store)
	for _, id := range ids {
		if e, _ := framework.GetWAL(context.Background(), w.store, id); e != nil && e.Kind == walKindRotation {
			w.violate("I6", "after faults stopped, a rotation WAL entry is left: %v", e.Data)
		}
	}
	w.checkRecoverable()
	w.checkOperatorKeys()
}

// goroutinesSettle waits briefly for the goroutine count to return to base (I4's leak half).
func goroutinesSettle(base int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 200 && n > base; i++ {
		time.Sleep(5 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}
