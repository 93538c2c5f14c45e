//go:build acceptance

package acceptance

import (
	"net/http/httptest"
	"reflect"
	"syscall"
	"testing"

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

// A second build with another version is registered, the mount tuned to it and reloaded:
// the configs are intact and creds are served by the new version.
func TestUpgradePluginVersion(t *testing.T) {
	v, sim, url := shared(t)
	const mount = "apitokens-upgrade"
	v.registerAndEnable(mount, version1)
	accts, _, _ := seedAccounts(sim, url, "upgrade")
	for _, a := range accts {
		if _, err := v.client.Logical().Write(mount+"/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
	}
	v.cli(false, "plugin", "register", "-sha256="+shas[version2], "-version="+version2,
		"-command="+pluginName+"-"+version2, "secret", pluginName)
	v.cli(false, "secrets", "tune", "-plugin-version="+version2, mount+"/")
	// (The 1.19.5 CLI sends "-mounts" without "-type" to a route its server lacks.)
	v.cli(false, "plugin", "reload", "-type=secret", "-plugin="+pluginName)

	m := v.cliJSON("secrets", "list", "-detailed")[mount+"/"].(map[string]any)
	if m["running_plugin_version"] != version2 || m["running_sha256"] != shas[version2] {
		t.Fatalf("after upgrade the mount runs %v (%v)", m["running_plugin_version"], m["running_sha256"])
	}
	for _, a := range accts {
		c, err := v.client.Logical().Read(mount + "/creds/" + a.name)
		if err != nil {
			t.Fatalf("%s after upgrade: %v", a.name, err)
		}
		if _, err := sim.Validate(c.Data["token"].(string)); err != nil {
			t.Errorf("%s: token after upgrade refused: %v", a.name, err)
		}
	}
}
