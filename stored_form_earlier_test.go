package apitokens

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
