//go:build acceptance

// Package acceptance drives the plugin through a real Vault server: the Go vault/api client,
// the vault CLI and Vault Agent, against the provider simulator served from this process.
// Run with `make testacc` (VAULT_BIN names the vault binary; scripts/vault.sh provides it).
package acceptance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

const (
	pluginName = "vault-plugin-secrets-apitokens"
	version1   = "v0.1.0-acc"
	version2   = "v0.2.0-acc"
	// versionCrash is built with the testhooks tag: only the crash and scheduling tests run it.
	versionCrash = "v0.1.0-crash"
)

// The variables the testhooks build reads (testhooks.go).
const (
	crashpointEnv = "APITOKENS_CRASHPOINT"
	noLeaseCapEnv = "APITOKENS_TEST_NO_ROTATION_LEASE_CAP"
)

var (
	vaultBin  string
	pluginDir string
	shas      = map[string]string{} // version → sha256 of its binary
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	vaultBin = os.Getenv("VAULT_BIN")
	if vaultBin == "" {
		fmt.Fprintln(os.Stderr, "VAULT_BIN is not set: run `make testacc` (scripts/vault.sh finds or builds Vault)")
		return 1
	}
	dir, err := os.MkdirTemp("", "apitokens-acc-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	pluginDir = dir
	for _, v := range []string{version1, version2, versionCrash} {
		out := filepath.Join(dir, pluginName+"-"+v)
		tags := ""
		if v == versionCrash {
			tags = "testhooks"
		}
		cmd := exec.Command("go", "build", "-tags", tags, "-ldflags",
			"-X github.com/apitokens/vault-plugin-secrets-apitokens.Version="+v,
			"-o", out, "../cmd/"+pluginName)
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build plugin %s: %v\n%s", v, err, b)
			return 1
		}
		data, err := os.ReadFile(out)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// The kill switch exists only in the crash tests' own build.
		if has := bytes.Contains(data, []byte(crashpointEnv)); has != (v == versionCrash) {
			fmt.Fprintf(os.Stderr, "plugin %s: crash point compiled in = %v\n", v, has)
			return 1
		}
		sum := sha256.Sum256(data)
		shas[v] = hex.EncodeToString(sum[:])
	}
	code := m.Run()
	stopShared()
	// Nothing of the suite's own may outlive it: no Vault, no plugin process.
	deadline := time.Now().Add(pluginExitLimit)
	for left := leftovers(); len(left) > 0; left = leftovers() {
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "FAIL: the suite left processes running: %v\n", left)
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
	return code
}

// vaultServer is one running Vault process and a client logged in with the root token.
type vaultServer struct {
	t       testing.TB
	dir     string
	addr    string
	config  string
	dev     bool
	cmd     *exec.Cmd
	done    chan struct{}
	client  *api.Client
	unseal  string
	logPath string
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDev starts `vault server -dev` with the suite's plugin directory; root token
// "root". extra arguments go to `vault server`.
func startDev(t testing.TB, extra ...string) *vaultServer {
	t.Helper()
	return startDevWithPlugins(t, pluginDir, extra...)
}

// startDevWithPlugins is startDev with the plugin directory plugins.
func startDevWithPlugins(t testing.TB, plugins string, extra ...string) *vaultServer {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	cfg := filepath.Join(dir, "plugins.hcl")
	writeFile(t, cfg, fmt.Sprintf("plugin_directory = %q\n", plugins))
	v := &vaultServer{t: t, dir: dir, addr: fmt.Sprintf("http://127.0.0.1:%d", port), config: cfg, dev: true}
	v.start(append([]string{"server", "-dev", "-dev-root-token-id=root",
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port), "-config=" + cfg}, extra...)...)
	v.waitUp()
	v.client.SetToken("root")
	return v
}

