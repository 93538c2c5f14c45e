//go:build acceptance

package acceptance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
)

// promExample is the directory of the example the test runs.
const promExample = "../examples/prometheus/"

// secretValue is a credential or token the test used, named for failure messages, which
// never show the value.
type secretValue struct{ what, value string }

// TestPrometheusScrapesThroughVault runs the real Prometheus of PROMETHEUS_DIR
// (scripts/prometheus.sh) on examples/prometheus/prometheus.yml, changed only in its target,
// token file, rule file and intervals (1s), against the shared Vault, with a token made by
// the commands the example's comments give (policy-metrics.hcl: read on apitokens/metrics
// and nothing else of the mount). It checks that:
//   - that config passes a full `promtool check config` (token file and rules present);
//   - the token reads the metrics, is refused creds and configs, is periodic and renews
//     itself; Vault refuses the metrics without it;
//   - Prometheus scrapes the target (health up) with it as a Bearer token, and
//     apitokens_tokens_issued_total in Prometheus, per provider, covers this test's reads and
//     lies between Vault's own figures before Prometheus started and after the query;
//   - alerts.yml's rules load, as one group apitokens from that file, and evaluate (health ok);
//   - no credential or token the test used (the providers' credentials, the tokens read,
//     Prometheus's Vault token) is in what Prometheus serves, its log, or its TSDB directory
//     (a snapshot, and the WAL, written uncompressed for this); a metric name is found in
//     each of those, so the search reads real data.
func TestPrometheusScrapesThroughVault(t *testing.T) {
	promDir := os.Getenv("PROMETHEUS_DIR")
	if promDir == "" {
		t.Fatal("PROMETHEUS_DIR is not set: run `make testacc`, or set it to the output of scripts/prometheus.sh " +
			"(the directory holding prometheus and promtool)")
	}
	v, sim, simURL := shared(t)
	accts, _, _ := seedAccounts(sim, simURL, "prom")
	var secrets []secretValue
	didRead := map[string]float64{} // tokens this test read, by provider
	for _, a := range accts {
		if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"api_key", "api_secret", "client_id", "client_secret", "username", "password", "refresh_token"} {
			if s, ok := a.config[f].(string); ok {
				secrets = append(secrets, secretValue{a.name + " " + f, s})
			}
		}
		s, err := v.client.Logical().Read("apitokens/creds/" + a.name)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secretValue{"the token read from creds/" + a.name, fmt.Sprint(s.Data["token"])})
		didRead[a.config["provider"].(string)]++
	}

	dir := t.TempDir()
	example, err := os.ReadFile(promExample + "prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "vault-apitokens.token")
	secrets = append(secrets, secretValue{"Prometheus's Vault token", metricsToken(t, v, string(example), tokenFile)})
	for _, s := range secrets {
		if len(s.value) < 16 {
			t.Fatalf("%s is %d bytes: too short to search for without matching by chance", s.what, len(s.value))
		}
	}

	config := promConfig(t, string(example), strings.TrimPrefix(v.addr, "http://"), tokenFile, dir)
	if out, err := exec.Command(filepath.Join(promDir, "promtool"), "check", "config", config).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config on the generated config (token file and rules present): %v\n%s", err, out)
	}
	before := vaultTokensIssued(t, v)
	p := startPrometheus(t, promDir, dir, config)

	// Scraped through Vault with the token: the target is up, at the example's URL.
	wantURL := v.addr + "/v1/apitokens/metrics?format=prometheus"
	waitState(t, 90*time.Second, "a successful scrape of Vault by Prometheus", func() (bool, string) {
		var r struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				ScrapeURL string            `json:"scrapeUrl"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		}
		p.api(t, http.MethodGet, "/api/v1/targets", &r)
		state := "no target"
		for _, tg := range r.ActiveTargets {
			state = fmt.Sprintf("job %s, %s: health %s, last error %q", tg.Labels["job"], tg.ScrapeURL, tg.Health, tg.LastError)
			if tg.Labels["job"] == "vault-apitokens" && tg.ScrapeURL == wantURL && tg.Health == "up" {
				return true, ""
			}
		}
		return false, state
	})

	// The plugin's series, as Vault counted them.
	var q struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	p.api(t, http.MethodGet, "/api/v1/query?query="+url.QueryEscape(`sum by (provider, instance) (apitokens_tokens_issued_total{job="vault-apitokens"})`), &q)
	after := vaultTokensIssued(t, v)
	got := map[string]float64{}
	for _, r := range q.Result {
		n, err := strconv.ParseFloat(fmt.Sprint(r.Value[1]), 64)
		if err != nil || r.Metric["instance"] != strings.TrimPrefix(v.addr, "http://") {
			t.Fatalf("query result %v: %v", r, err)
		}
		got[r.Metric["provider"]] = n
	}
	for provider, n := range didRead {
		if g := got[provider]; g < n || g < before[provider] || g > after[provider] {
			t.Errorf("apitokens_tokens_issued_total{provider=%q} in Prometheus: %v; this test read %v, Vault counted %v before Prometheus started and %v after",
				provider, g, n, before[provider], after[provider])
		}
	}
	t.Logf("Prometheus scraped %s with the metrics token; tokens issued by provider: %v (this test read %v)", wantURL, got, didRead)

	checkPromRules(t, p)
	checkNothingSecretInProm(t, p, secrets)
}

// exampleCommand returns the words of the command that the example's comments give starting
// with prefix, up to a shell redirection.
func exampleCommand(t *testing.T, example, prefix string) []string {
	t.Helper()
	for _, line := range strings.Split(example, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		if strings.HasPrefix(line, prefix) {
			words := strings.Fields(line)
			if i := slices.Index(words, ">"); i >= 0 {
				words = words[:i]
			}
			return words
		}
	}
	t.Fatalf("examples/prometheus/prometheus.yml: no comment gives a command starting %q", prefix)
	return nil
}

// metricsToken runs the example's `vault policy write` and `vault token create` as root,
// writes the token to file as the example's redirection would, checks what it may do, and
// returns it.
func metricsToken(t *testing.T, v *vaultServer, example, file string) string {
	t.Helper()
	policy := exampleCommand(t, example, "vault policy write ")
	if len(policy) != 5 || policy[4] != "examples/prometheus/policy-metrics.hcl" {
		t.Fatalf("the example's policy command is %q, want it to write examples/prometheus/policy-metrics.hcl", policy)
	}
	policy[4] = "../" + policy[4]
	v.cli(false, policy[1:]...)
	out := v.cli(false, exampleCommand(t, example, "vault token create ")[1:]...)
	writeFile(t, file, out)
	token := strings.TrimSpace(out)

	info, err := v.client.Auth().Token().Lookup(token)
	if err != nil {
		t.Fatal(err)
	}
	policies, _ := info.Data["policies"].([]any)
	if info.Data["period"] != json.Number("86400") || info.Data["orphan"] != true || !slices.Contains(policies, any(policy[3])) {
		t.Fatalf("the example's token: period %v, orphan %v, policies %v; want 86400, true, %s",
			info.Data["period"], info.Data["orphan"], info.Data["policies"], policy[3])
	}
	c := cloneClient(t, v)
	c.SetToken(token)
	if _, err := c.Logical().Read("apitokens/metrics"); err != nil {
		t.Fatalf("the metrics token cannot read apitokens/metrics: %v", err)
	}
	_, err = c.Logical().Read("apitokens/creds/prom-offblocks")
	want403(t, "creds read with the metrics token", err)
	_, err = c.Logical().List("apitokens/config")
	want403(t, "config list with the metrics token", err)
	if _, err := c.Auth().Token().RenewSelf(0); err != nil {
		t.Errorf("the metrics token cannot renew itself, as the example says it can: %v", err)
	}
	// Without it, the URL Prometheus scrapes is refused: a scrape that is up used the token.
	resp, err := http.Get(v.addr + "/v1/apitokens/metrics?format=prometheus")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("metrics with no token: status %d, want 403", resp.StatusCode)
	}
	return token
}

// promConfig writes the example's config to dir with only its target, token file, rule file
// (the example's own alerts.yml) and intervals changed, each found exactly once, and returns
// its path.
func promConfig(t *testing.T, example, target, tokenFile, dir string) string {
	t.Helper()
	rules, err := filepath.Abs(promExample + "alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := example
	for _, r := range [][2]string{
		{"targets: ['127.0.0.1:8200']", "targets: ['" + target + "']"},
		{"credentials_file: /etc/prometheus/vault-apitokens.token", "credentials_file: " + tokenFile},
		{"rule_files:\n  - alerts.yml\n", "rule_files:\n  - " + rules + "\n"},
		{"scrape_interval: 30s", "scrape_interval: 1s"},
		{"evaluation_interval: 30s", "evaluation_interval: 1s"},
	} {
		if n := strings.Count(s, r[0]); n != 1 {
			t.Fatalf("examples/prometheus/prometheus.yml holds %q %d times, want once: the test could not run the example as is", r[0], n)
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "prometheus.yml")
	writeFile(t, path, s)
	return path
}

// vaultTokensIssued reads apitokens_tokens_issued_total from Vault itself (root token),
// summed over kinds, by provider.
func vaultTokensIssued(t *testing.T, v *vaultServer) map[string]float64 {
	t.Helper()
	resp, err := v.client.Logical().ReadRawWithData("apitokens/metrics", map[string][]string{"format": {"prometheus"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, m := range families["apitokens_tokens_issued_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "provider" {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// waitState polls cond every 250 ms until it holds, failing t after limit with the state it
// last reported.
func waitState(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	state := ""
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		var ok bool
		if ok, state = cond(); ok {
			return
		}
	}
	t.Fatalf("timed out after %s waiting for %s: %s", limit, what, state)
}
