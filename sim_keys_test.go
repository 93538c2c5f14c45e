package apitokens

import (
	"context"
	"strings"
)

// Invariants on what Vault leaves, and deletes, at the provider:
//
//	I6 (in converge, with faults off) also requires that no key is left retiring for ever,
//	   and that every key the provider lists is the stored one, one an operator gave up, or
//	   one named in an orphan warning (a key an interrupted rotation created, whose secret
//	   nobody holds): a create marker dropped before its key was named leaves one nobody
//	   will ever name.
//	I8 a credential an operator wrote is never deleted upstream by Vault, unless a rotation
//	   that Vault confirmed replaced it (storage then holds another current credential, not
//	   written by an operator) and no operator write stored it again after that.

// operatorStored records that an operator's write stored credential id of config name: it
// is protected (I8) until a rotation replaces it.
func (w *world) operatorStored(name, id string) {
	if id == "" || w.storedID(name) != id {
		return // the write did not land
	}
	w.protected[id] = true
	w.byOperator[name] = true
	w.current[name] = id
}

// rotated is a rotation of config name that Vault confirmed and stored (its success event):
// the credential it replaced is no longer protected, from this moment on.
func (w *world) rotated(name string) {
	if prev := w.current[name]; prev != "" {
		delete(w.protected, prev)
	}
	w.current[name] = "" // the next check reads the new one from storage
}

// checkOperatorKeys is I8, after each operation: a change of a config's stored credential
// that no operator write made (a confirmed rotation, or a settle adopting a fallback) lifts
// the protection of the one it replaced; then every key deleted upstream since the last
// check must not be protected.
func (w *world) checkOperatorKeys() {
	for _, name := range w.configNames() {
		cur := w.storedID(name)
		if cur == "" {
			continue // deleted: whatever it held stays as it was
		}
		if prev := w.current[name]; prev != "" && prev != cur && !w.byOperator[name] {
			delete(w.protected, prev)
		}
		w.current[name] = cur
		w.byOperator[name] = false
	}
	deleted := w.sim.BloqDeletedClientIDs()
	for _, id := range deleted[w.deletedSeen:] {
		if w.protected[id] {
			w.violate("I8", "Vault deleted upstream the key %s that an operator wrote as the credential, "+
				"and no confirmed rotation replaced it since", w.label(id))
		}
	}
	w.deletedSeen = len(deleted)
}

// checkLeftUpstream is I6's part on what is left at the provider, at the end.
func (w *world) checkLeftUpstream(name string) {
	if name != "bq" {
		return
	}
	cfg, _ := getConfig(context.Background(), w.store, name)
	if cfg == nil {
		return
	}
	if n := len(cfg.Retiring); n > 0 {
		w.violate("I6", "after faults stopped, %s still holds %d keys as retiring", name, n)
	}
	stored := w.storedID(name)
	for _, id := range w.sim.BloqClientIDs(w.bqUser) {
		secret := w.sim.BloqKeySecret(id)
		if id == stored || w.givenUp[secret] || w.learned[secret] || w.orphanNamed[id] {
			continue // a learned one that lives is I6's other check
		}
		w.violate("I6", "after faults stopped, key %s lives upstream, and Vault neither stores it nor named it in an "+
			"orphan warning", w.label(id))
	}
}

// fixTypo is the operator, at the end, writing the provider's credential again where the
// stored secret has a trailing line break (a typo no provider accepts): with force, so that
// it is taken even while a rotation is unsettled.
func (w *world) fixTypo(name string) {
	if !strings.HasSuffix(w.storedSecret(name), "\n") {
		return
	}
	w.logf("  operator fixes the typo in %s's secret", name)
	w.credentialWrite(name, true)
}
