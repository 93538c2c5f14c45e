//go:build acceptance

package acceptance

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// With a file audit device and the server (and so the plugin) at trace level, a run of every
// path, error and rotation leaves no credential and no token in plain text in the server log
// or the audit log, and the audit log carries every secret field as an HMAC.
func TestNoSecretInServerOrAuditLog(t *testing.T) {
	v := startDev(t, "-log-level=trace")
	v.registerAndEnable("apitokens", version1)
	audit := filepath.Join(v.dir, "audit.log")
	v.cli(false, "audit", "enable", "file", "file_path="+audit)

	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	accts, secrets, ids := seedAccounts(sim, srv.URL, "leak")
	var tokens []string
	read := func(path string) {
		s, err := v.client.Logical().Read(path)
		if err == nil && s != nil {
			if tok, ok := s.Data["token"].(string); ok {
				tokens = append(tokens, tok)
			}
		}
	}
	for _, a := range accts {
		if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
		read("apitokens/config/" + a.name)
		read("apitokens/creds/" + a.name)
	}
	v.cli(false, "list", "apitokens/config")
	// Errors: a wrong secret the provider refuses, a provider echoing the key, bad input.
	wrong := "0000ffff0000ffff0000ffff0000ffff0000ffff"
	v.cli(false, "write", "apitokens/config/"+accts[0].name, "api_secret="+wrong)
	v.cli(true, "read", "apitokens/creds/"+accts[0].name)
	v.cli(false, "write", "apitokens/config/"+accts[0].name, "api_secret="+accts[0].config["api_secret"].(string))
	sim.Inject(simulator.RouteOpsNowToken, simulator.Fault{Status: 401,
		Body: `{"status":"fail","error":{"code":401,"message":"unknown key ` + accts[4].config["api_key"].(string) + `"}}`})
	v.cli(true, "read", "apitokens/creds/"+accts[4].name)
	v.cli(true, "write", "apitokens/config/bad", "provider=offblocks", "api_key=nope", "api_secret=also-a-secret-value")
	secrets = append(secrets, wrong, "also-a-secret-value")
	// Rotations, and the credentials they create.
	for _, a := range accts[:2] {
		v.cli(false, "write", "-f", "apitokens/rotate-root/"+a.name)
		read("apitokens/creds/" + a.name)
	}
	_, obSecret := sim.OffBlocksPair(ids["offblocks"])
	bqKeys := sim.BloqClientIDs(ids["bloq-user"])
	secrets = append(secrets, obSecret, sim.BloqKeySecret(bqKeys[0]))
	// A schedule and shared tokens; then the metrics, in both formats.
	v.cli(false, "write", "apitokens/config/"+accts[0].name, "rotation_period=1h", "token_reuse=true")
	read("apitokens/config/" + accts[0].name)
	read("apitokens/creds/" + accts[0].name)
	read("apitokens/creds/" + accts[0].name)
	metrics := v.cli(false, "read", "-format=json", "apitokens/metrics") +
		v.cli(false, "read", "-field=metrics", "-format=json", "apitokens/metrics", "format=json")
	resp, err := v.client.Logical().ReadRawWithData("apitokens/metrics", map[string][]string{"format": {"prometheus"}})
	if err != nil {
		t.Fatal(err)
	}
	prom, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics, "apitokens_tokens_issued_total") || !strings.Contains(string(prom), `kind="shared"`) {
		t.Fatalf("the metrics hold nothing: the check would prove nothing\n%s", prom)
	}
	v.cli(false, "lease", "revoke", "-prefix", "apitokens/creds")

	serverLog, err := os.ReadFile(v.logPath)
	if err != nil {
		t.Fatal(err)
	}
	auditLog, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(serverLog), "[TRACE]") || !strings.Contains(string(serverLog), "issued token") {
		t.Fatal("the server log holds no trace or plugin output: the check would prove nothing")
	}
	if len(tokens) < len(accts)+2 {
		t.Fatalf("only %d tokens were read", len(tokens))
	}
	for _, s := range append(secrets, tokens...) {
		if s == "" {
			t.Fatal("an empty secret in the list")
		}
		for name, content := range map[string][]byte{"server log": serverLog, "audit log": auditLog,
			"metrics": []byte(metrics), "prometheus metrics": prom} {
			if strings.Contains(string(content), s) {
				t.Errorf("%s contains a secret or token (%.8s…)", name, s)
			}
		}
	}
	checkAuditHMACs(t, auditLog)
}

// checkAuditHMACs: every secret field written to config/ and every token returned by creds/
// appears in the audit log only as an HMAC.
func checkAuditHMACs(t *testing.T, auditLog []byte) {
	t.Helper()
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(auditLog)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Path string         `json:"path"`
				Data map[string]any `json:"data"`
			} `json:"request"`
			Response struct {
				Data map[string]any `json:"data"`
			} `json:"response"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		check := func(field string, v any) {
			s, _ := v.(string)
			if !strings.HasPrefix(s, "hmac-sha256:") {
				t.Errorf("audit %s %s: %s is not HMAC'd", e.Type, e.Request.Path, field)
			}
			seen[field] = true
		}
		if strings.HasPrefix(e.Request.Path, "apitokens/config/") && e.Type == "request" {
			for _, f := range []string{"api_secret", "client_secret", "password", "refresh_token", "api_key"} {
				if v, ok := e.Request.Data[f]; ok {
					check(f, v)
				}
			}
		}
		if strings.HasPrefix(e.Request.Path, "apitokens/creds/") && e.Type == "response" {
			if v, ok := e.Response.Data["token"]; ok {
				check("token", v)
			}
		}
	}
	for _, f := range []string{"api_secret", "client_secret", "password", "refresh_token", "api_key", "token"} {
		if !seen[f] {
			t.Errorf("the audit log never showed %s: the HMAC check did not cover it", f)
		}
	}
}
