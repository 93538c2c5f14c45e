//go:build linux

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time (user and system) the processes pids have used so far; pid 0
// is this process.
func cpuTime(pids ...int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		path := "/proc/self/stat"
		if pid != 0 {
			path = "/proc/" + strconv.Itoa(pid) + "/stat"
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// The command (field 2) is in parentheses and may hold spaces: count from after it.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
		stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
		total += time.Duration(utime+stime) * clockTick
	}
	return total
}

// cpuShare is the CPU time each process spent on one row's operations.
type cpuShare struct {
	vault, plugin, client time.Duration
	ops                   float64
}

// cpuMeter measures the CPU time Vault, a plugin's processes and this process (the
// clients) spend while op runs.
type cpuMeter struct {
	vaultPID   int
	pluginPIDs []int
}

func (m cpuMeter) measure(ops *float64, run func()) cpuShare {
	v0, p0, c0 := cpuTime(m.vaultPID), cpuTime(m.pluginPIDs...), cpuTime(0)
	run()
	return cpuShare{vault: cpuTime(m.vaultPID) - v0, plugin: cpuTime(m.pluginPIDs...) - p0, client: cpuTime(0) - c0, ops: *ops}
}

// add sums shares of several runs.
func (s *cpuShare) add(o cpuShare) {
	s.vault, s.plugin, s.client, s.ops = s.vault+o.vault, s.plugin+o.plugin, s.client+o.client, s.ops+o.ops
}

// perOp writes the CPU time per operation of Vault, the plugin and the clients, in µs.
func (s cpuShare) perOp() string {
	if s.ops == 0 {
		return "no operations"
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / s.ops }
	return fmt.Sprintf("%.0f / %.0f / %.0f µs", us(s.vault), us(s.plugin), us(s.client))
}
