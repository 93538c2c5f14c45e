//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// simProcess is cmd/apitokens-simulator running beside Vault, with the demo credentials it
// wrote to its env file.
type simProcess struct {
	cmd *exec.Cmd
	env map[string]string
}

func startSimulator(work string) (*simProcess, error) {
	envFile := filepath.Join(work, "sim.env")
	cmd := exec.Command(filepath.Join(work, "apitokens-simulator"), "-addr", "127.0.0.1:0", "-env-file", envFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &simProcess{cmd: cmd, env: map[string]string{}}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(envFile)
		if err != nil || len(b) == 0 {
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				p.env[k] = strings.Trim(v, "'")
			}
		}
		return p, nil
	}
	p.stop()
	return nil, fmt.Errorf("the simulator did not start")
}

func (p *simProcess) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// tokenCalls is how many OffBlocks token calls the simulator has answered.
func (p *simProcess) tokenCalls() (int, error) {
	resp, err := http.Get(p.env["SIM_URL"] + "/_sim/calls")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var calls map[string]int
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		return 0, err
	}
	return calls[simulator.RouteOffBlocksToken], nil
}
