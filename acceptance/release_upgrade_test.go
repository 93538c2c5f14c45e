//go:build acceptance

package acceptance

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// Token lifetimes of this test (leases of 81 s), and the lag of the provider during the
// interrupted 0.1.0 rotation: long enough for the upgrade to come first, short enough that
// main's leases of the old pair are still running when the change applies.
const (
	lifecycleLife = 90 * time.Second
	lifecycleLag  = 40 * time.Second
	settleLimit   = 75 * time.Second // Vault's periodic function runs every minute
)

// From the released 0.1.0, built out of this clone's history, to main and back, twice, by
// the README's own recipe in a real Vault, with readers of every config running throughout
// and every token they get checked at the provider until its lease ends (issue 27, item 3):
//
//	a. configs of every provider under 0.1.0: schedules, token reuse, Bloq client keys with a
//	   login, a Bloq refresh token that the provider replaces on every use;
//	b. a 0.1.0 rotate-root of ob-sched, its provider lagging, SIGKILLed in the PUT: its WAL
//	   entry (the old and the new pair) stays;
//	c. upgrade to main by the recipe, the change not applied yet; then it applies;
//	d. a rotate-root of ob-lost under main whose PUT's answer is lost, the provider lagging:
//	   main holds a fallback;
//	e. rollback to 0.1.0 by the recipe, ob-lost still unsettled;
//	f. 0.1.0 runs a scheduled rotation (bloq-keys), writes ob-lost's max_ttl and serves
//	   reads; then the provider applies ob-lost's lost change: only the fallback works;
//	g. upgrade by the recipe again: every config settles, holds the credential the provider
//	   accepts, and serves tokens.
//
// No token that main hands out may die inside its lease while main runs, but those of
// ob-lost handed out before its rotate-root (d); the tokens of 0.1.0 and main's tokens killed
// while 0.1.0 runs are counted and logged.
func TestUpgradeFromReleasedAndBack(t *testing.T) {
	began := time.Now()
	buildReleased(t)
	install, upgrade, rollback := upgradeRecipe(t)
	sim := simulator.New()
	sim.SetLifetimes(simulator.Lifetimes{OffBlocks: lifecycleLife, BloqClient: lifecycleLife,
		BloqAccount: lifecycleLife, OpsNow: lifecycleLife})
	sim.SetBloqRotateRefresh(true)
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	plugins, releases := t.TempDir(), t.TempDir()
	for _, ver := range []string{releasedVersion, version2} {
		zipRelease(t, releases, ver)
	}
	raw := filepath.Join(t.TempDir(), "raw.hcl") // sys/raw: what the mount's storage holds
	writeFile(t, raw, "raw_storage_endpoint = true\n")
	v := startDevWithPlugins(t, plugins, "-config="+raw)
	r := &recipeRun{v: v, work: t.TempDir(), plugins: plugins, releases: releases}
	step := func(format string, args ...any) {
		t.Logf("%6.1fs  %s", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	r.run(t, "install", install, releasedVersion, "")
	checkRunning(t, v, releasedVersion)
	step("installed %s (built from %s) by the README's install commands", releasedVersion, releasedCommit[:7])

	// a. Every provider's configs, under 0.1.0.
	accts := seedLifecycle(sim, srv.URL)
	for _, a := range accts.list {
		if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
			t.Fatalf("0.1.0: config %s: %v", a.name, err)
		}
	}
	k := newTracker(sim, releasedVersion)
	k.gated["bloq-refresh"] = true
	k.start(t, v, accts.names(), 4)
	defer k.halt()
	waitUntil(t, 30*time.Second, "0.1.0 hands out a token of every config", func() error {
		return k.handedAfter(began, releasedVersion, accts.names()...)
	})
	step("a. %d configs under %s; readers hold tokens of each", len(accts.list), releasedVersion)

	// b. A 0.1.0 rotation interrupted by SIGKILL of the plugin while the provider lags.
	obA, obB := accts.ids["ob-sched"], accts.ids["ob-lost"]
	sim.SetOffBlocksAccountLag(obA, lifecycleLag)
	killed := make(chan []int, 1)
	sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Caller: obA, AfterApply: true, Hang: true,
		OnHit: func() { k.kill(func() { killed <- killPlugins(v, plugins) }) }})
	_, err := v.client.Logical().Write("apitokens/rotate-root/ob-sched", nil)
	var pids []int
	select {
	case pids = <-killed:
	case <-time.After(10 * time.Second):
		t.Fatalf("b. the 0.1.0 rotate-root of ob-sched was not interrupted in its PUT (it answered %v)", err)
	}
	if _, alive := awaitExit(pids, pluginExitLimit); len(pids) == 0 || len(alive) > 0 || err == nil {
		t.Fatalf("b. SIGKILL of the plugin processes %v: still alive %v; rotate-root answered %v", pids, alive, err)
	}
	// One change, or the same change more than once: a read that 0.1.0 serves after the
	// restart settles the entry by sending its change again (and marks it acknowledged).
	pending := sim.OffBlocksPendingPairs(obA)
	same := len(pending) > 0
	for _, p := range pending {
		same = same && p == pending[0]
	}
	if !same || !walHolds(t, v, "ob-sched", pending[0][0]) {
		t.Fatalf("b. after the kill the provider holds the lagging changes %v, and 0.1.0's WAL entries are %v: want "+
			"changes to one pair, which a WAL entry holds", pending, walEntries(t, v))
	}
	afterKill := time.Now()
	waitUntil(t, 30*time.Second, "0.1.0 serves again after the kill", func() error {
		return k.handedAfter(afterKill, releasedVersion)
	})
	step("b. 0.1.0's rotate-root of ob-sched SIGKILLed (plugin pids %v) in its PUT: the provider applies the "+
		"change in %s; 0.1.0's WAL entry holds api_key %s", pids, lifecycleLag, pending[0][0])

	// c. Upgrade by the recipe while the entry is there and the change not applied.
	if !walHolds(t, v, "ob-sched", pending[0][0]) || !sim.OffBlocksPending(obA) {
		t.Fatal("c. the WAL entry or the lagging change is gone before the upgrade: this test upgrades with both")
	}
	runRecipe(t, r, k, "upgrade", upgrade, version2)
	step("c. upgraded to %s by the README's commands, with 0.1.0's WAL entry and the change pending", version2)
	waitUntil(t, lifecycleLag+settleLimit, "ob-sched settles on the pair 0.1.0 sent", func() error {
		return held(v, sim, k, accts, "ob-sched", pending[0][0])
	})
	sim.SetOffBlocksAccountLag(obA, 0)
	step("c. the provider applied 0.1.0's change; %s holds it and serves ob-sched", version2)

	// d. A rotation under main whose answer is lost: main holds a fallback.
	sim.SetOffBlocksAccountLag(obB, time.Hour)
	sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Caller: obB, AfterApply: true, Hang: true})
	_, err = v.client.Logical().Write("apitokens/rotate-root/ob-lost", nil)
	k.mu.Lock()
	k.exempt["ob-lost"] = time.Now()
	k.mu.Unlock()
	cfg, _ := v.client.Logical().Read("apitokens/config/ob-lost")
	if err == nil || !strings.Contains(err.Error(), "unsettled") || cfg == nil || fmt.Sprint(cfg.Data["fallback_credentials"]) != "1" {
		t.Fatalf("d. rotate-root of ob-lost with its answer lost: %v; config %v", err, cfg)
	}
	fallback := fmt.Sprint(cfg.Data["unsettled_credential"])
	if pairs := sim.OffBlocksPendingPairs(obB); len(pairs) == 0 || pairs[0][0] != fallback || !rawHolds(t, v, fallback) {
		t.Fatalf("d. main holds fallback %s; the provider's lagging changes are %v", fallback, pairs)
	}
	step("d. %s's rotate-root of ob-lost lost its answer: it holds fallback %s", version2, fallback)

	// e. Rollback by the recipe, ob-lost still unsettled.
	if cfg, err := v.client.Logical().Read("apitokens/config/ob-lost"); err != nil || cfg == nil ||
		fmt.Sprint(cfg.Data["fallback_credentials"]) != "1" || !sim.OffBlocksPending(obB) {
		t.Fatalf("e. ob-lost settled before the rollback: %v (%v)", cfg, err)
	}
	// A planned rotation (this version's backend started minutes ago: it waits an hour), which
	// 0.1.0 would neither cap leases at nor run: the recipe cancels it.
	plan, err := v.client.Logical().Write("apitokens/rotate-root/ob-plan", map[string]any{"planned": true})
	if err != nil || plan == nil || plan.Data["rotates_at"] == nil || !rawHolds(t, v, "planned_rotation") {
		t.Fatalf("e. plan a rotation of ob-plan: %v (%v)", plan, err)
	}
	runRecipe(t, r, k, "rollback", rollback, releasedVersion)
	rolledBack := time.Now()
	if rawHolds(t, v, "planned_rotation") {
		t.Fatal("e. the rollback block left ob-plan's planned rotation in storage, for 0.1.0 to ignore and an upgrade to run")
	}
	step("e. rolled back to %s by the README's commands, ob-lost unsettled, ob-plan's planned rotation cancelled", releasedVersion)

	// f. 0.1.0 rotates on its schedule, writes ob-lost, serves reads; the change applies.
	before, _ := v.client.Logical().Read("apitokens/config/bloq-keys")
	creates := sim.Calls(simulator.RouteBloqKeysCreate)
	waitUntil(t, 90*time.Second, "0.1.0 runs bloq-keys' scheduled rotation", func() error {
		now, err := v.client.Logical().Read("apitokens/config/bloq-keys")
		if err != nil || now == nil || before == nil || now.Data["client_id"] == before.Data["client_id"] {
			return fmt.Errorf("config now %v, before %v (%v)", now, before, err)
		}
		return nil
	})
	if got := runningVersion(v.client); got != releasedVersion || sim.Calls(simulator.RouteBloqKeysCreate) == creates {
		t.Fatalf("f. bloq-keys rotated while %s ran, with %d key creates", got, sim.Calls(simulator.RouteBloqKeysCreate)-creates)
	}
	if _, err := v.client.Logical().Write("apitokens/config/ob-lost", map[string]any{"max_ttl": "10m"}); err != nil {
		t.Fatalf("f. 0.1.0: max_ttl write of ob-lost: %v", err)
	}
	if cfg, err := v.client.Logical().Read("apitokens/config/ob-lost"); err != nil || cfg == nil || fmt.Sprint(cfg.Data["max_ttl"]) != "600" {
		t.Fatalf("f. 0.1.0 did not store ob-lost's max_ttl: %v (%v)", cfg, err)
	}
	wrote := time.Now()
	waitUntil(t, 30*time.Second, "0.1.0 hands out tokens of every config (Bloq's refresh token stored anew each time)", func() error {
		if err := k.handedAfter(rolledBack, releasedVersion, accts.names()...); err != nil {
			return err
		}
		return k.handedAfter(wrote, releasedVersion, "ob-lost")
	})
	kept := rawHolds(t, v, fallback)
	step("f. %s rotated bloq-keys on its schedule, wrote ob-lost's max_ttl and served its reads; fallback %s "+
		"still in the mount's storage: %v", releasedVersion, fallback, kept)
	for _, p := range sim.OffBlocksPendingPairs(obB) {
		if p[0] != fallback {
			t.Fatalf("f. the provider holds a lagging change of ob-lost to %s, not to the fallback %s", p[0], fallback)
		}
	}
	if !sim.ApplyOffBlocksPending(obB, 0) {
		t.Fatal("f. no lagging change of ob-lost to apply")
	}
	if key, _ := sim.OffBlocksPair(obB); key != fallback {
		t.Fatalf("f. after the lost change applied the provider accepts %s, not the fallback %s", key, fallback)
	}
	sim.SetOffBlocksAccountLag(obB, 0)
	step("f. the provider applied ob-lost's lost change: only %s works", fallback)

	// g. Upgrade again; everything settles.
	runRecipe(t, r, k, "upgrade", upgrade, version2)
	step("g. upgraded to %s again", version2)
	settled := settleAll(t, v, sim, k, accts, map[string]string{"ob-lost": fallback})
	if !kept {
		t.Errorf("g. 0.1.0's config write of ob-lost dropped %s's fallback %s: the mount's storage no longer held it "+
			"(issue 27, item 1)", version2, fallback)
	}
	step("g. settled: %v", settled)

	k.finish()
	k.report(t, version2, releasedVersion)
	t.Logf("wall time %s", time.Since(began).Round(time.Second))
}

