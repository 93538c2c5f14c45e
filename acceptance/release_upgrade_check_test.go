//go:build acceptance

package acceptance

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// handedAfter says which of names (any config, if none) has no token handed out by version
// from a read that began after since.
func (k *tracker) handedAfter(since time.Time, version string, names ...string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	got := map[string]bool{}
	for _, h := range k.all {
		if h.by == version && h.read.After(since) {
			got[h.config], got[""] = true, true
		}
	}
	if len(names) == 0 {
		names = []string{""}
	}
	var missing []string
	for _, n := range names {
		if !got[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no token from %s yet of %q", version, missing)
	}
	return nil
}

// held says why config name is not yet as the lifecycle must leave it, or nil: settled (no
// fallback, nothing unsettled), holding what the provider accepts, and serving tokens that
// work. The provider accepts, for OffBlocks, one pair and nothing else once no change lags
// (wantKey, when set, must be it): the config's api_key must be that pair's. For Bloq, every
// key not deleted upstream can mint: there must be exactly one, the config's client_id where
// it has one (none left retiring, no orphan). In every case a creds read, which mints with
// the stored credential alone once nothing is unsettled, must give a token the provider
// accepts: the stored secret is the live one.
func held(v *vaultServer, sim *simulator.Server, k *tracker, accts lifecycleAccounts, name, wantKey string) error {
	cfg, err := v.client.Logical().Read("apitokens/config/" + name)
	if err != nil || cfg == nil {
		return fmt.Errorf("config read: %v", err)
	}
	if n := fmt.Sprint(cfg.Data["fallback_credentials"]); (n != "0" && n != "<nil>") || cfg.Data["unsettled_since"] != nil {
		return fmt.Errorf("unsettled: fallback_credentials %s, unsettled_credential %v", n, cfg.Data["unsettled_credential"])
	}
	id := accts.ids[name]
	switch cfg.Data["provider"] {
	case "offblocks":
		key, _ := sim.OffBlocksPair(id)
		switch lagging := sim.OffBlocksPendingPairs(id); {
		case len(lagging) > 0:
			return fmt.Errorf("the provider has %d changes still to apply", len(lagging))
		case wantKey != "" && key != wantKey:
			return fmt.Errorf("the provider accepts api_key %s, not %s", key, wantKey)
		case cfg.Data["api_key"] != key:
			return fmt.Errorf("the provider accepts api_key %s only; Vault's config holds %v", key, cfg.Data["api_key"])
		}
	case "bloq":
		live := sim.BloqClientIDs(id)
		if cid, has := cfg.Data["client_id"]; len(live) != 1 || (has && cid != live[0]) {
			return fmt.Errorf("the provider's live keys are %v; Vault's config holds client_id %v", live, cid)
		}
	}
	before, start := runningVersion(v.client), time.Now()
	s, err := v.client.Logical().Read("apitokens/creds/" + name)
	k.record(name, before, runningVersion(v.client), start, s, err)
	if err != nil || s == nil {
		return fmt.Errorf("creds read: %v", err)
	}
	if tok, _ := s.Data["token"].(string); !works(sim, tok) {
		return fmt.Errorf("creds read: the provider refuses its token")
	}
	return nil
}

// settleAll waits, up to settleLimit, until every config is held (held), fails the test for
// each that is not, and says how many are.
func settleAll(t *testing.T, v *vaultServer, sim *simulator.Server, k *tracker, accts lifecycleAccounts, want map[string]string) string {
	t.Helper()
	deadline := time.Now().Add(settleLimit)
	why := map[string]error{}
	for _, n := range accts.names() {
		why[n] = fmt.Errorf("not checked")
	}
	for len(why) > 0 && time.Now().Before(deadline) {
		for n := range why {
			if why[n] = held(v, sim, k, accts, n, want[n]); why[n] == nil {
				delete(why, n)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	for n, err := range why {
		t.Errorf("g. config %s is not settled on what the provider accepts within %s of the upgrade: %v", n, settleLimit, err)
	}
	return fmt.Sprintf("%d of %d configs", len(accts.list)-len(why), len(accts.list))
}

// rawKeys lists every key of the apitokens/ mount's storage, read through sys/raw, with its
// value: what the plugin stored, whatever its layout.
func rawKeys(t *testing.T, v *vaultServer) map[string]string {
	t.Helper()
	m, err := v.client.Sys().GetMount("apitokens")
	if err != nil {
		t.Fatal(err)
	}
	base := "sys/raw/logical/" + m.UUID + "/"
	out := map[string]string{}
	var walk func(prefix string)
	walk = func(prefix string) {
		s, err := v.client.Logical().List(base + prefix)
		if err != nil {
			t.Fatalf("list %s: %v", base+prefix, err)
		}
		if s == nil {
			return
		}
		keys, _ := s.Data["keys"].([]any)
		for _, key := range keys {
			k := prefix + fmt.Sprint(key)
			if strings.HasSuffix(k, "/") {
				walk(k)
				continue
			}
			e, err := v.client.Logical().Read(base + k)
			if err != nil || e == nil {
				t.Fatalf("read %s: %v", base+k, err)
			}
			out[k] = fmt.Sprint(e.Data["value"])
		}
	}
	walk("")
	return out
}

// rawHolds says whether any entry of the mount's storage holds s.
func rawHolds(t *testing.T, v *vaultServer, s string) bool {
	t.Helper()
	for _, value := range rawKeys(t, v) {
		if strings.Contains(value, s) {
			return true
		}
	}
	return false
}

// walEntry is a rotation WAL entry as 0.1.0 writes it (the sdk's framework.WALEntry).
type walEntry struct {
	Kind string `json:"type"`
	Data struct {
		Name     string `json:"name"`
		Creating bool   `json:"creating"`
		New      struct {
			APIKey string `json:"api_key"`
		} `json:"new"`
	} `json:"data"`
}

// walEntries lists the mount's WAL entries.
func walEntries(t *testing.T, v *vaultServer) []walEntry {
	t.Helper()
	var out []walEntry
	for k, value := range rawKeys(t, v) {
		var e walEntry
		if strings.HasPrefix(k, "wal/") && json.Unmarshal([]byte(value), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// walHolds says whether a rotation WAL entry of config name holds the new api_key key.
func walHolds(t *testing.T, v *vaultServer, name, key string) bool {
	t.Helper()
	for _, e := range walEntries(t, v) {
		if e.Kind == "rotate-root" && e.Data.Name == name && !e.Data.Creating && e.Data.New.APIKey == key {
			return true
		}
	}
	return false
}
