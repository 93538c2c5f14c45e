package apitokens

import (
	"context"
	"maps"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// The simulation's operations: what operators, readers, Vault itself and the provider do.
// Each is chosen by weight from the seed; each records what the invariants need.

const simBaseURL = "http://127.0.0.1:1"

// simOp is one kind of operation and its weight.
type simOp struct {
	name   string
	weight int
	run    func(w *world, name string)
}

var simOps = []simOp{
	{"read", 30, (*world).opRead},
	{"rotate", 6, (*world).opRotate},
	{"write", 5, (*world).opWrite},
	{"credential-write", 1, (*world).opCredentialWrite},
	{"delete", 1, (*world).opDelete},
	{"tick", 8, (*world).opTick},
	{"invalidate", 2, (*world).opInvalidate},
	{"clock", 14, (*world).opClock},
	{"clock-to-rotation", 5, (*world).opClockToRotation},
	{"clock-to-expiry", 2, (*world).opClockToExpiry},
	{"provider-applies", 3, (*world).opProviderApplies},
	{"restart", 1, (*world).opRestart},
	{"plan", 2, (*world).opPlan},
	{"cancel-plan", 1, (*world).opCancelPlan},
}

func (w *world) pickOp() simOp {
	total := 0
	for _, o := range simOps {
		total += o.weight
	}
	n := w.r.Intn(total)
	for _, o := range simOps {
		if n < o.weight {
			return o
		}
		n -= o.weight
	}
	panic("unreachable")
}

// request runs one request on node n, as Vault would route it: a request a standby answers
// with logical.ErrReadOnly is forwarded to the active node.
func (w *world) request(n *node, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	if n.dead {
		return nil, errSimDead // a killed node answers nothing (another operation of its round killed it)
	}
	req := &logical.Request{Operation: op, Path: path, Data: data, Storage: n.storage, MountPoint: "apitokens/"}
	if op == logical.UpdateOperation {
		if found, exists, err := n.b.HandleExistenceCheck(context.Background(), req); err == nil && found && !exists {
			req.Operation = logical.CreateOperation
		}
	}
	resp, err := n.b.HandleRequest(context.Background(), req)
	if err == logical.ErrReadOnly && n.standby {
		w.cover["forwarded"]++
		return w.request(w.active(), op, path, data)
	}
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	return resp, err
}

// opRead reads creds/<name> on a random node and records the lease.
func (w *world) opRead(name string) {
	n := w.nodes[w.r.Intn(len(w.nodes))]
	seq, writes := w.conc.tick(), w.conc.configWrites[name]
	data := map[string]any{}
	if w.r.Intn(5) == 0 {
		data["min_ttl"] = []int{60, 1800, 3000}[w.r.Intn(3)]
	}
	exists := w.configExists(name)
	live := w.storedCredentialLive(name)
	pendingBefore, faultsBefore := len(w.sim.OffBlocksPendingPairs(w.obID)), w.rotationFaults()
	resp, err := w.request(n, logical.ReadOperation, "creds/"+name, data)
	if err != nil {
		w.logf("  read %s on node %d: error: %v", name, n.id, err)
		w.cover["read.error"]++
		w.checkNoRoomRefusal(name, err, faultsBefore)
		if exists && live && pendingBefore == 0 && !w.faulted && w.configExists(name) && w.alone() {
			w.violate("I5", "a fault-free read of %s, whose stored credential works and with no change pending, failed: %v", name, err)
		}
		return
	}
	if !exists && (w.alone() || w.conc.configWrites[name] == writes) { // or a write created it meanwhile
		w.violate("I5", "creds/%s answered a token though no config %s was stored", name, name)
	}
	tok, _ := resp.Data["token"].(string)
	exp, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
	lease := issuedLease{config: name, token: tok, at: w.clock.Now(), end: w.clock.Now().Add(resp.Secret.TTL), step: w.opN,
		seq: seq, expires: exp}
	w.lastExpiry = exp
	w.issued = append(w.issued, lease)
	w.cover["read.ok"]++
	w.logf("  read %s on node %d: token %s, lease %s", name, n.id, w.label(tok), resp.Secret.TTL)
	w.checkHandedOut(lease)
}

// opRotate is an operator's rotate-root: it kills earlier tokens on purpose.
func (w *world) opRotate(name string) {
	sp := w.beginExcuse(name)
	resp, err := w.request(w.active(), logical.UpdateOperation, "rotate-root/"+name, nil)
	w.endExcuse(sp, true)
	w.cover[outcomeLabel("rotate", err)]++
	if err != nil {
		w.logf("  rotate %s: %v", name, err)
		return
	}
	w.logf("  rotate %s: ok (%v)", name, resp.Data["last_rotated"])
}

// opWrite changes a config's settings but not its credential.
func (w *world) opWrite(name string) {
	if !w.configExists(name) {
		w.opCredentialWrite(name)
		return
	}
	data := map[string]any{}
	switch w.r.Intn(5) {
	case 0:
		data["token_reuse"] = w.r.Intn(2) == 0
	case 1:
		data["min_token_ttl"] = []int{0, 1, 60, 1800}[w.r.Intn(4)]
	case 2:
		data["rotation_period"] = []int{60, 120, 600, 3600}[w.r.Intn(4)]
		w.cronInstead(data)
	case 3:
		data["disable_automated_rotation"] = w.r.Intn(3) == 0
	case 4:
		data["max_ttl"] = []int{0, 30, 600}[w.r.Intn(3)]
		if w.fr.Intn(3) == 0 { // between a fresh 1 h token's life less its margin, and its life
			data["max_ttl"] = []int{3545, 3570, 3599}[w.fr.Intn(3)]
		}
	}
	_, err := w.request(w.active(), logical.UpdateOperation, "config/"+name, data)
	w.cover[outcomeLabel("write", err)]++
	w.logf("  write %s %v: %v", name, data, err)
}

// opCredentialWrite is an operator writing the account's live credential, as read from the
// provider's console (creating the config if it is gone), with force=true or not. A write
// that succeeds gives up every other credential the provider may still adopt, and kills no
// token itself but excuses them. One without force while a rotation is unsettled must be
// refused, changing nothing: a write that merely repeats the config gives nothing up.
func (w *world) opCredentialWrite(name string) {
	w.credentialWrite(name, w.r.Intn(2) == 0)
}

// credentialWrite is opCredentialWrite with force given.
func (w *world) credentialWrite(name string, force bool) {
	provider, a := simProviderOf(name)
	data := map[string]any{"base_url": simBaseURL + a.prefix, "provider": provider,
		"request_timeout": []int{1, 5, 30}[w.r.Intn(3)], "token_reuse": w.r.Intn(2) == 0, "force": force}
	if w.r.Intn(2) == 0 {
		data["rotation_period"] = []int{60, 300}[w.r.Intn(2)]
	}
	fields, gaveUp, ok := a.console(w)
	if !ok {
		return
	}
	written := w.operatorVariant(name, provider, fields)
	maps.Copy(data, fields)
	givenUp := map[string]bool{}
	for _, s := range gaveUp {
		givenUp[s] = true
	}
	if w.configExists(name) && !w.wholeConfig() {
		delete(data, "provider")
	}
	unsettled := w.configExists(name) && w.storedUnsettled(name)
	before := w.storageText()
	sp := w.beginExcuse(name)
	_, err := w.request(w.active(), logical.UpdateOperation, "config/"+name, data)
	label := map[bool]string{true: "credential-write-forced", false: "credential-write"}[force]
	if unsettled {
		label += "-unsettled"
	}
	w.cover[outcomeLabel(label, err)]++
	var secret string // the written credential's rotatable secret, for the trace
	d, _ := registry.Lookup(provider)
	for _, f := range d.Fields() {
		if f.Root && f.Secret() {
			secret, _ = data[f.Name].(string)
		}
	}
	w.logf("  credential write %s (%s %s) force=%v: %v", name, w.label(written), w.label(secret), force, err)
	// A write whose config/<name> write landed (whatever failed after it) while a concurrent
	// operation settled the config was not refused: it counts as made (below). Alone, it must
	// have been refused (I7 below: its landing is a violation).
	landed := err != nil && !w.alone() && w.conc.s.cur.storedConfig
	if unsettled && !force && !landed && (w.alone() || err != nil) {
		w.endExcuse(sp, false)
		if !w.alone() {
			return // a concurrent operation may have settled the config, or changed storage, meanwhile
		}
		if err == nil {
			w.violate("I7", "a credential write without force=true was accepted while a rotation of %s was unsettled", name)
		} else if after := w.storageText(); after != before {
			w.violate("I7", "a refused credential write to %s changed storage", name)
		}
		return
	}
	// A write that failed may still have been stored (a lost answer): it counts as made.
	w.endExcuse(sp, true)
	maps.Copy(w.givenUp, givenUp)
	w.operatorStored(name, written)
	if !w.alone() {
		w.giveUpOthers(name, strings.TrimSuffix(secret, "\n")) // what a rotation made meanwhile, the write overwrote
		w.wroteStale(name, written, secret)
	}
}

// storedUnsettled reports whether config name, as stored, holds a fallback.
func (w *world) storedUnsettled(name string) bool {
	cfg, _ := getConfig(context.Background(), w.store, name)
	return cfg != nil && cfg.unsettled()
}

// opDelete deletes a config, forced or not. A forced delete gives up every credential of
// the account; a delete that succeeds unforced gives up what the config's records (config,
// fallbacks, WAL) held, which its own settling may have changed.
func (w *world) opDelete(name string) {
	force := w.r.Intn(3) == 0
	before := w.storageText()
	sp := w.beginExcuse(name)
	_, err := w.request(w.active(), logical.DeleteOperation, "config/"+name, map[string]any{"force": force})
	w.cover[outcomeLabel(map[bool]string{true: "delete-forced", false: "delete"}[force], err)]++
	w.logf("  delete %s force=%v: %v", name, force, err)
	if !w.alone() {
		before += w.conc.deleteSaw // what a concurrent operation stored meanwhile, the delete dropped
	}
	w.endExcuse(sp, !w.configExists(name))
	if w.configExists(name) {
		return // refused, or it failed before the config was deleted
	}
	for _, s := range w.accountSecrets(name) {
		if force || strings.Contains(before, s) {
			w.givenUp[s] = true
		}
	}
}

// opTick is Vault's once-a-minute rollback on the active node: the periodic function
// (scheduled rotations) and every WAL entry's rollback, whatever its age.
func (w *world) opTick(string) {
	_, err := w.request(w.active(), logical.RollbackOperation, "", map[string]any{"immediate": true})
	w.cover[outcomeLabel("tick", err)]++
	w.logf("  tick: %v", err)
}

func (w *world) opInvalidate(name string) {
	n := w.nodes[w.r.Intn(len(w.nodes))]
	n.b.invalidate(context.Background(), configPrefix+name)
	w.logf("  invalidate %s on node %d", name, n.id)
}

func (w *world) opClock(string) {
	steps := []time.Duration{100 * time.Millisecond, 700 * time.Millisecond, 2 * time.Second, 15 * time.Second,
		90 * time.Second, 10 * time.Minute, 50 * time.Minute}
	d := steps[w.r.Intn(len(steps))]
	w.clock.Advance(d)
	w.logf("  clock +%s", d)
}

// opClockToRotation moves the clock to just before a config's next scheduled rotation,
// where a lease and the rotation that kills its token meet.
func (w *world) opClockToRotation(name string) {
	cfg, _ := getConfig(context.Background(), w.store, name)
	if cfg == nil {
		return
	}
	next := cfg.nextRotation(w.clock.Now())
	if next.IsZero() {
		return
	}
	to := next.Add(-time.Duration(w.r.Intn(5000)) * time.Millisecond)
	to = w.toWindowClose(cfg, next, to)
	if to.After(w.clock.Now()) {
		w.clock.Advance(to.Sub(w.clock.Now()))
		w.cover["clock-to-rotation"]++
		w.logf("  clock to %s before %s's rotation", next.Sub(to), name)
	}
}

// opClockToExpiry moves the clock to just before the last token handed out expires, where a
// shared token has too little life left to be handed out again.
func (w *world) opClockToExpiry(string) {
	to := w.lastExpiry.Add(-time.Duration(w.r.Intn(3000)) * time.Millisecond)
	if to.After(w.clock.Now()) {
		w.clock.Advance(to.Sub(w.clock.Now()))
		w.cover["clock-to-expiry"]++
		w.logf("  clock to %s before the last token's expiry", w.lastExpiry.Sub(to))
	}
}

func (w *world) opProviderApplies(string) {
	if pairs := w.sim.OffBlocksPendingPairs(w.obID); len(pairs) > 0 {
		i := w.r.Intn(len(pairs))
		w.sim.ApplyOffBlocksPending(w.obID, i)
		w.logf("  provider applies pending update %s", w.label(pairs[i][1]))
	}
}

// opRestart kills a node between operations (SIGKILL) and starts it again. One time in
// three, when no other operation runs, it is instead a rollback to v0.1.0 and an upgrade
// back (the safety net's fifth generator draws it): every node restarts, and in between
// v0.1.0 rewrites the config, dropping every member it does not know (v010Rewrite), as its
// config writes, scheduled rotations and Bloq refresh-token stores do.
func (w *world) opRestart(name string) {
	if w.alone() && w.gr.Intn(3) == 0 {
		w.olderVersionRewrites(name)
		return
	}
	n := w.nodes[w.r.Intn(len(w.nodes))]
	n.dead = true
	w.logf("  node %d killed", n.id)
}

// olderVersionRewrites is a rollback to v0.1.0, its rewrite of config name, and an upgrade
// back to this version: every node restarts on the storage v0.1.0 left.
func (w *world) olderVersionRewrites(name string) {
	for _, n := range w.nodes {
		n.dead = true
	}
	unsettled := w.storedUnsettled(name)
	ok, err := v010Rewrite(context.Background(), w.store, name)
	if ok {
		w.cover[map[bool]string{true: "older-version-rewrite-unsettled", false: "older-version-rewrite"}[unsettled]]++
	}
	w.logf("  rollback to v0.1.0, which rewrites config %s (%v, %v), and upgrade: every node restarts", name, ok, err)
	if provider, _ := simProviderOf(name); provider == "offblocks" && w.gr.Intn(2) == 0 {
		w.v010RotationDies(name)
	}
}

// v010RotationDies is v0.1.0, before the upgrade, beginning a rotation of OffBlocks config
// name and dying once its PUT is sent: its WAL entry holds the stored pair and the new one,
// and the provider has the change when the stored pair is its live one, applied at once or
// late. Tokens of the old pair handed out before die when it applies: v0.1.0 ignores this
// version's lease bounds, so they are excused (the issue counts them apart); this version's
// tokens handed out after the upgrade must not die.
func (w *world) v010RotationDies(name string) {
	ctx := context.Background()
	cfg, err := getConfig(ctx, w.store, name)
	if err != nil || cfg == nil {
		return
	}
	cur := cfg.cred.(offblocks.Credentials)
	next, _ := offblocks.GenerateCredentials()
	if _, err := framework.PutWAL(ctx, w.store, walKindRotation, newRotationWAL(name, "offblocks", cur, next, w.clock.Now())); err != nil {
		return
	}
	sent := false
	if key, secret := w.sim.OffBlocksPair(w.obID); key == cur.APIKey && secret == cur.APISecret {
		lag := []time.Duration{0, 30 * time.Second, 10 * time.Minute}[w.gr.Intn(3)]
		sent = w.sim.QueueOffBlocksUpdate(w.obID, next.APIKey, next.APISecret, lag)
		w.excusedAt[name] = w.conc.tick()
	}
	w.cover["older-version-rotation-dies"]++
	w.logf("  v0.1.0 began a rotation of %s to %s and died (sent: %v)", name, w.label(next.APISecret), sent)
}

func outcomeLabel(op string, err error) string {
	if err != nil {
		return op + ".error"
	}
	return op + ".ok"
}

// configExists reads storage directly (the ground truth, not a node's view).
func (w *world) configExists(name string) bool {
	e, _ := w.store.Get(context.Background(), configKey(name))
	return e != nil
}
