//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pluginPIDs returns the processes running the binary at path.
func pluginPIDs(path string) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, d := range dirs {
		if exe, err := os.Readlink(filepath.Join(d, "exe")); err != nil || exe != path {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// vmRSS returns the summed current resident set (VmRSS, bytes) of pids.
func vmRSS(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					total += kb * 1024
				}
			}
		}
	}
	return total
}

// socketsTo counts the file descriptors of pids that are TCP sockets whose remote port is
// port: the inodes of /proc/<pid>/fd's socket:[inode] links, looked up in the network
// namespace's /proc/<pid>/net/tcp and tcp6 (rem_address is hex IP:PORT, the inode is the
// tenth column).
func socketsTo(pids []int, port int) int {
	if len(pids) == 0 {
		return 0
	}
	toPort := map[string]bool{}
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pids[0]) + "/net/" + table)
		if err != nil {
			continue
		}
		lines := strings.Split(string(b), "\n")
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			_, hexPort, ok := strings.Cut(f[2], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); ok && err == nil && int(p) == port && f[9] != "0" {
				toPort[f[9]] = true
			}
		}
	}
	n := 0
	for _, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			link, err := os.Readlink(dir + e.Name())
			if err != nil {
				continue
			}
			if inode, ok := strings.CutPrefix(link, "socket:["); ok && toPort[strings.TrimSuffix(inode, "]")] {
				n++
			}
		}
	}
	return n
}

// socketSampler counts the plugin's sockets to a port every 20 ms until stopped, and keeps
// the largest count.
type socketSampler struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	peak  int
}

func sampleSockets(pids []int, port int) *socketSampler {
	s := &socketSampler{stopc: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			s.peak = max(s.peak, socketsTo(pids, port))
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak.
func (s *socketSampler) stop() int {
	close(s.stopc)
	s.wg.Wait()
	return s.peak
}
