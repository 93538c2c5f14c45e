//go:build acceptance

package acceptance

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a live process as /proc shows it.
type proc struct {
	pid, ppid int
	exe       string
}

// liveProcs lists every process that is running (zombies, which have exited and only wait
// to be reaped, are left out).
func liveProcs() []proc {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []proc
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		ppid, _ := strconv.Atoi(f[1])
		exe, _ := os.Readlink(filepath.Join(d, "exe"))
		out = append(out, proc{pid: pid, ppid: ppid, exe: exe})
	}
	return out
}

// isPlugin reports whether exe is one of the suite's plugin binaries.
func isPlugin(exe string) bool { return strings.HasPrefix(exe, pluginDir+string(os.PathSeparator)) }

// pluginChildren lists the plugin processes that Vault process vaultPID started.
func pluginChildren(vaultPID int) []int {
	var pids []int
	for _, p := range liveProcs() {
		if p.ppid == vaultPID && isPlugin(p.exe) {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// awaitExit waits up to limit for every one of pids to stop running, and returns how long
// the last took, or the ones still running.
func awaitExit(pids []int, limit time.Duration) (time.Duration, []int) {
	start := time.Now()
	for {
		var alive []int
		live := liveProcs()
		for _, pid := range pids {
			for _, p := range live {
				if p.pid == pid {
					alive = append(alive, pid)
				}
			}
		}
		if len(alive) == 0 || time.Since(start) > limit {
			return time.Since(start), alive
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killVaultAlone SIGKILLs the Vault process only (not its process group, as an OOM killer,
// kill -9 or a crash would), and returns its plugin processes at that moment, which must
// then exit by themselves.
func killVaultAlone(v *vaultServer) []int {
	kids := pluginChildren(v.cmd.Process.Pid)
	_ = syscall.Kill(v.cmd.Process.Pid, syscall.SIGKILL)
	return kids
}

// pluginExitLimit is how soon a plugin must exit once its Vault is gone.
const pluginExitLimit = 5 * time.Second

// checkPluginsExit fails t unless every one of pids exits within pluginExitLimit, and
// returns how long that took.
func checkPluginsExit(t testing.TB, pids []int) time.Duration {
	t.Helper()
	took, alive := awaitExit(pids, pluginExitLimit)
	if len(alive) > 0 {
		t.Errorf("plugin processes %v still run %s after their Vault was killed", alive, pluginExitLimit)
	}
	return took
}

var (
	startedMu sync.Mutex
	started   []int // every Vault process the suite started
)

// leftovers lists the suite's own processes still running once it is done: any Vault it
// started, and any process of its plugin binaries.
func leftovers() []string {
	startedMu.Lock()
	defer startedMu.Unlock()
	var out []string
	for _, p := range liveProcs() {
		for _, pid := range started {
			if p.pid == pid {
				out = append(out, fmt.Sprintf("vault %d", pid))
			}
		}
		if isPlugin(p.exe) {
			out = append(out, fmt.Sprintf("plugin %d (%s)", p.pid, filepath.Base(p.exe)))
		}
	}
	return out
}

// Two mounts of the plugin are served by one multiplexed process; and a Vault that dies
// (SIGKILL to the Vault process alone) leaves no plugin process behind: every one it started
// exits within pluginExitLimit.
func TestPluginExitsWhenVaultIsKilled(t *testing.T) {
	v := startDev(t)
	v.registerAndEnable("apitokens", version1)
	v.registerAndEnable("apitokens-2", version1)
	_, sim, url := shared(t) // a simulator to read from
	accts, _, _ := seedAccounts(sim, url, "orphan")
	for _, mount := range []string{"apitokens", "apitokens-2"} { // both mounts serve, so both run
		if _, err := v.client.Logical().Write(mount+"/config/"+accts[0].name, accts[0].config); err != nil {
			t.Fatal(err)
		}
		if _, err := v.client.Logical().Read(mount + "/creds/" + accts[0].name); err != nil {
			t.Fatal(err)
		}
	}
	kids := killVaultAlone(v)
	if len(kids) != 1 {
		t.Fatalf("two mounts of the plugin run in %d processes, want 1 (multiplexed)", len(kids))
	}
	<-v.done
	took := checkPluginsExit(t, kids)
	t.Logf("SIGKILL to Vault alone: its %d plugin process(es) exited within %s", len(kids), took.Round(time.Millisecond))
}

// orphanedPlugins lists plugin processes whose parent is not a running Vault of the suite's.
func orphanedPlugins() []int {
	live := liveProcs()
	running := map[int]bool{}
	for _, p := range live {
		running[p.pid] = true
	}
	startedMu.Lock()
	defer startedMu.Unlock()
	var pids []int
	for _, p := range live {
		if !isPlugin(p.exe) {
			continue
		}
		parentIsVault := false
		for _, v := range started {
			parentIsVault = parentIsVault || (v == p.ppid && running[v])
		}
		if !parentIsVault {
			pids = append(pids, p.pid)
		}
	}
	return pids
}
