//go:build acceptance

package acceptance

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Vault Agent, authenticated from a token file, renders a creds token into a file and, with
// a short max_ttl, renders a new valid token after the lease runs out, without a restart.
func TestVaultAgentRendersAndRefreshes(t *testing.T) {
	v, sim, url := shared(t)
	accts, _, _ := seedAccounts(sim, url, "agent")
	for _, a := range accts {
		a.config["max_ttl"] = "20s"
		if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
	}
	names := make([]string, len(accts))
	for i, a := range accts {
		names[i] = a.name
	}
	read := startAgent(t, v, names)
	first := map[string]string{}
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range accts {
		for first[a.name] == "" && time.Now().Before(deadline) {
			first[a.name] = read(a.name)
			time.Sleep(200 * time.Millisecond)
		}
		if _, err := sim.Validate(first[a.name]); err != nil {
			t.Fatalf("%s: the agent rendered %q, which the provider refuses: %v", a.name, first[a.name], err)
		}
	}
	// The 20 s lease runs out; the agent must fetch and render a new token on its own.
	start := time.Now()
	deadline = start.Add(90 * time.Second)
	for _, a := range accts {
		for read(a.name) == first[a.name] && time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
		}
		next := read(a.name)
		if next == first[a.name] {
			t.Fatalf("%s: the agent did not render a new token within 90s", a.name)
		}
		if _, err := sim.Validate(next); err != nil {
			t.Errorf("%s: the re-rendered token is refused: %v", a.name, err)
		}
	}
	t.Logf("the agent re-rendered every token within %s of the first render (20s leases)", time.Since(start).Round(time.Second))
}

// startAgent runs Vault Agent (token_file auto-auth with the root token) with one template
// per config name, rendering apitokens/creds/<name>'s token into a file, and returns a reader
// of the file for a name. The agent is stopped when the test ends.
func startAgent(t *testing.T, v *vaultServer, names []string) func(name string) string {
	t.Helper()
	paths := map[string]string{}
	for _, name := range names {
		paths[name] = "apitokens/creds/" + name
	}
	return startAgentFor(t, v, paths)
}

// startAgentFor is startAgent with one template per file name, rendering the token read at
// its path.
func startAgentFor(t *testing.T, v *vaultServer, paths map[string]string) func(name string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), v.client.Token())
	var templates strings.Builder
	for name, path := range paths {
		fmt.Fprintf(&templates, `template {
  contents    = "{{ with secret \"%s\" }}{{ .Data.token }}{{ end }}"
  destination = %q
}
`, path, filepath.Join(dir, name+".token"))
	}
	writeFile(t, filepath.Join(dir, "agent.hcl"), fmt.Sprintf(`
vault {
  address = %q
}
auto_auth {
  method "token_file" {
    config = {
      token_file_path = %q
    }
  }
}
template_config {
  exit_on_retry_failure = true
}
%s`, v.addr, filepath.Join(dir, "token"), templates.String()))

	var logs bytes.Buffer
	cmd := exec.Command(vaultBin, "agent", "-config="+filepath.Join(dir, "agent.hcl"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})

	return func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name+".token"))
		return strings.TrimSpace(string(b))
	}
}