// startPersistent starts Vault on file or raft storage in dir (reused across restarts),
// initialising it on first start and unsealing it every time.
func startPersistent(t testing.TB, storage, dir string, port, clusterPort int) *vaultServer {
	t.Helper()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	stanza := fmt.Sprintf("storage \"file\" {\n  path = %q\n}\n", data)
	if storage == "raft" {
		stanza = fmt.Sprintf("storage \"raft\" {\n  path = %q\n  node_id = \"node1\"\n}\n", data)
	}
	v := startServer(t, dir, stanza, port, clusterPort, pluginDir)
	v.initAndUnseal()
	return v
}

// startServer writes a server config (the storage stanza, a loopback listener whose
// cluster_address matches cluster_addr, the plugin directory) and starts Vault on it.
func startServer(t testing.TB, dir, storage string, port, clusterPort int, plugins string) *vaultServer {
	t.Helper()
	cfg := filepath.Join(dir, "vault.hcl")
	writeFile(t, cfg, storage+fmt.Sprintf(`listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "http://127.0.0.1:%d"
plugin_directory = %q
disable_mlock    = true
`, port, clusterPort, port, clusterPort, plugins))
	v := &vaultServer{t: t, dir: dir, addr: fmt.Sprintf("http://127.0.0.1:%d", port), config: cfg}
	v.start("server", "-config="+cfg)
	v.waitUp()
	return v
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs vault in its own process group, so that stopping it also stops its plugins.
func (v *vaultServer) start(args ...string) {
	v.t.Helper()
	v.logPath = filepath.Join(v.dir, fmt.Sprintf("vault-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(v.logPath)
	if err != nil {
		v.t.Fatal(err)
	}
	cmd := exec.Command(vaultBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "HOME="+v.dir, "VAULT_ADDR="+v.addr)
	// Its own process group, so stopping it stops its plugins; killed if this test binary
	// dies (a timeout or a panic) so that no server outlives the suite.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		v.t.Fatal(err)
	}
	v.cmd, v.done = cmd, make(chan struct{})
	startedMu.Lock()
	started = append(started, cmd.Process.Pid)
	startedMu.Unlock()
	go func() { _ = cmd.Wait(); logf.Close(); close(v.done) }()
	v.t.Cleanup(func() { v.stop(syscall.SIGKILL) })

	conf := api.DefaultConfig()
	conf.Address = v.addr
	conf.MaxRetries = 0
	c, err := api.NewClient(conf)
	if err != nil {
		v.t.Fatal(err)
	}
	c.SetToken("")
	v.client = c
}

// stop signals the process group and waits for it to exit.
func (v *vaultServer) stop(sig syscall.Signal) {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-v.cmd.Process.Pid, sig)
	select {
	case <-v.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
		<-v.done
	}
	v.cmd = nil
}

func (v *vaultServer) waitUp() {
	v.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-v.done:
			v.t.Fatalf("vault exited at start:\n%s", v.logTail())
		default:
		}
		if _, err := v.client.Sys().SealStatus(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	v.t.Fatalf("vault did not answer within 60s:\n%s", v.logTail())
}

func (v *vaultServer) logTail() string {
	b, _ := os.ReadFile(v.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (v *vaultServer) initAndUnseal() {
	v.t.Helper()
	keysFile := filepath.Join(v.dir, "init.json")
	var init api.InitResponse
	if b, err := os.ReadFile(keysFile); err == nil {
		if err := json.Unmarshal(b, &init); err != nil {
			v.t.Fatal(err)
		}
	} else {
		resp, err := v.client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil {
			v.t.Fatal(err)
		}
		init = *resp
		b, _ := json.Marshal(init)
		writeFile(v.t, keysFile, string(b))
	}
	if _, err := v.client.Sys().Unseal(init.Keys[0]); err != nil {
		v.t.Fatal(err)
	}
	v.client.SetToken(init.RootToken)
	// Wait until this node is active (raft elects itself) and can serve writes.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if l, err := v.client.Sys().Leader(); err == nil && (l.IsSelf || !l.HAEnabled) {
			if _, err := v.client.Sys().ListMounts(); err == nil {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	v.t.Fatalf("vault did not become active:\n%s", v.logTail())
}

// cli runs the vault CLI against this server with the root token and returns stdout; a
// non-zero exit fails the test unless wantErr, in which case stderr is returned.
func (v *vaultServer) cli(wantErr bool, args ...string) string {
	v.t.Helper()
	cmd := exec.Command(vaultBin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.addr, "VAULT_TOKEN="+v.client.Token(), "HOME="+v.dir)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if (err != nil) != wantErr {
		v.t.Fatalf("vault %s: err=%v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	if wantErr {
		return errOut.String()
	}
	return out.String()
}

// cliJSON runs a CLI command with -format=json and decodes its output.
func (v *vaultServer) cliJSON(args ...string) map[string]any {
	v.t.Helper()
	full := append([]string{args[0], "-format=json"}, args[1:]...)
	if len(args) > 1 && (args[0] == "secrets" || args[0] == "plugin" || args[0] == "lease") {
		full = append([]string{args[0], args[1], "-format=json"}, args[2:]...)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(v.cli(false, full...)), &m); err != nil {
		v.t.Fatalf("vault %v: output is not JSON: %v", args, err)
	}
	return m
}

// registerAndEnable registers version ver by sha256 and mounts it at path.
func (v *vaultServer) registerAndEnable(path, ver string) {
	v.t.Helper()
	ctx := context.Background()
	if err := v.client.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
		Name: pluginName, Type: api.PluginTypeSecrets, Command: pluginName + "-" + ver,
		SHA256: shas[ver], Version: ver,
	}); err != nil {
		v.t.Fatal(err)
	}
	if err := v.client.Sys().MountWithContext(ctx, path, &api.MountInput{Type: pluginName,
		Config: api.MountConfigInput{PluginVersion: ver}}); err != nil {
		v.t.Fatal(err)
	}
}

// The shared dev server and simulator, started once for the tests that need no restart.
var (
	sharedOnce sync.Once
	sharedV    *vaultServer
	sharedSim  *simulator.Server
	sharedSrv  *httptest.Server
	sharedErr  string
	sharedStop []func()
)

// sharedT outlives any one test: cleanup runs from TestMain.
type sharedT struct{ testing.TB }

func (s sharedT) Cleanup(f func()) { sharedStop = append(sharedStop, f) }
func (s sharedT) TempDir() string {
	d, err := os.MkdirTemp("", "apitokens-acc-")
	if err != nil {
		panic(err)
	}
	sharedStop = append(sharedStop, func() { os.RemoveAll(d) })
	return d
}

func stopShared() {
	for i := len(sharedStop) - 1; i >= 0; i-- {
		sharedStop[i]()
	}
}

// sharedLifetimes are deliberately not the documented ones: leases must follow the provider.
var sharedLifetimes = simulator.Lifetimes{OffBlocks: 23 * time.Minute, BloqClient: 37 * time.Minute,
	BloqAccount: 5 * time.Hour, OpsNow: 29 * time.Minute}

// shared returns the dev server (with the plugin at apitokens/) and the simulator.
func shared(t *testing.T) (*vaultServer, *simulator.Server, string) {
	t.Helper()
	sharedOnce.Do(func() {
		sharedSim = simulator.New()
		sharedSim.SetLifetimes(sharedLifetimes)
		sharedSrv = httptest.NewServer(sharedSim.Handler())
		sharedStop = append(sharedStop, sharedSrv.Close)
		sharedV = startDev(sharedT{t})
		sharedV.t = sharedT{t}
		sharedV.registerAndEnable("apitokens", version1)
	})
	if sharedV == nil {
		t.Fatal("the shared Vault did not start")
	}
	sharedV.t = t
	return sharedV, sharedSim, sharedSrv.URL
}
