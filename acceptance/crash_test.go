//go:build acceptance

package acceptance

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// crashStep kills Vault with SIGKILL at one step of a rotation. arm queues the simulator
// fault that does it (kill is safe to call from the simulator's handler); crashpoint, when
// set, is the plugin's own crash point for a step no provider call marks.
type crashStep struct {
	name, provider string
	arm            func(sim *simulator.Server, kill func())
	crashpoint     string
}

func killOn(f simulator.Fault, kill func()) simulator.Fault {
	f.Hang = true // the answer never arrives: Vault is dead
	f.OnHit = kill
	return f
}

var crashSteps = []crashStep{
	{name: "after the fallback write, before the PUT", provider: "offblocks",
		arm: func(sim *simulator.Server, kill func()) {
			sim.Inject(simulator.RouteOffBlocksToken, killOn(simulator.Fault{}, kill)) // the bearer for the PUT
		}},
	{name: "provider holds the PUT after applying it", provider: "offblocks",
		arm: func(sim *simulator.Server, kill func()) {
			sim.Inject(simulator.RouteOffBlocksCredentials, killOn(simulator.Fault{AfterApply: true}, kill))
		}},
	{name: "after the PUT's answer, before the config write", provider: "offblocks",
		arm: func(sim *simulator.Server, kill func()) {
			sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{OnHit: func() {
				sim.Inject(simulator.RouteOffBlocksToken, killOn(simulator.Fault{}, kill)) // the confirmation
			}})
		}},
	{name: "after the new pair is stored, before the rotation returns", provider: "offblocks",
		crashpoint: "after-config-write"},
	// The provider acknowledges the PUT but applies it 5 s later: after the restart the old
	// pair still works for a while, and the new one must not be given up meanwhile.
	{name: "provider holds the PUT and applies it 5s late", provider: "offblocks",
		arm: func(sim *simulator.Server, kill func()) {
			sim.SetOffBlocksLag(5 * time.Second)
			sim.Inject(simulator.RouteOffBlocksCredentials, killOn(simulator.Fault{AfterApply: true}, kill))
		}},
	{name: "provider holds the key creation after applying it", provider: "bloq",
		arm: func(sim *simulator.Server, kill func()) {
			sim.Inject(simulator.RouteBloqKeysCreate, killOn(simulator.Fault{AfterApply: true}, kill))
		}},
	{name: "after the fallback write, before the key is confirmed", provider: "bloq",
		arm: func(sim *simulator.Server, kill func()) {
			sim.Inject(simulator.RouteBloqToken, killOn(simulator.Fault{}, kill)) // the confirmation
		}},
	{name: "after the new key is stored, before the old key is deleted", provider: "bloq",
		arm: func(sim *simulator.Server, kill func()) {
			sim.Inject(simulator.RouteBloqKeysDelete, killOn(simulator.Fault{}, kill)) // retiring the old key
		}},
}

type crashResult struct {
	trials, recovered, lost int
	worst                   time.Duration
	// pluginExit is the longest a plugin process outlived its killed Vault.
	pluginExit time.Duration
}

