//go:build acceptance

package acceptance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// startRaftNode starts one node of a three-node integrated-storage cluster; every node
// retry-joins the first. The listener's cluster_address must match cluster_addr, or the
// leader cannot reach its followers.
func startRaftNode(t *testing.T, id int, dir string, port, cport, leaderPort int) *vaultServer {
	t.Helper()
	data, plugins := filepath.Join(dir, "data"), filepath.Join(dir, "plugins")
	for _, d := range []string{data, plugins} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Each node has its own plugin directory holding the same binary, as on real hosts.
	for _, ver := range []string{version1, version2} {
		name := pluginName + "-" + ver
		b, err := os.ReadFile(filepath.Join(pluginDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(plugins, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	storage := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = "node%d"
  performance_multiplier = 1
  retry_join {
    leader_api_addr = "http://127.0.0.1:%d"
  }
}
`, data, id, leaderPort)
	return startServer(t, dir, storage, port, cport, plugins)
}

// Under a steady creds-read load through all three nodes, the leader dies (SIGKILL) in the
// middle of an OffBlocks rotation, after the provider applied the new pair. Reads resume
// through the new leader within a bound the test prints, configs are intact, and the
// interrupted rotation is settled on the new leader from the replicated WAL.
func TestHALeaderDiesMidRotation(t *testing.T) {
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	accts, _, ids := seedAccounts(sim, srv.URL, "ha")

	root := t.TempDir()
	ports := [3][2]int{}
	for i := range ports {
		ports[i] = [2]int{freePort(t), freePort(t)}
	}
	nodes := make([]*vaultServer, 3)
	for i := range nodes {
		nodes[i] = startRaftNode(t, i+1, filepath.Join(root, fmt.Sprint(i+1)), ports[i][0], ports[i][1], ports[0][0])
	}
	nodes[0].initAndUnseal()
	init := readInit(t, nodes[0])
	for _, n := range nodes[1:] {
		n.client.SetToken(init.RootToken)
		// Once its retry_join has reached the leader the node is initialised; one unseal
		// key then answers the join's challenge and unseals it.
		waitFor(t, 60*time.Second, "a standby to join", func() bool {
			s, err := n.client.Sys().SealStatus()
			return err == nil && s.Initialized
		})
		if _, err := n.client.Sys().Unseal(init.Keys[0]); err != nil {
			t.Fatalf("unseal a joined node: %v\n%s", err, n.logTail())
		}
	}
	waitFor(t, 120*time.Second, "three raft voters, all unsealed", func() bool {
		for _, n := range nodes {
			if s, err := n.client.Sys().SealStatus(); err != nil || s.Sealed {
				return false
			}
		}
		s, err := nodes[0].client.Logical().Read("sys/storage/raft/configuration")
		if err != nil || s == nil {
			return false
		}
		servers, _ := s.Data["config"].(map[string]any)["servers"].([]any)
		voters := 0
		for _, srv := range servers {
			if m, ok := srv.(map[string]any); ok && m["voter"] == true {
				voters++
			}
		}
		return voters == 3
	})
	leader := nodes[0]
	if l, err := leader.client.Sys().Leader(); err != nil || !l.IsSelf {
		t.Fatalf("node1 is not the leader: %v %v", l, err)
	}
	leader.registerAndEnable("apitokens", version1)
	for _, a := range accts {
		if _, err := leader.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
	}

	// Steady load: readers on every node (standbys forward to the active node).
	var ok, failed atomic.Int64
	var lastFail atomic.Int64 // unix nanos of the latest failed read on a surviving node
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, n := range nodes {
		survivor := i != 0 // nodes[0] is the leader that will be killed
		for _, a := range accts {
			wg.Add(1)
			go func(c *api.Client, name string, survivor bool) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					s, err := c.Logical().ReadWithContext(ctx, "apitokens/creds/"+name)
					cancel()
					if err == nil && s != nil {
						if _, verr := sim.Validate(s.Data["token"].(string)); verr == nil {
							ok.Add(1)
							time.Sleep(50 * time.Millisecond)
							continue
						}
					}
					if survivor { // the killed node's readers fail until the end, by design
						failed.Add(1)
						lastFail.Store(time.Now().UnixNano())
					}
					time.Sleep(100 * time.Millisecond)
				}
			}(cloneClient(t, n), a.name, survivor)
		}
	}
	time.Sleep(2 * time.Second)
	if ok.Load() == 0 {
		t.Fatal("no read succeeded before the failover")
	}

	// The leader dies while the provider holds the rotation's PUT, already applied.
	var killedAt atomic.Int64
	kids := make(chan []int, 1)
	sim.Inject(simulator.RouteOffBlocksCredentials, killOn(simulator.Fault{AfterApply: true}, func() {
		killedAt.Store(time.Now().UnixNano())
		kids <- killVaultAlone(leader) // the leader alone: its plugins must exit by themselves
	}))
	_, _ = leader.client.Logical().Write("apitokens/rotate-root/"+accts[0].name, nil)
	<-leader.done
	t.Logf("the dead leader's plugin processes exited within %s", checkPluginsExit(t, <-kids).Round(time.Millisecond))
	sim.ClearFaults()
	okAtKill := ok.Load()

	survivors := []*vaultServer{nodes[1], nodes[2]}
	var active *vaultServer
	waitFor(t, 90*time.Second, "a new active node", func() bool {
		for _, n := range survivors {
			if l, err := n.client.Sys().Leader(); err == nil && l.IsSelf {
				active = n
				return true
			}
		}
		return false
	})
	waitFor(t, 90*time.Second, "reads to resume", func() bool { return ok.Load() > okAtKill+10 })
	time.Sleep(2 * time.Second) // a window of steady reads after the failover
	close(stop)
	wg.Wait()
	bound := max(0, time.Unix(0, lastFail.Load()).Sub(time.Unix(0, killedAt.Load())))
	t.Logf("leader killed mid-rotation; on the surviving nodes the last failed read came %s after the kill "+
		"(%d reads succeeded in all; %d failed on the survivors)", bound.Round(time.Millisecond), ok.Load(), failed.Load())
	if bound > 90*time.Second {
		t.Errorf("reads took %s to resume", bound)
	}

	// The interrupted rotation was settled on the new leader: the stored pair is the
	// provider's, which took the new one before the old leader died.
	cfg, err := active.client.Logical().Read("apitokens/config/" + accts[0].name)
	if err != nil || cfg == nil {
		t.Fatalf("config on the new leader: %v", err)
	}
	if key, _ := sim.OffBlocksPair(ids["offblocks"]); cfg.Data["api_key"] != key || key == accts[0].config["api_key"] {
		t.Errorf("stored api_key %v, provider holds %s (rotated from %v)", cfg.Data["api_key"], key, accts[0].config["api_key"])
	}
	for _, a := range accts {
		if s, err := active.client.Logical().Read("apitokens/config/" + a.name); err != nil || s == nil {
			t.Errorf("config %s lost in the failover: %v", a.name, err)
		}
	}
}

func readInit(t *testing.T, v *vaultServer) api.InitResponse {
	t.Helper()
	var init api.InitResponse
	b, err := os.ReadFile(filepath.Join(v.dir, "init.json"))
	if err == nil {
		err = json.Unmarshal(b, &init)
	}
	if err != nil {
		t.Fatal(err)
	}
	return init
}

func cloneClient(t *testing.T, v *vaultServer) *api.Client {
	t.Helper()
	c, err := v.client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(v.client.Token())
	return c
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", limit, what)
}
