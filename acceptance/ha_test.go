//go:build acceptance

package acceptance

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// raftPerformanceMultiplier scales Raft's timing: heartbeat and election timeouts of 1s times
// it, a leader lease of 0.5s times it. 5 is Vault's default, what a production cluster runs.
// The most aggressive, 1, made leadership flap on a loaded machine (a node stalled by the CPU
// for a second loses it), so that the active node changed under the test; 5 rides out such
// stalls, and still detects the dead leader within about 10s to 20s, well inside the test's
// 90s bound on reads resuming, so the bound still means something.
const raftPerformanceMultiplier = 5

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
  performance_multiplier = %d
  retry_join {
    leader_api_addr = "http://127.0.0.1:%d"
  }
}
`, data, id, raftPerformanceMultiplier, leaderPort)
	return startServer(t, dir, storage, port, cport, plugins)
}

// Under a steady creds-read load through all three nodes, the active node dies (SIGKILL) in
// the middle of an OffBlocks rotation, after the provider applied the new pair. Reads resume
// through the survivors within a bound the test prints, configs are intact, and the
// interrupted rotation is settled on the new leader from the replicated WAL.
//
// Leadership may move at any time on a loaded machine, so the test never assumes which node
// is active: it writes through whichever is, and the fault kills the node whose plugin sent
// the rotation's PUT, found from the connection the PUT came on. Every wait is bounded.
func TestHALeaderDiesMidRotation(t *testing.T) {
	sim := simulator.New()
	// The peer of the latest OffBlocks PUT: the fault's callback runs in that request's
	// handler, and the rotation is the only PUT, so this is the connection it came on.
	var putPeer atomic.Value // string, host:port
	handler := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == simulator.OffBlocksPrefix+"/auth/credentials" {
			putPeer.Store(r.RemoteAddr)
		}
		handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	// Deferred after srv.Close, so it runs first: a held PUT whose sender was not killed (the
	// test failed before) is let go, or Close would wait for it.
	release := make(chan struct{})
	defer close(release)
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
	logs := func() string { return tailsOf(nodes, nodes...) }
	nodes[0].initAndUnseal()
	init := readInit(t, nodes[0])
	for _, n := range nodes[1:] {
		n.client.SetToken(init.RootToken)
		// Once its retry_join has reached the leader the node is initialised; one unseal
		// key then answers the join's challenge and unseals it.
		waitForOr(t, 60*time.Second, "a standby to join", logs, func() bool {
			s, err := sealStatus(n)
			return err == nil && s.Initialized
		})
		waitForOr(t, 60*time.Second, "a joined node to unseal", logs, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := n.client.Sys().UnsealWithContext(ctx, init.Keys[0])
			if err != nil {
				t.Logf("unseal %s: %v", nodeName(nodes, n), err)
			}
			return err == nil && !s.Sealed
		})
	}
	waitForOr(t, 120*time.Second, "three raft voters, all unsealed", logs, func() bool {
		for _, n := range nodes {
			if s, err := sealStatus(n); err != nil || s.Sealed {
				return false
			}
		}
		for _, n := range nodes { // any node answers (a standby forwards)
			if raftVoters(n) == 3 {
				return true
			}
		}
		return false
	})
	t.Logf("%s is active", nodeName(nodes, awaitActive(t, nodes, logs)))

	// Setup writes go to whichever node is active at the time, again if leadership moved.
	onActive(t, nodes, "register and mount the plugin", logs, func(c *api.Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
			Name: pluginName, Type: api.PluginTypeSecrets, Command: pluginName + "-" + version1,
			SHA256: shas[version1], Version: version1,
		}); err != nil {
			return err
		}
		mounts, err := c.Sys().ListMountsWithContext(ctx)
		if err != nil {
			return err
		}
		if _, ok := mounts["apitokens/"]; ok { // an earlier try mounted it, but its answer was lost
			return nil
		}
		return c.Sys().MountWithContext(ctx, "apitokens", &api.MountInput{Type: pluginName,
			Config: api.MountConfigInput{PluginVersion: version1}})
	})
	for _, a := range accts {
		onActive(t, nodes, "write config "+a.name, logs, func(c *api.Client) error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := c.Logical().WriteWithContext(ctx, "apitokens/config/"+a.name, a.config)
			return err
		})
	}

	// Steady load: readers on every node (standbys forward to the active node). Failures
	// are kept per node: which node dies is known only when it does.
	var ok atomic.Int64
	var failed, lastFail [3]atomic.Int64 // per node; lastFail in unix nanos
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopReaders := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopReaders()
	for i, n := range nodes {
		for _, a := range accts {
			wg.Add(1)
			go func(c *api.Client, name string, i int) {
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
						if tok, _ := s.Data["token"].(string); tok != "" {
							if _, verr := sim.Validate(tok); verr == nil {
								ok.Add(1)
								time.Sleep(50 * time.Millisecond)
								continue
							}
						}
					}
					failed[i].Add(1)
					lastFail[i].Store(time.Now().UnixNano())
					time.Sleep(100 * time.Millisecond)
				}
			}(cloneClient(t, n), a.name, i)
		}
	}
	waitForOr(t, 60*time.Second, "a first successful read", logs, func() bool { return ok.Load() > 0 })
	time.Sleep(2 * time.Second)

	// The node running the rotation dies while the provider holds its PUT, already applied.
	// It is the one whose plugin process holds the PUT's connection (the node active then).
	pids := make([]int, len(nodes))
	for i, n := range nodes {
		pids[i] = n.cmd.Process.Pid
	}
	type killing struct {
		node    int // index into nodes; -1 when the sender was not found
		how     string
		at      time.Time
		plugins []int // the killed node's plugin processes at the kill
	}
	hit := make(chan struct{})
	killed := make(chan killing, 1)
	sim.Inject(simulator.RouteOffBlocksCredentials, killOn(simulator.Fault{AfterApply: true, Release: release}, func() {
		close(hit)
		peer, _ := putPeer.Load().(string)
		k := killing{node: -1}
		k.node, k.how = putSender(peer, srv.Listener.Addr().String(), nodes, pids)
		if k.node >= 0 {
			k.at = time.Now()
			// The node alone: its plugins must exit by themselves.
			k.plugins = killNodeAlone(pids[k.node], filepath.Join(nodes[k.node].dir, "plugins"))
		}
		killed <- k
	}))
	rotate := "apitokens/rotate-root/" + accts[0].name
	const attempts = 5
	for attempt := 1; ; attempt++ {
		n := awaitActive(t, nodes, logs)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		_, err := n.client.Logical().WriteWithContext(ctx, rotate, nil)
		cancel()
		if err == nil {
			select {
			case <-hit:
			default:
				t.Fatalf("rotate-root through %s returned without the provider holding its PUT%s", nodeName(nodes, n), logs())
			}
		}
		// Before the PUT a write can fail (forwarded while leadership moves): give a rotation
		// that still runs a moment to reach the PUT, then send it again.
		select {
		case <-hit:
		case <-time.After(10 * time.Second):
		}
		select {
		case <-hit:
			t.Logf("rotate-root sent through %s (attempt %d) ended with the kill: %v", nodeName(nodes, n), attempt, err)
		default:
			if attempt == attempts {
				t.Fatalf("rotate-root never reached the provider's PUT in %d attempts; last through %s: %v%s",
					attempts, nodeName(nodes, n), err, logs())
			}
			t.Logf("rotate-root through %s failed before the PUT (attempt %d): %v; sending it again", nodeName(nodes, n), attempt, err)
			continue
		}
		break
	}
	var k killing
	select {
	case k = <-killed:
	case <-time.After(60 * time.Second):
		t.Fatalf("the fault fired, but the kill did not happen within 60s%s", logs())
	}
	if k.node < 0 {
		t.Fatalf("could not tell which node sent the rotation's PUT (%s)%s", k.how, logs())
	}
	dead := nodes[k.node]
	t.Logf("killed %s mid-rotation: %s", nodeName(nodes, dead), k.how)
	select {
	case <-dead.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still runs 30s after SIGKILL%s", nodeName(nodes, dead), tailsOf(nodes, dead))
	}
	if len(k.plugins) == 0 {
		t.Errorf("%s ran no plugin process when its plugin sent the PUT", nodeName(nodes, dead))
	}
	t.Logf("the dead node's %d plugin process(es) exited within %s", len(k.plugins), checkPluginsExit(t, k.plugins).Round(time.Millisecond))
	sim.ClearFaults()
	okAtKill := ok.Load()

	var survivors []*vaultServer
	for i, n := range nodes {
		if i != k.node {
			survivors = append(survivors, n)
		}
	}
	active := awaitActive(t, survivors, logs)
	t.Logf("%s is active after the kill", nodeName(nodes, active))
	waitForOr(t, 90*time.Second, "reads to resume", logs, func() bool { return ok.Load() > okAtKill+10 })
	time.Sleep(2 * time.Second) // a window of steady reads after the failover
	stopReaders()
	var last int64
	var perNode []string
	for i, n := range nodes {
		note := ""
		if i == k.node {
			note = " (killed; its readers fail from the kill on, by design)"
		} else {
			last = max(last, lastFail[i].Load())
		}
		perNode = append(perNode, fmt.Sprintf("%s %d%s", nodeName(nodes, n), failed[i].Load(), note))
	}
	bound := max(0, time.Unix(0, last).Sub(k.at))
	t.Logf("on the surviving nodes the last failed read came %s after the kill "+
		"(%d reads succeeded in all; failed reads: %s)", bound.Round(time.Millisecond), ok.Load(), strings.Join(perNode, ", "))
	if bound > 90*time.Second {
		t.Errorf("reads took %s to resume", bound)
	}

	// The interrupted rotation was settled on the new leader: the stored pair is the
	// provider's, which took the new one before the old leader died. Reads through the
	// survivors are retried a while: leadership may still move.
	key, _ := sim.OffBlocksPair(ids["offblocks"])
	if key == accts[0].config["api_key"] {
		t.Errorf("the provider still holds the pair from before the rotation")
	}
	var stored any
	waitForOr(t, 30*time.Second, "the stored api_key to be the provider's new one", func() string {
		return fmt.Sprintf(" (stored %v, provider holds %s)%s", stored, key, tailsOf(nodes, survivors...))
	}, func() bool {
		cfg, err := readAny(survivors, "apitokens/config/"+accts[0].name)
		if err == nil && cfg != nil {
			stored = cfg.Data["api_key"]
		}
		return stored == key
	})
	for _, a := range accts {
		if s, err := readAny(survivors, "apitokens/config/"+a.name); err != nil || s == nil {
			t.Errorf("config %s lost in the failover: %v", a.name, err)
		}
	}
}