// TestCrashDuringRotation kills Vault (file storage) at each step of OffBlocks and Bloq
// rotations, CRASH_TRIALS times per step (default 2; `make crash` runs 20). After each
// restart and unseal, creds/<name> must serve a token the provider accepts within 90 s,
// and the stored credential must be the one the provider accepts.
func TestCrashDuringRotation(t *testing.T) {
	trials := 2
	if n, err := strconv.Atoi(os.Getenv("CRASH_TRIALS")); err == nil && n > 0 {
		trials = n
	}
	results := make([]crashResult, len(crashSteps))
	for i, step := range crashSteps {
		t.Run(step.provider+": "+step.name, func(t *testing.T) {
			results[i] = runCrashStep(t, step, trials)
		})
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-10s %-50s %6s %9s %4s %14s %12s\n", "provider", "step", "trials", "recovered", "lost", "worst recovery", "plugin exit")
	for i, s := range crashSteps {
		r := results[i]
		fmt.Fprintf(&table, "%-10s %-50s %6d %9d %4d %14s %12s\n", s.provider, s.name, r.trials, r.recovered, r.lost,
			r.worst.Round(time.Millisecond), r.pluginExit.Round(time.Millisecond))
	}
	t.Log(table.String())
}

func runCrashStep(t *testing.T, step crashStep, trials int) crashResult {
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	accts, _, ids := seedAccounts(sim, srv.URL, "crash")
	acct := accts[0]
	if step.provider == "bloq" {
		acct = accts[1]
	}
	dir, port, cport := t.TempDir(), freePort(t), freePort(t)
	v := startPersistent(t, "file", dir, port, cport)
	ver := version1
	reg := &api.RegisterPluginInput{Name: pluginName, Type: api.PluginTypeSecrets}
	if step.crashpoint != "" {
		ver = versionCrash
		reg.Env = []string{crashpointEnv + "=" + step.crashpoint}
	}
	reg.Command, reg.SHA256, reg.Version = pluginName+"-"+ver, shas[ver], ver
	if err := v.client.Sys().RegisterPluginWithContext(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	if err := v.client.Sys().Mount("apitokens", &api.MountInput{Type: pluginName,
		Config: api.MountConfigInput{PluginVersion: ver}}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.client.Logical().Write("apitokens/config/"+acct.name, acct.config); err != nil {
		t.Fatal(err)
	}

	var res crashResult
	for trial := 0; trial < trials; trial++ {
		res.trials++
		victim := v
		kidsCh := make(chan []int, 1)
		kill := func() {
			select {
			case kidsCh <- killVaultAlone(victim): // Vault alone: its plugins must exit by themselves
			default:
			}
		}
		if step.arm != nil {
			step.arm(sim, kill)
		}
		_, err := v.client.Logical().Write("apitokens/rotate-root/"+acct.name, nil)
		select {
		case <-v.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("trial %d: Vault was not killed (rotate returned %v)", trial, err)
		}
		select {
		case kids := <-kidsCh:
			res.pluginExit = max(res.pluginExit, checkPluginsExit(t, kids))
		default: // the plugin's own crash point killed Vault: look for any plugin left
			res.pluginExit = max(res.pluginExit, checkPluginsExit(t, orphanedPlugins()))
		}
		sim.ClearFaults()
		v.cmd = nil

		v = startPersistent(t, "file", dir, port, cport)
		start := time.Now()
		recovered, why := awaitRecovery(v, sim, acct, ids, 90*time.Second)
		took := time.Since(start)
		if recovered {
			res.recovered++
			res.worst = max(res.worst, took)
		} else {
			res.lost++
			t.Errorf("trial %d: not recovered within 90s: %s", trial, why)
		}
	}
	return res
}

// awaitRecovery polls creds until it serves a token the provider accepts and the stored
// credential is the one the provider holds.
func awaitRecovery(v *vaultServer, sim *simulator.Server, acct account, ids map[string]string, limit time.Duration) (bool, string) {
	deadline := time.Now().Add(limit)
	why := ""
	for time.Now().Before(deadline) {
		s, err := v.client.Logical().Read("apitokens/creds/" + acct.name)
		if err != nil || s == nil {
			why = fmt.Sprintf("creds: %v", err)
			time.Sleep(250 * time.Millisecond)
			continue
		}
		if _, err := sim.Validate(s.Data["token"].(string)); err != nil {
			why = "token refused: " + err.Error()
			time.Sleep(250 * time.Millisecond)
			continue
		}
		cfg, err := v.client.Logical().Read("apitokens/config/" + acct.name)
		if err != nil || cfg == nil {
			why = fmt.Sprintf("config: %v", err)
			continue
		}
		if acct.config["provider"] == "offblocks" {
			if sim.OffBlocksPending(ids["offblocks"]) {
				why = "the provider has not applied the update yet"
				time.Sleep(250 * time.Millisecond)
				continue
			}
			if key, _ := sim.OffBlocksPair(ids["offblocks"]); cfg.Data["api_key"] != key {
				why = fmt.Sprintf("stored api_key %v, provider holds %s", cfg.Data["api_key"], key)
				time.Sleep(250 * time.Millisecond)
				continue
			}
		} else if !contains(sim.BloqClientIDs(ids["bloq-user"]), fmt.Sprint(cfg.Data["client_id"])) {
			why = fmt.Sprintf("stored client_id %v is not a live key", cfg.Data["client_id"])
			time.Sleep(250 * time.Millisecond)
			continue
		}
		return true, ""
	}
	return false, why
}
