//go:build acceptance

package acceptance

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// examples/agent/agent.hcl, copied as is, run by Vault Agent with a token of the reader
// policy: it renders a token the provider accepts for each of its three configs (the names
// `make dev` uses), mode 0600, and after an OffBlocks rotate-root a valid token again within
// the 20 s lease.
func TestExampleAgentConfig(t *testing.T) {
	_, sim, url := shared(t)
	v := startDev(t) // its own Vault: the example's config names are fixed
	v.registerAndEnable("apitokens", version1)
	accts, _, _ := seedAccounts(sim, url, "exagent")
	configs := map[string]account{"offblocks": accts[0], "bloq": accts[1], "opsnow": accts[4]}
	configs["offblocks"].config["max_ttl"] = "20s"
	for name, a := range configs {
		if _, err := v.client.Logical().Write("apitokens/config/"+name, a.config); err != nil {
			t.Fatal(err)
		}
	}
	r := withPolicy(t, v, "apitokens-reader", "../examples/policy-reader.hcl")

	dir := t.TempDir()
	hcl, err := os.ReadFile("../examples/agent/agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "agent.hcl"), string(hcl))
	writeFile(t, filepath.Join(dir, "vault-token"), r.client.Token())
	logs := startProcess(t, dir, []string{"VAULT_ADDR=" + v.addr}, vaultBin, "agent", "-config=agent.hcl")
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, "tokens", name+".token"))
		return string(b)
	}
	for name := range configs {
		waitFor(t, 30*time.Second, "the agent to render "+name, func() bool { return read(name) != "" })
		if _, err := sim.Validate(read(name)); err != nil {
			t.Errorf("%s: the rendered token is refused: %v\n%s", name, err, logs)
		}
		if st, err := os.Stat(filepath.Join(dir, "tokens", name+".token")); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: token file mode %v (%v), want 0600", name, st.Mode().Perm(), err)
		}
	}

	old := read("offblocks")
	if _, err := v.client.Logical().Write("apitokens/rotate-root/offblocks", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Validate(old); err == nil {
		t.Fatal("the pre-rotation token still works: the test proves nothing")
	}
	start := time.Now()
	waitFor(t, 25*time.Second, "a valid offblocks token after rotate-root", func() bool {
		_, err := sim.Validate(read("offblocks"))
		return err == nil
	})
	t.Logf("after rotate-root the agent rendered a valid token in %s (lease 20s)", time.Since(start).Round(time.Second))
}

// examples/app, built and run against the real Vault with a reader token and a config of a
// simulator with 20 s leases: it retries with backoff while Vault is unreachable, reads a
// new token before the lease ends, holds a valid token again within the lease (in practice
// within its call interval) after an OffBlocks rotate-root, and keeps its token while the
// provider is down, reading a new one when it is back. Its log never holds a token.
func TestExampleAppKeepsAValidToken(t *testing.T) {
	v, _, _ := shared(t)
	sim := simulator.New() // its own, for the outage
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	accts, _, _ := seedAccounts(sim, srv.URL, "app")
	a := accts[0]
	a.config["max_ttl"], a.config["request_timeout"] = "20s", "2s"
	if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
		t.Fatal(err)
	}
	r := withPolicy(t, v, "apitokens-reader", "../examples/policy-reader.hcl")

	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "app"), "../examples/app").CombinedOutput(); err != nil {
		t.Fatalf("build examples/app: %v\n%s", err, out)
	}
	// Vault is unreachable at first: the app's address is a port where nothing listens yet.
	port := freePort(t)
	tokenFile := filepath.Join(dir, "token")
	logs := startProcess(t, dir, []string{
		"VAULT_ADDR=http://127.0.0.1:" + strconv.Itoa(port), "VAULT_TOKEN=" + r.client.Token(),
		"APP_CREDS_PATH=apitokens/creds/" + a.name, "APP_TOKEN_FILE=" + tokenFile,
		"APP_PROVIDER_URL=" + srv.URL + "/_sim/validate", "APP_PROVIDER_METHOD=POST", "APP_CALL_EVERY=1s",
	}, filepath.Join(dir, "app"))
	held := func() string { b, _ := os.ReadFile(tokenFile); return string(b) }
	valid := func() bool { _, err := sim.Validate(held()); return err == nil }
	seen := map[string]bool{}

	waitFor(t, 15*time.Second, "the app to retry against the unreachable Vault", func() bool {
		return strings.Count(logs.String(), "reading the token failed; retrying") >= 3
	})
	if held() != "" {
		t.Fatal("a token file exists although Vault was unreachable")
	}
	proxyTo(t, port, v.addr) // Vault is back
	waitFor(t, 20*time.Second, "a valid token once Vault is reachable", valid)
	first, firstAt := held(), time.Now()
	seen[first] = true

	// The lease (20 s) ends: the app reads a new token before it does.
	waitFor(t, 20*time.Second, "a new token before the 20s lease ends", func() bool { return held() != first })
	t.Logf("the app read a new token %s after the first (lease 20s)", time.Since(firstAt).Round(100*time.Millisecond))
	if !valid() {
		t.Fatal("the app's second token is refused")
	}

	// rotate-root: OffBlocks kills every earlier token, the one the app holds included.
	before := held()
	seen[before] = true
	if _, err := v.client.Logical().Write("apitokens/rotate-root/"+a.name, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Validate(before); err == nil {
		t.Fatal("the pre-rotation token still works: the test proves nothing")
	}
	start := time.Now()
	waitFor(t, 20*time.Second, "a valid token within the 20s lease after rotate-root", valid)
	t.Logf("after rotate-root the app held a valid token again in %s", time.Since(start).Round(100*time.Millisecond))
	seen[held()] = true

	// The provider goes down: Vault answers the app's next read with a 502, the app retries
	// with backoff and keeps its (still valid) token; once the provider is back, a new one.
	sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: http.StatusServiceUnavailable, Times: -1})
	during := held()
	waitFor(t, 25*time.Second, "a read failing with Vault's 502", func() bool {
		return strings.Contains(logs.String(), "status=502")
	})
	time.Sleep(2 * time.Second) // a few retries
	if held() != during || !valid() {
		t.Fatal("during the provider's outage the app lost its valid token")
	}
	sim.ClearFaults()
	waitFor(t, 20*time.Second, "a new token once the provider is back", func() bool { return held() != during && valid() })
	seen[held()] = true

	for tok := range seen {
		if strings.Contains(logs.String(), tok) {
			t.Fatal("a token is in the app's log")
		}
	}
	if strings.Contains(logs.String(), r.client.Token()) {
		t.Fatal("the Vault token is in the app's log")
	}
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startProcess runs name args in dir with env added, in its own process group and killed if
// the test binary dies. When the test ends it gets SIGTERM and must exit cleanly (status 0)
// within 10 s, else it is killed and the test fails; its output is logged if the test failed.
func startProcess(t *testing.T, dir string, env []string, name string, args ...string) *syncBuffer {
	t.Helper()
	logs := &syncBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logs, logs
	cmd.Env = append(append(os.Environ(), "HOME="+dir), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s exited with %v on SIGTERM", filepath.Base(name), err)
			}
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("%s did not exit within 10s of SIGTERM", filepath.Base(name))
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), logs)
		}
	})
	return logs
}

// proxyTo starts serving port as a reverse proxy to the Vault at addr, until the test ends.
func proxyTo(t *testing.T, port int, addr string) {
	t.Helper()
	target, err := url.Parse(addr)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}
