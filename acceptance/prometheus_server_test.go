//go:build acceptance

package acceptance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The Prometheus server TestPrometheusScrapesThroughVault runs, and its checks of it.

// promServer is a running Prometheus.
type promServer struct {
	addr, data string
	logs       *syncBuffer
}

// startPrometheus runs prometheus from bin on config, on a free loopback port, with its TSDB
// in dir (its WAL uncompressed, so that a search sees the labels it holds) and the admin API
// on (for a snapshot), by startProcess: in its own process group, killed if the test binary
// dies, stopped with SIGTERM and waited for at cleanup, its log shown if the test failed. It
// returns once Prometheus is ready.
func startPrometheus(t *testing.T, bin, dir, config string) *promServer {
	t.Helper()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := &promServer{addr: "http://" + listen, data: filepath.Join(dir, "tsdb")}
	p.logs = startProcess(t, dir, nil, filepath.Join(bin, "prometheus"), "--config.file="+config,
		"--storage.tsdb.path="+p.data, "--web.listen-address="+listen, "--web.enable-admin-api",
		"--no-storage.tsdb.wal-compression")
	waitFor(t, 60*time.Second, "Prometheus to be ready", func() bool {
		resp, err := http.Get(p.addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// api sends method path to Prometheus's HTTP API, decodes the data of its answer into out
// unless out is nil, and returns the body; it fails t unless the answer is a 200 success.
func (p *promServer) api(t *testing.T, method, path string, out any) []byte {
	t.Helper()
	req, _ := http.NewRequest(method, p.addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != http.StatusOK || r.Status != "success" {
		t.Fatalf("prometheus %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			t.Fatalf("prometheus %s: %v", path, err)
		}
	}
	return b
}

// checkPromRules waits (bounded) until Prometheus has evaluated every rule of alerts.yml,
// loaded as the one group apitokens from that file, each with health ok.
func checkPromRules(t *testing.T, p *promServer) {
	t.Helper()
	file, err := filepath.Abs(promExample + "alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Count(string(b), "- alert: ")
	waitState(t, 60*time.Second, "the rules of alerts.yml to load and evaluate", func() (bool, string) {
		var r struct {
			Groups []struct {
				Name, File string
				Rules      []struct{ Name, Health, LastError string }
			}
		}
		p.api(t, http.MethodGet, "/api/v1/rules", &r)
		state := fmt.Sprintf("rule groups %+v; want one, apitokens from %s, with %d rules", r.Groups, file, want)
		if len(r.Groups) != 1 || r.Groups[0].Name != "apitokens" || r.Groups[0].File != file || len(r.Groups[0].Rules) != want {
			return false, state
		}
		for _, rule := range r.Groups[0].Rules {
			if rule.Health != "ok" {
				return false, state
			}
		}
		return true, ""
	})
	t.Logf("the %d rules of alerts.yml loaded and evaluated", want)
}

// checkNothingSecretInProm fails t if any of secrets is in what Prometheus serves (every
// series, label, target, rule, alert, its config and flags), in its log, or in any file of
// its TSDB directory after a snapshot. A metric name must be found in the API, the WAL and
// the snapshot, so the search reads real data.
func checkNothingSecretInProm(t *testing.T, p *promServer, secrets []secretValue) {
	t.Helper()
	var served bytes.Buffer
	for _, path := range []string{"/api/v1/series?match[]=" + url.QueryEscape(`{__name__=~".+"}`), "/api/v1/labels",
		"/api/v1/label/__name__/values", "/api/v1/label/config/values", "/api/v1/targets", "/api/v1/rules",
		"/api/v1/alerts", "/api/v1/status/config", "/api/v1/status/flags", "/api/v1/metadata"} {
		served.Write(p.api(t, http.MethodGet, path, nil))
	}
	// The head as a block (its index holds every label), beside the WAL that holds them too.
	p.api(t, http.MethodPost, "/api/v1/admin/tsdb/snapshot", nil)

	check := func(where string, b []byte) bool {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s.value)) {
				t.Errorf("%s holds %s", where, s.what)
			}
		}
		return bytes.Contains(b, []byte("apitokens_tokens_issued_total"))
	}
	if !check("the Prometheus API", served.Bytes()) {
		t.Error("apitokens_tokens_issued_total is not in what the Prometheus API serves: the search there proves nothing")
	}
	check("the Prometheus log", []byte(p.logs.String()))
	found, files := map[string]int{}, 0 // files naming the metric, by top directory
	err := filepath.WalkDir(p.data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		rel, _ := filepath.Rel(p.data, path)
		if check(rel, b) {
			found[strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, where := range []string{"wal", "snapshots"} {
		if found[where] == 0 {
			t.Errorf("no file under %s/ of the TSDB names apitokens_tokens_issued_total: the search there proves nothing (found under %v)", where, found)
		}
	}
	t.Logf("searched the Prometheus API, its log and %d TSDB files for %d credentials and tokens", files, len(secrets))
}
