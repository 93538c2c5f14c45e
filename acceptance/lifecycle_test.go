//go:build acceptance

package acceptance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// Vault on file and on raft storage, stopped and started again (and unsealed), keeps every
// config, including a rotated credential, and serves creds.
func TestRestartKeepsConfigs(t *testing.T) {
	for _, storage := range []string{"file", "raft"} {
		t.Run(storage, func(t *testing.T) {
			sim := simulator.New()
			srv := httptest.NewServer(sim.Handler())
			defer srv.Close()
			accts, _, ids := seedAccounts(sim, srv.URL, "restart")
			dir, port, cport := t.TempDir(), freePort(t), freePort(t)

			v := startPersistent(t, storage, dir, port, cport)
			v.registerAndEnable("apitokens", version1)
			for _, a := range accts {
				if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := v.client.Logical().Write("apitokens/rotate-root/"+accts[0].name, nil); err != nil {
				t.Fatal(err)
			}
			before := map[string]map[string]any{}
			for _, a := range accts {
				s, err := v.client.Logical().Read("apitokens/config/" + a.name)
				if err != nil {
					t.Fatal(err)
				}
				before[a.name] = s.Data
			}
			v.stop(syscall.SIGTERM)

			v = startPersistent(t, storage, dir, port, cport)
			for _, a := range accts {
				s, err := v.client.Logical().Read("apitokens/config/" + a.name)
				if err != nil || s == nil || !reflect.DeepEqual(s.Data, before[a.name]) {
					t.Fatalf("%s after restart: %v (err %v), before %v", a.name, s, err, before[a.name])
				}
				c, err := v.client.Logical().Read("apitokens/creds/" + a.name)
				if err != nil {
					t.Fatalf("%s: creds after restart: %v", a.name, err)
				}
				if _, err := sim.Validate(c.Data["token"].(string)); err != nil {
					t.Errorf("%s: token after restart refused: %v", a.name, err)
				}
			}
			if key, _ := sim.OffBlocksPair(ids["offblocks"]); before[accts[0].name]["api_key"] != key {
				t.Errorf("the rotated pair did not survive the restart")
			}
		})
	}
}

// The README's install, upgrade and rollback commands, run as written (upgradeRecipe) by
// bash against a Vault with a plugin directory of its own, the suite's two builds zipped as
// releases: each version lands in a file of its own; the mount runs the old version until
// the tune and the reload, and the new one after, with its configs; the old version's file
// is never touched (its sha256 is the one registered), so going back to it works.
func TestUpgradePluginVersion(t *testing.T) {
	install, upgrade, rollback := upgradeRecipe(t)
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	plugins, releases := t.TempDir(), t.TempDir()
	for _, ver := range []string{version1, version2} {
		zipRelease(t, releases, ver)
	}
	v := startDevWithPlugins(t, plugins)
	r := &recipeRun{v: v, work: t.TempDir(), plugins: plugins, releases: releases}

	r.run(t, "install", install, version1, "")
	checkRunning(t, v, version1)
	oldFile := registeredFile(t, v, plugins, version1)
	accts, _, _ := seedAccounts(sim, srv.URL, "upgrade")
	for _, a := range accts {
		if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
	}
	probe := "apitokens/creds/" + accts[0].name
	checkCreds(t, v, sim, accts, "before the upgrade")

	// Before its tune and its reload, the old version still runs and serves; after, the new.
	calls := r.run(t, "upgrade", upgrade, version2, probe)
	tune, reload := callIndex(t, calls, "secrets", "tune"), callIndex(t, calls, "plugin", "reload")
	if reg := callIndex(t, calls, "plugin", "register"); !(reg < tune && tune < reload) {
		t.Fatalf("the upgrade runs register, tune, reload in the order %d, %d, %d", reg, tune, reload)
	}
	for _, i := range []int{tune, reload} {
		if c := calls[i]; c.running != version1 || !works(sim, c.token) {
			t.Errorf("before `vault %s` the mount runs %q (want the old %s) and serves a working token = %v",
				strings.Join(c.args, " "), c.running, version1, works(sim, c.token))
		}
	}
	checkRunning(t, v, version2)
	checkCreds(t, v, sim, accts, "after the upgrade")
	newFile := registeredFile(t, v, plugins, version2)
	if got := fileSum(t, oldFile); got != shas[version1] {
		t.Errorf("the upgrade changed the old version's file %s: sha256 %s, registered %s", oldFile, got, shas[version1])
	}

	calls = r.run(t, "rollback", rollback, version1, probe)
	if c := calls[callIndex(t, calls, "plugin", "reload")]; c.running != version2 || !works(sim, c.token) {
		t.Errorf("before the rollback's reload the mount runs %q (want %s), serving = %v", c.running, version2, works(sim, c.token))
	}
	checkRunning(t, v, version1)
	checkCreds(t, v, sim, accts, "after the rollback")
	want := []string{pluginName + "_" + version1, pluginName + "_" + version2}
	if names := dirNames(t, plugins); !reflect.DeepEqual(names, want) || oldFile == newFile {
		t.Errorf("the plugin directory holds %v, want one file per version, %v", names, want)
	}
	t.Logf("the README's commands: install %s, upgrade to %s (the old one served until the tune and the reload), "+
		"back to %s; %s kept sha256 %.12s throughout", version1, version2, version1, filepath.Base(oldFile), shas[version1])
}

// registeredFile is the file in plugins that version is registered to run, which holds the
// suite's build of that version.
func registeredFile(t *testing.T, v *vaultServer, plugins, version string) string {
	t.Helper()
	info := v.cliJSON("plugin", "info", "-version="+version, "secret", pluginName)
	command, _ := info["command"].(string)
	file := filepath.Join(plugins, command)
	if info["sha256"] != shas[version] || fileSum(t, file) != shas[version] {
		t.Fatalf("%s is registered as %q with sha256 %v; the file's sha256 is %s, the build's %s",
			version, command, info["sha256"], fileSum(t, file), shas[version])
	}
	return file
}

// The README's recipe text that the upgrade test replaces with its own.
const (
	recipeURL     = "https://github.com/apitokens/vault-plugin-secrets-apitokens/releases/download/"
	recipePlugins = "/etc/vault/plugins"
)

// upgradeRecipe returns the README's install, upgrade and rollback commands: the three sh
// blocks between <!-- upgrade-recipe --> and <!-- /upgrade-recipe -->, in that order.
func upgradeRecipe(t *testing.T) (install, upgrade, rollback string) {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- upgrade-recipe -->")
	region, _, ok2 := strings.Cut(rest, "<!-- /upgrade-recipe -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no <!-- upgrade-recipe --> ... <!-- /upgrade-recipe --> around its install, " +
			"upgrade and rollback commands (issue 17, item 1): this test runs the README's own commands")
	}
	blocks := regexp.MustCompile("(?ms)^```sh\n(.*?)^```").FindAllStringSubmatch(region, -1)
	if len(blocks) != 3 {
		t.Fatalf("README.md's upgrade recipe has %d sh blocks, want 3: install, upgrade, rollback", len(blocks))
	}
	return blocks[0][1], blocks[1][1], blocks[2][1]
}

