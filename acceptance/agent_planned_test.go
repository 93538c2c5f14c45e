//go:build acceptance

package acceptance

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// documentedLifetimeEnv is the test build's stand-in for the documented token lifetimes
// (testhooks.go): the bound a planned rotation reckons leases handed out before the backend
// started by. With the real ones (an hour), a plan made on a fresh mount runs an hour later.
const documentedLifetimeEnv = "APITOKENS_TEST_DOCUMENTED_LIFETIME"

// plannedLife is both the simulator's token lifetime and the test build's documented one:
// no token lives longer than the bound the plugin reckons with.
const plannedLife = 2 * time.Minute

// renderWindowLimit bounds the time from the provider call that kills the old tokens (the
// PUT of OffBlocks' credential, the delete of Bloq's client key) to Vault Agent's render of
// a token of the new credential: the creds read Agent is waiting on performs the rotation,
// so the file can only change once that read returns.
const renderWindowLimit = 2 * time.Second

// fileChange is a content of a rendered file: the token and when the watcher first saw it.
type fileChange struct {
	token string
	seen  time.Time
}

// check is one of the once-a-second checks of a rendered file at the provider: the file was
// read at read, the token validated at done.
type check struct {
	read, done time.Time
	token      string
	err        error
}

// Vault Agent renders an OffBlocks token and a Bloq client token (client keys and a login)
// from configs with no max_ttl, and each file's token is checked at the provider once a
// second across a planned rotation of both configs (rotate-root planned=true), until Agent
// has rendered a token of the new credential that the provider accepts, past rotates_at:
//   - rotates_at is after the end of every lease handed out before the plan, and the
//     rotation does not run before it;
//   - every check is valid, except those that overlap the one unavoidable window: from the
//     provider call that kills the old tokens to Agent's render of the new one (the read
//     that performs the rotation returns only after it); that window is measured, and
//     shorter than renderWindowLimit.
//
// The plugin is the test build with documented lifetimes of plannedLife
// (documentedLifetimeEnv) and the simulator's tokens live as long: rotates_at comes about
// plannedLife after the mount started, not an hour.
func TestVaultAgentPlannedRotation(t *testing.T) {
	began := time.Now()
	sim := simulator.New()
	sim.SetLifetimes(simulator.Lifetimes{OffBlocks: plannedLife, BloqClient: plannedLife,
		BloqAccount: plannedLife, BloqRefresh: plannedLife, OpsNow: plannedLife})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	v := startDev(t)
	if err := v.client.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name: pluginName, Type: api.PluginTypeSecrets, Command: pluginName + "-" + versionCrash,
		SHA256: shas[versionCrash], Version: versionCrash,
		Env: []string{documentedLifetimeEnv + "=" + plannedLife.String()}}); err != nil {
		t.Fatal(err)
	}
	if err := v.client.Sys().Mount("apitokens", &api.MountInput{Type: pluginName,
		Config: api.MountConfigInput{PluginVersion: versionCrash}}); err != nil {
		t.Fatal(err)
	}
	accts, _, _ := seedAccounts(sim, srv.URL, "planned")
	names := map[string]string{"offblocks": accts[0].name, "bloq": accts[1].name} // bloq: client keys + login
	for _, a := range accts[:2] {
		if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
	}

	// The provider calls that kill the old tokens, timed as they arrive (before they apply).
	var mu sync.Mutex
	kills := map[string][]time.Time{}
	for which, route := range map[string]string{"offblocks": simulator.RouteOffBlocksCredentials,
		"bloq": simulator.RouteBloqKeysDelete} {
		sim.Inject(route, simulator.Fault{Times: -1, OnHit: func() {
			mu.Lock()
			defer mu.Unlock()
			kills[which] = append(kills[which], time.Now())
		}})
	}

	paths := map[string]string{}
	for which, name := range names {
		paths[which] = "apitokens/creds/" + name
	}
	read := startAgentFor(t, v, paths)
	changes := watchFiles(t, read, names)

	// Both files rendered, with a token the provider accepts.
	deadline := time.Now().Add(60 * time.Second)
	for which := range names {
		for read(which) == "" && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := sim.Validate(read(which)); err != nil {
			t.Fatalf("%s: the agent rendered a token the provider refuses: %v", which, err)
		}
	}

	// Plan both rotations; each must come after every lease handed out so far.
	rotatesAt, planned := map[string]time.Time{}, map[string]time.Time{}
	for which, name := range names {
		before := latestLeaseEnd(t, v, paths[which])
		planned[which] = time.Now()
		s, err := v.client.Logical().Write("apitokens/rotate-root/"+name, map[string]any{"planned": true})
		if err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339, s.Data["rotates_at"].(string))
		if err != nil {
			t.Fatal(err)
		}
		rotatesAt[which] = at
		if !at.After(before) {
			t.Errorf("%s: rotates_at %s is not after the end of the latest lease handed out before the plan (%s)",
				which, at.Format(time.RFC3339), before.Format(time.RFC3339))
		}
		t.Logf("%s: planned at %s; latest lease before the plan ends %s; rotates_at %s (%s after the plan)",
			which, planned[which].Format("15:04:05.000"), before.Format("15:04:05"), at.Format("15:04:05"),
			at.Sub(planned[which]).Round(time.Second))
	}

	// Check each file once a second until it holds a token of the new credential that the
	// provider accepts, past rotates_at.
	checks := map[string][]check{}
	done := map[string]bool{}
	limit := time.Now().Add(plannedLife + 90*time.Second)
	for len(done) < len(names) && time.Now().Before(limit) {
		time.Sleep(time.Second)
		for which := range names {
			c := check{read: time.Now(), token: read(which)}
			_, c.err = sim.Validate(c.token)
			c.done = time.Now()
			checks[which] = append(checks[which], c)
			mu.Lock()
			killed := kills[which]
			mu.Unlock()
			// Every token of the old credential is dead from the first kill on: one first
			// seen after it is of the new credential.
			if len(killed) > 0 && c.err == nil && c.read.After(rotatesAt[which]) &&
				firstSeen(changes(which), c.token).After(killed[0]) {
				done[which] = true
			}
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for which := range names {
		killed := kills[which]
		if !done[which] || len(killed) == 0 {
			t.Errorf("%s: no token of the new credential rendered and accepted by %s (rotates_at %s; %d rotation calls)",
				which, time.Now().Format("15:04:05"), rotatesAt[which].Format("15:04:05"), len(killed))
			continue
		}
		if len(killed) != 1 {
			t.Errorf("%s: %d rotation calls at the provider, want 1", which, len(killed))
		}
		kill := killed[0]
		if kill.Before(rotatesAt[which]) {
			t.Errorf("%s: the rotation ran at %s, before rotates_at %s", which, kill.Format("15:04:05.000"),
				rotatesAt[which].Format(time.RFC3339))
		}
		render := renderAfter(changes(which), kill)
		window := render.seen.Sub(kill)
		if window > renderWindowLimit {
			t.Errorf("%s: the file held the killed token for %s after the rotation call (limit %s)",
				which, window, renderWindowLimit)
		}
		inWindow, refusedInWindow := 0, 0
		for _, c := range checks[which] {
			if !c.done.Before(kill) && !c.read.After(render.seen) {
				inWindow++
				if c.err != nil {
					refusedInWindow++
				}
				continue // the one window where the file may hold a dead token
			}
			if c.err != nil {
				t.Errorf("%s: the check at %s found a token the provider refuses: %v",
					which, c.read.Format("15:04:05.000"), c.err)
			}
		}
		t.Logf("%s: rotation call %s after rotates_at; file changed %s after it; "+
			"%d checks, %d of them in that window (%d refused); %d file contents in all",
			which, kill.Sub(rotatesAt[which]).Round(time.Millisecond), window.Round(time.Microsecond),
			len(checks[which]), inWindow, refusedInWindow, len(changes(which)))
	}
	t.Logf("wall time %s", time.Since(began).Round(time.Second))
}

// latestLeaseEnd returns the latest expiry of the leases Vault holds under prefix.
func latestLeaseEnd(t *testing.T, v *vaultServer, prefix string) time.Time {
	t.Helper()
	s, err := v.client.Logical().List("sys/leases/lookup/" + prefix)
	if err != nil || s == nil {
		t.Fatalf("list the leases of %s: %v", prefix, err)
	}
	var latest time.Time
	for _, k := range s.Data["keys"].([]any) {
		l, err := v.client.Sys().Lookup(prefix + "/" + k.(string))
		if err != nil {
			t.Fatal(err)
		}
		end, err := time.Parse(time.RFC3339Nano, l.Data["expire_time"].(string))
		if err != nil {
			t.Fatal(err)
		}
		latest = later(latest, end)
	}
	if latest.IsZero() {
		t.Fatalf("no lease under %s", prefix)
	}
	return latest
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// watchFiles reads the rendered files every 2 ms until the test ends, and returns the
// contents each held, in order.
func watchFiles(t *testing.T, read func(which string) string, names map[string]string) func(which string) []fileChange {
	var mu sync.Mutex
	seen := map[string][]fileChange{}
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			for which := range names {
				tok := read(which)
				if tok == "" {
					continue
				}
				now := time.Now()
				mu.Lock()
				if h := seen[which]; len(h) == 0 || h[len(h)-1].token != tok {
					seen[which] = append(h, fileChange{token: tok, seen: now})
				}
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-stopped })
	return func(which string) []fileChange {
		mu.Lock()
		defer mu.Unlock()
		return append([]fileChange(nil), seen[which]...)
	}
}

// firstSeen returns when the watcher first saw token in the file (zero if never).
func firstSeen(h []fileChange, token string) time.Time {
	for _, c := range h {
		if c.token == token {
			return c.seen
		}
	}
	return time.Time{}
}

// renderAfter returns the first content the watcher saw after at.
func renderAfter(h []fileChange, at time.Time) fileChange {
	for _, c := range h {
		if c.seen.After(at) {
			return c
		}
	}
	return fileChange{}
}
