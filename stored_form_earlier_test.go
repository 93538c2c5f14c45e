package apitokens

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Development builds between v0.1.0 and state/<name> (state.go) kept fallbacks, retiring
// credentials and the schedule's lease bound inside config/<name>; testdata/stored/earlier
// holds what they wrote. This version decodes them (decode-only: it writes fallbacks and
// retiring credentials to state/<name> instead), and its first write moves them there.
func TestStoredFormEarlierDecodes(t *testing.T) {
	want := map[string]struct {
		fallbacks, retiring int
		bound               bool
	}{
		"bloq": {}, "bloq-login": {}, "bloq-refresh": {}, "offblocks": {}, "opsnow": {},
		"bloq-retiring":       {retiring: 1},
		"bloq-unsettled":      {fallbacks: 1},
		"offblocks-unsettled": {fallbacks: 1},
		"offblocks-failing":   {bound: true},
	}
	files, _ := filepath.Glob(filepath.Join(storedDir, "earlier", "config-*.json"))
	if len(files) != len(want) {
		t.Fatalf("%d earlier golden configs, want %d", len(files), len(want))
	}
	ctx := context.Background()
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "config-"), ".json")
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := &logical.InmemStorage{}
		if err := s.Put(ctx, &logical.StorageEntry{Key: configKey(name), Value: raw}); err != nil {
			t.Fatal(err)
		}
		c, err := getConfig(ctx, s, name)
		if err != nil || c == nil {
			t.Fatalf("%s: %v", f, err)
		}
		w := want[name]
		if len(c.Fallbacks) != w.fallbacks || len(c.Retiring) != w.retiring || c.Rotation.LeasesEndBy.IsZero() == w.bound {
			t.Errorf("%s decodes with %d fallbacks, %d retiring, lease bound %v; want %+v", f, len(c.Fallbacks),
				len(c.Retiring), c.Rotation.LeasesEndBy, w)
		}
		for _, fb := range c.Fallbacks {
			if fb.cred == nil || fb.Why == "" || fb.replaces == nil {
				t.Errorf("%s: a fallback decodes incomplete: %+v", f, fb)
			}
		}
		// Stored again, they move to state/<name> (the lease bound is copied there), and
		// config/<name> holds no fallback or retiring credential.
		b := &backend{}
		if err := b.putConfig(ctx, s, name, c); err != nil {
			t.Fatal(err)
		}
		e, _ := s.Get(ctx, configKey(name))
		for _, member := range []string{`"fallbacks"`, `"retiring"`} {
			if strings.Contains(string(e.Value), member) {
				t.Errorf("%s stored again keeps %s in config/%s", f, member, name)
			}
		}
		if st, _, err := getState(ctx, s, name, c.Provider); err != nil || (st == nil) != (w.fallbacks+w.retiring == 0 && !w.bound) ||
			(st != nil && !st.LeasesEndBy.Equal(c.Rotation.LeasesEndBy)) {
			t.Errorf("%s stored again: state/%s is %+v (%v)", f, name, st, err)
		}
		again, err := getConfig(ctx, s, name)
		if err != nil || len(again.Fallbacks) != w.fallbacks || len(again.Retiring) != w.retiring ||
			!again.Rotation.LeasesEndBy.Equal(c.Rotation.LeasesEndBy) {
			t.Errorf("%s stored again and read back: %+v, %v", f, again, err)
		}
	}
}

// A write of a config in that earlier form that stops between its two writes (either one
// failing) loses none of the fallbacks and retiring credentials config/<name> held, and
// counts none twice: state/<name> is written first for that form.
func TestStoredFormEarlierWriteStoppedBetweenWrites(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"offblocks-unsettled", "bloq-unsettled", "bloq-retiring"} {
		for _, failing := range []string{configKey(name), stateKey(name)} {
			raw, err := os.ReadFile(filepath.Join(storedDir, "earlier", "config-"+name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			s := &flakyStorage{}
			if err := s.Put(ctx, &logical.StorageEntry{Key: configKey(name), Value: raw}); err != nil {
				t.Fatal(err)
			}
			c, err := getConfig(ctx, s, name)
			if err != nil {
				t.Fatal(err)
			}
			held := len(c.Fallbacks) + len(c.Retiring)
			c.MaxTTL = 10 * time.Minute
			s.setFailPut(func(k string) bool { return k == failing })
			if err := (&backend{}).putConfig(ctx, s, name, c); err == nil {
				t.Fatalf("%s: the write of %s did not fail", name, failing)
			}
			s.setFailPut(nil)
			again, err := getConfig(ctx, s, name)
			if err != nil || len(again.Fallbacks)+len(again.Retiring) != held {
				t.Errorf("%s, %s failing: %d fallbacks and retiring after the stopped write, want %d (%v)", name, failing,
					len(again.Fallbacks)+len(again.Retiring), held, err)
			}
		}
	}
}