// zipRelease packages the suite's build of version as a release for this platform, with
// scripts/distzip, into releases/<version>: the zip and its SHA256SUMS.
func zipRelease(t *testing.T, releases, version string) {
	t.Helper()
	build := filepath.Join(t.TempDir(), runtime.GOOS+"_"+runtime.GOARCH)
	bin, err := os.ReadFile(filepath.Join(pluginDir, pluginName+"-"+version))
	if err == nil {
		err = os.MkdirAll(build, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(build, pluginName), bin, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "../scripts/distzip", "-name", pluginName, "-version", version,
		"-mtime", strconv.Itoa(releaseEpoch), "-dist", filepath.Join(releases, version), filepath.Dir(build))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("distzip %s: %v\n%s", version, err, out)
	}
}

// recipeRun runs README blocks in one working directory, as an operator would, with a vault
// on PATH that notes, before each command it passes on to the real one, what the mount
// runs and whether a creds read works.
type recipeRun struct {
	v                       *vaultServer
	work, plugins, releases string
}

// recipeCall is one vault command a block ran, and the mount's state just before it.
type recipeCall struct {
	args    []string
	running string // running_plugin_version of apitokens/
	token   string // the token a creds read of the probe path got, if any
}

// recipeVault is the vault the blocks find on PATH: it records, then runs the real one.
const recipeVault = `#!/bin/sh
n=$(($(cat "$RECIPE_STATE/n" 2>/dev/null || echo 0) + 1)) && echo "$n" >"$RECIPE_STATE/n"
printf '%s\n' "$@" >"$RECIPE_STATE/$n.args"
"$RECIPE_VAULT" secrets list -detailed -format=json >"$RECIPE_STATE/$n.mounts" 2>/dev/null
[ -z "$RECIPE_PROBE" ] || "$RECIPE_VAULT" read -format=json "$RECIPE_PROBE" >"$RECIPE_STATE/$n.probe" 2>/dev/null
exec "$RECIPE_VAULT" "$@"
`

