//go:build acceptance

package acceptance

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// The HA test's cluster helpers: the active node, bounded calls and waits, and which node's
// plugin sent a request to the simulator.

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
	waitForOr(t, limit, what, func() string { return "" }, cond)
}

func nodeName(nodes []*vaultServer, n *vaultServer) string {
	for i, m := range nodes {
		if m == n {
			return fmt.Sprintf("node%d", i+1)
		}
	}
	return n.addr
}

// tailsOf is the log tail of each of ns, for a failure message.
func tailsOf(nodes []*vaultServer, ns ...*vaultServer) string {
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "\n--- %s log tail ---\n%s", nodeName(nodes, n), n.logTail())
	}
	return b.String()
}

// waitForOr is waitFor whose failure also says more() (the nodes' log tails).
func waitForOr(t *testing.T, limit time.Duration, what string, more func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s%s", limit, what, more())
}

// haCall bounds every request the HA test makes outside its readers: a node stalled by a
// loaded machine must not hold a wait past its limit.
const haCall = 5 * time.Second

func sealStatus(n *vaultServer) (*api.SealStatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), haCall)
	defer cancel()
	return n.client.Sys().SealStatusWithContext(ctx)
}

// isActive reports whether n says it is the active node.
func isActive(n *vaultServer) bool {
	ctx, cancel := context.WithTimeout(context.Background(), haCall)
	defer cancel()
	l, err := n.client.Sys().LeaderWithContext(ctx)
	return err == nil && l.IsSelf
}

// awaitActive polls every one of ns and returns the first that says it is active.
func awaitActive(t *testing.T, ns []*vaultServer, logs func() string) *vaultServer {
	t.Helper()
	var active *vaultServer
	waitForOr(t, 90*time.Second, "an active node", logs, func() bool {
		for _, n := range ns {
			if isActive(n) {
				active = n
				return true
			}
		}
		return false
	})
	return active
}

// onActive runs f against the active node until it succeeds, for up to two minutes: f must
// be safe to repeat (a write whose answer was lost in a leadership change).
func onActive(t *testing.T, nodes []*vaultServer, what string, logs func() string, f func(*api.Client) error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n := awaitActive(t, nodes, logs)
		err := f(n.client)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v (last through %s)%s", what, err, nodeName(nodes, n), logs())
		}
		t.Logf("%s through %s: %v; again", what, nodeName(nodes, n), err)
		time.Sleep(time.Second)
	}
}

// raftVoters is how many voters n reports in the raft configuration (0 on any error).
func raftVoters(n *vaultServer) int {
	ctx, cancel := context.WithTimeout(context.Background(), haCall)
	defer cancel()
	s, err := n.client.Logical().ReadWithContext(ctx, "sys/storage/raft/configuration")
	if err != nil || s == nil {
		return 0
	}
	cfg, _ := s.Data["config"].(map[string]any)
	servers, _ := cfg["servers"].([]any)
	voters := 0
	for _, srv := range servers {
		if m, ok := srv.(map[string]any); ok && m["voter"] == true {
			voters++
		}
	}
	return voters
}

// readAny reads path through the first of ns that answers (standbys forward).
func readAny(ns []*vaultServer, path string) (*api.Secret, error) {
	var err error
	for _, n := range ns {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var s *api.Secret
		s, err = n.client.Logical().ReadWithContext(ctx, path)
		cancel()
		if err == nil {
			return s, nil
		}
	}
	return nil, err
}

// putSender finds the node whose process, or plugin process, holds the client end of the
// connection from peer to the simulator at simAddr; failing that, the node active now. It
// returns the node's index in nodes (whose Vault processes are pids), or -1, and how it was
// found.
func putSender(peer, simAddr string, nodes []*vaultServer, pids []int) (int, string) {
	var why string
	if inode, err := clientSocket(peer, simAddr); err != nil {
		why = err.Error()
	} else {
		owner := map[int]int{} // pid → node index: each Vault and its children
		for _, p := range liveProcs() {
			for i, pid := range pids {
				if p.pid == pid || p.ppid == pid {
					owner[p.pid] = i
				}
			}
		}
		link := fmt.Sprintf("socket:[%d]", inode)
		for pid, i := range owner {
			fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
			for _, fd := range fds {
				if l, _ := os.Readlink(fd); l == link {
					return i, fmt.Sprintf("its process %d (%s) sent the PUT from %s; active now: %v",
						pid, filepath.Base(exeOf(pid)), peer, isActive(nodes[i]))
				}
			}
		}
		why = fmt.Sprintf("no node's process holds %s", link)
	}
	for i, n := range nodes {
		if isActive(n) {
			return i, fmt.Sprintf("active when the PUT arrived (the PUT's sender was not found: %s)", why)
		}
	}
	return -1, why
}

func exeOf(pid int) string {
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return exe
}

// clientSocket is the inode of the TCP socket whose local end is peer and remote end is
// server: the client's end of a connection the server accepted from peer.
func clientSocket(peer, server string) (uint64, error) {
	hexPort := func(hostport string) (string, error) {
		_, p, err := net.SplitHostPort(hostport)
		if err != nil {
			return "", err
		}
		n, err := strconv.Atoi(p)
		return fmt.Sprintf("%04X", n), err
	}
	lp, err := hexPort(peer)
	if err != nil {
		return 0, fmt.Errorf("peer %q: %v", peer, err)
	}
	rp, err := hexPort(server)
	if err != nil {
		return 0, fmt.Errorf("server %q: %v", server, err)
	}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !strings.HasSuffix(f[1], ":"+lp) || !strings.HasSuffix(f[2], ":"+rp) {
				continue
			}
			if inode, err := strconv.ParseUint(f[9], 10, 64); err == nil && inode != 0 {
				return inode, nil
			}
		}
	}
	return 0, fmt.Errorf("no socket from %s to %s", peer, server)
}

// killNodeAlone SIGKILLs Vault process pid only (not its process group), and returns its
// plugin processes (children run from plugins, the node's own plugin directory) at that
// moment, which must then exit by themselves.
func killNodeAlone(pid int, plugins string) []int {
	var kids []int
	for _, p := range liveProcs() {
		if p.ppid == pid && strings.HasPrefix(p.exe, plugins+string(os.PathSeparator)) {
			kids = append(kids, p.pid)
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return kids
}
