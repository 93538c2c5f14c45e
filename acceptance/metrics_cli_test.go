//go:build acceptance

package acceptance

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// The metrics as an operator reads them, in a real Vault:
//   - `vault read apitokens/metrics` prints a table of one line per sample, its key as the
//     Prometheus text format names it and its value a number, no map dump;
//   - `vault read -format=json` has those flat keys in data; `format=json` through the CLI
//     gives the series as nested JSON (0.1.0's default);
//   - `format=prometheus` cannot go through the CLI (it expects JSON), as the path-help says,
//     and works over HTTP as the README's curl reads it;
//   - `?format=xml` over HTTP is a 400 whose message starts with format: and names the formats.
func TestMetricsThroughCLIAndHTTP(t *testing.T) {
	v, sim, url := shared(t)
	accts, _, _ := seedAccounts(sim, url, "metrics-cli")
	a := accts[0] // offblocks
	if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
		t.Fatal(err)
	}
	if _, err := v.client.Logical().Read("apitokens/creds/" + a.name); err != nil {
		t.Fatal(err)
	}
	const (
		configs = `apitokens_configs{provider="offblocks"}`
		bucket  = `apitokens_provider_call_duration_seconds_bucket{operation="mint_token",provider="offblocks",le="+Inf"}`
	)

	// The CLI's table.
	table := v.cli(false, "read", "apitokens/metrics")
	if strings.Contains(table, "map[") {
		t.Errorf("the table holds a map dump:\n%s", table)
	}
	row := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			row[f[0]] = f[1]
		}
	}
	for _, key := range []string{configs, bucket} {
		if n, err := strconv.ParseFloat(row[key], 64); err != nil || n < 1 {
			t.Errorf("the table has no line %s with a value of at least 1 (got %q):\n%s", key, row[key], table)
		}
	}
	if row["timestamp"] == "" {
		t.Errorf("the table has no timestamp:\n%s", table)
	}

	// -format=json: the same flat keys; format=json: the nested series.
	data, _ := v.cliJSON("read", "apitokens/metrics")["data"].(map[string]any)
	if n, ok := data[configs].(float64); !ok || n < 1 {
		t.Errorf("vault read -format=json: %s = %#v, want a number of at least 1", configs, data[configs])
	}
	if _, ok := data["metrics"]; ok {
		t.Error("vault read -format=json: the default still nests the series under metrics")
	}
	nested, _ := v.cliJSON("read", "apitokens/metrics", "format=json")["data"].(map[string]any)
	if series, _ := nested["metrics"].([]any); len(series) == 0 {
		t.Errorf("vault read apitokens/metrics format=json: no nested series: %v", nested)
	}

	// format=prometheus: not through the CLI, as documented; over HTTP, as the README's curl.
	if out := v.cli(true, "read", "apitokens/metrics", "format=prometheus"); !strings.Contains(out, "invalid character '#'") {
		t.Errorf("the CLI with format=prometheus no longer fails as the help says: %s", out)
	}
	get := func(query string) (int, string, string) {
		status, ctype, body := v.get("apitokens/metrics?" + query)
		return status, ctype, string(body)
	}
	status, ctype, body := get("format=prometheus")
	if status != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") || !strings.Contains(body, "\n"+configs+" ") ||
		!strings.Contains(body, "# TYPE apitokens_configs gauge") {
		t.Errorf("?format=prometheus: status %d, %s:\n%.600s", status, ctype, body)
	}

	status, _, body = get("format=xml")
	var e struct {
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	if status != http.StatusBadRequest || len(e.Errors) != 1 || !strings.HasPrefix(e.Errors[0], "format: ") ||
		!strings.Contains(e.Errors[0], "flat") || !strings.Contains(e.Errors[0], "json") || !strings.Contains(e.Errors[0], "prometheus") {
		t.Errorf("?format=xml: status %d, %s; want a 400 whose message starts with format: and names flat, json and prometheus", status, body)
	}
}