// run runs one README block with bash (stopping at the first failing command), its V=
// set to version, its plugin directory, release URL and platform replaced by the test's.
func (r *recipeRun) run(t *testing.T, name, block, version, probe string) []recipeCall {
	t.Helper()
	vs := regexp.MustCompile(`(^|\s)V=[0-9]+\.[0-9]+\.[0-9]+(\s)`)
	if n := len(vs.FindAllString(block, -1)); n != 1 {
		t.Fatalf("README %s block: %d assignments V=X.Y.Z, want one:\n%s", name, n, block)
	}
	script := vs.ReplaceAllString(block, "${1}V="+strings.TrimPrefix(version, "v")+"${2}")
	for _, s := range []string{recipeURL, recipePlugins} {
		if name != "rollback" && !strings.Contains(script, s) {
			t.Fatalf("README %s block: no %s, which the test replaces with its own:\n%s", name, s, block)
		}
	}
	script = strings.ReplaceAll(script, recipeURL, "file://"+r.releases+"/")
	script = strings.ReplaceAll(script, recipePlugins, r.plugins)
	script = strings.ReplaceAll(script, "linux_amd64", runtime.GOOS+"_"+runtime.GOARCH)

	state, bin := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(bin, "vault"), recipeVault)
	if err := os.Chmod(filepath.Join(bin, "vault"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\n"+script)
	cmd.Dir = r.work
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"VAULT_ADDR="+r.v.addr, "VAULT_TOKEN="+r.v.client.Token(), "HOME="+r.v.dir,
		"RECIPE_STATE="+state, "RECIPE_VAULT="+vaultBin, "RECIPE_PROBE="+probe)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's %s commands failed (%v):\n%s\noutput:\n%s", name, err, script, out)
	}
	var calls []recipeCall
	for i := 1; ; i++ {
		args, err := os.ReadFile(filepath.Join(state, fmt.Sprintf("%d.args", i)))
		if err != nil {
			return calls
		}
		c := recipeCall{args: strings.Fields(string(args))}
		var mounts map[string]struct {
			Running string `json:"running_plugin_version"`
		}
		if b, err := os.ReadFile(filepath.Join(state, fmt.Sprintf("%d.mounts", i))); err == nil && json.Unmarshal(b, &mounts) == nil {
			c.running = mounts["apitokens/"].Running
		}
		var read struct{ Data struct{ Token string } }
		if b, err := os.ReadFile(filepath.Join(state, fmt.Sprintf("%d.probe", i))); err == nil && json.Unmarshal(b, &read) == nil {
			c.token = read.Data.Token
		}
		calls = append(calls, c)
	}
}

// callIndex is the index of the one call of `vault sub cmd ...` among calls.
func callIndex(t *testing.T, calls []recipeCall, sub, cmd string) int {
	t.Helper()
	found := -1
	for i, c := range calls {
		if len(c.args) >= 2 && c.args[0] == sub && c.args[1] == cmd {
			if found >= 0 {
				t.Fatalf("the block runs `vault %s %s` twice", sub, cmd)
			}
			found = i
		}
	}
	if found < 0 {
		t.Fatalf("the block does not run `vault %s %s`", sub, cmd)
	}
	return found
}

// checkRunning fails the test unless apitokens/ runs version, from the suite's build of it.
func checkRunning(t *testing.T, v *vaultServer, version string) {
	t.Helper()
	m, _ := v.cliJSON("secrets", "list", "-detailed")["apitokens/"].(map[string]any)
	if m["running_plugin_version"] != version || m["running_sha256"] != shas[version] {
		t.Fatalf("apitokens/ runs %v (sha256 %v), want %s (%s)", m["running_plugin_version"], m["running_sha256"], version, shas[version])
	}
}

// checkCreds reads creds of every account: each token works at the provider.
func checkCreds(t *testing.T, v *vaultServer, sim *simulator.Server, accts []account, when string) {
	t.Helper()
	for _, a := range accts {
		c, err := v.client.Logical().Read("apitokens/creds/" + a.name)
		if err != nil || c == nil {
			t.Fatalf("%s: creds %s: %v", when, a.name, err)
		}
		if tok, _ := c.Data["token"].(string); !works(sim, tok) {
			t.Errorf("%s: the token of %s is refused", when, a.name)
		}
	}
}

// works says whether the provider accepts tok.
func works(sim *simulator.Server, tok string) bool {
	_, err := sim.Validate(tok)
	return tok != "" && err == nil
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return hexSum(b)
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
