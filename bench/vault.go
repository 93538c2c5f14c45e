//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// server is a Vault dev server started for the benchmark, in its own process group (so
// stopping it stops its plugins) and killed if the benchmark dies.
type server struct {
	cmd    *exec.Cmd
	client *api.Client
	addr   string
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startVault runs `vault server -dev` at log level warn with pluginDir as its plugin
// directory, and returns once it answers.
func startVault(vaultBin, work, pluginDir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(work, "plugins.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("plugin_directory = %q\n", pluginDir)), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(work, "vault.log"))
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(vaultBin, "server", "-dev", "-dev-root-token-id=root", "-dev-listen-address="+addr,
		"-log-level=warn", "-config="+cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "HOME="+work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, addr: "http://" + addr}
	conf := api.DefaultConfig()
	conf.Address = s.addr
	conf.MaxRetries = 0
	// Keep a connection per concurrent client alive, as a real fleet of clients would.
	conf.HttpClient.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	c, err := api.NewClient(conf)
	if err != nil {
		s.stop()
		return nil, err
	}
	s.client = c
	s.client.SetToken("root")
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, err := s.client.Sys().Health(); err == nil {
			return s, nil
		}
	}
	s.stop()
	return nil, fmt.Errorf("vault did not answer within 60s (see %s)", logf.Name())
}

func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
	}
}

// register registers the binary pluginDir/file as a secrets plugin by sha256 and version.
func (s *server) register(pluginDir, name, file, version string) error {
	data, err := os.ReadFile(filepath.Join(pluginDir, file))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	return s.client.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name: name, Type: api.PluginTypeSecrets, Command: file, SHA256: hex.EncodeToString(sum[:]), Version: version,
	})
}

func (s *server) mount(path, plugin, version string) error {
	return s.client.Sys().Mount(path, &api.MountInput{Type: plugin, Config: api.MountConfigInput{PluginVersion: version}})
}

// peakRSS returns the largest VmHWM (peak resident set, in bytes) among the processes
// running the binary at path, or 0 if none runs.
func peakRSS(path string) int64 {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var peak int64
	for _, d := range dirs {
		if exe, err := os.Readlink(filepath.Join(d, "exe")); err != nil || exe != path {
			continue
		}
		status, err := os.ReadFile(filepath.Join(d, "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb*1024 > peak {
					peak = kb * 1024
				}
			}
		}
	}
	return peak
}