// runRecipe runs a README block to version, marking the reload for the tracker.
func runRecipe(t *testing.T, r *recipeRun, k *tracker, name, block, version string) {
	t.Helper()
	k.mark("")
	r.run(t, name, block, version, "")
	checkRunning(t, r.v, version)
	k.mark(version)
}

// killPlugins SIGKILLs the plugin processes v started from the plugin directory plugins.
func killPlugins(v *vaultServer, plugins string) []int {
	var pids []int
	for _, p := range liveProcs() {
		if p.ppid == v.cmd.Process.Pid && strings.HasPrefix(p.exe, plugins+"/") {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// waitUntil polls cond until it holds, failing the test with its last error after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, limit, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// lifecycleAccounts are the test's configs and the provider's ids behind them.
type lifecycleAccounts struct {
	list []account
	ids  map[string]string // OffBlocks account ids by config; Bloq user ids by config
}

func (a lifecycleAccounts) names() []string {
	var n []string
	for _, x := range a.list {
		n = append(n, x.name)
	}
	return n
}

// seedLifecycle creates an account of each kind at the provider and its config: three
// OffBlocks integrations (one on a 3-minute schedule with token reuse, one on an hourly
// schedule that never comes due here, one with no schedule, for a planned rotation), Bloq client keys with a login on a 1-minute schedule
// with reuse, a Bloq refresh token (replaced on every use) of another user, a Bloq login
// alone, OpsNow with reuse.
func seedLifecycle(sim *simulator.Server, url string) lifecycleAccounts {
	a := lifecycleAccounts{ids: map[string]string{}}
	add := func(name string, cfg map[string]any) { a.list = append(a.list, account{name: name, config: cfg}) }
	for _, ob := range []struct {
		name, period string
		reuse        bool
	}{{"ob-sched", "3m", true}, {"ob-lost", "1h", false}, {"ob-plan", "0", false}} {
		key, secret := uuid.NewString(), strings.ReplaceAll(uuid.NewString(), "-", "")+"01234567"
		a.ids[ob.name] = sim.AddOffBlocks(key, secret)
		add(ob.name, map[string]any{"provider": "offblocks", "base_url": url + simulator.OffBlocksPrefix,
			"api_key": key, "api_secret": secret, "request_timeout": "2s", "token_reuse": ob.reuse, "rotation_period": ob.period})
	}
	bloqUser := func(name string) (email, pass, cid, secret, kid string) {
		email, pass = name+"@example.com", "pw-"+uuid.NewString()
		a.ids[name] = sim.AddBloqUser(email, pass)
		cid, secret = strings.ReplaceAll(uuid.NewString(), "-", "")+"00000000", strings.Repeat(uuid.NewString()[:8], 10)
		return email, pass, cid, secret, sim.AddBloqKey(a.ids[name], cid, secret)
	}
	email, pass, cid, secret, _ := bloqUser("bloq-keys")
	add("bloq-keys", map[string]any{"provider": "bloq", "base_url": url + simulator.BloqPrefix, "client_id": cid,
		"client_secret": secret, "username": email, "password": pass, "token_reuse": true, "rotation_period": "1m"})
	_, _, _, _, kid := bloqUser("bloq-refresh")
	add("bloq-refresh", map[string]any{"provider": "bloq", "base_url": url + simulator.BloqPrefix,
		"refresh_token": sim.BloqRefreshToken(kid)})
	email, pass, _, _, _ = bloqUser("bloq-login")
	add("bloq-login", map[string]any{"provider": "bloq", "base_url": url + simulator.BloqPrefix,
		"username": email, "password": pass})
	opsKey := "ops-" + uuid.NewString()
	sim.AddOpsNowKey(opsKey)
	add("opsnow", map[string]any{"provider": "opsnow", "base_url": url + simulator.OpsNowPrefix, "api_key": opsKey, "token_reuse": true})
	return a
}
