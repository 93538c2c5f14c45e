//go:build acceptance

package acceptance

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// errorLine is the line of the CLI's error output that starts with the first error: the
// README says that bad input is a 400 whose message starts with the field's name.
func errorLine(t *testing.T, out string) string {
	t.Helper()
	if !strings.Contains(out, "Code: 400") {
		t.Fatalf("want a 400, got:\n%.2000s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if msg, ok := strings.CutPrefix(line, "* "); ok {
			return msg
		}
	}
	t.Fatalf("no error line in:\n%.2000s", out)
	return ""
}

// Bad input through the real CLI: a type error starts with the field's name and says
// what it takes, on a config write (which Vault checks in the path's existence check
// first) and on a creds read; an oversized secret and an overlong name are 400s naming
// the field and the limit; a secret given as a list reaches neither the answer nor
// Vault's log (the framework's own message would have printed it).
func TestInputErrorsThroughTheCLI(t *testing.T) {
	v, _, url := shared(t)
	base := "base_url=" + url + simulator.OffBlocksPrefix
	key, secret := "0b5f9f34-6d0c-4f4e-9d8e-2f1c7f0e9a11", strings.Repeat("5a", 20)

	line := errorLine(t, v.cli(true, "write", "apitokens/config/input-ttl", "provider=offblocks", base,
		"api_key="+key, "api_secret="+secret, "max_ttl=abc"))
	if want := `max_ttl: must be a duration such as 90s, 10m or 1h (a bare number is seconds), not "abc"`; line != want {
		t.Errorf("max_ttl=abc: %q, want %q", line, want)
	}
	v.cli(false, "write", "apitokens/config/input-ttl", "provider=offblocks", base, "api_key="+key, "api_secret="+secret)
	line = errorLine(t, v.cli(true, "read", "apitokens/creds/input-ttl", "min_ttl=abc"))
	if want := `min_ttl: must be a duration such as 90s, 10m or 1h (a bare number is seconds), not "abc"`; line != want {
		t.Errorf("min_ttl=abc: %q, want %q", line, want)
	}
	line = errorLine(t, v.cli(true, "write", "apitokens/config/input-ttl", "token_reuse=maybe"))
	if want := `token_reuse: must be true or false, not "maybe"`; line != want {
		t.Errorf("token_reuse=maybe: %q, want %q", line, want)
	}

	// A 20 MB api_key from a file, as the issue stored one.
	marker := "input-marker-4c1d"
	big := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(big, []byte(strings.Repeat(marker, 20<<20/len(marker))), 0o600); err != nil {
		t.Fatal(err)
	}
	out := v.cli(true, "write", "apitokens/config/input-big", "provider=opsnow", "api_key=@"+big,
		"base_url="+url+simulator.OpsNowPrefix)
	if line := errorLine(t, out); line != "api_key: must be at most 4096 bytes" || strings.Contains(out, marker) {
		t.Errorf("a 20 MB api_key: %q", line)
	}

	// A 5,000-character name, on a write and a read; 128 bytes are fine.
	long := strings.Repeat("n", 5000)
	for _, args := range [][]string{{"write", "apitokens/config/" + long, "provider=opsnow", "api_key=k"},
		{"read", "apitokens/creds/" + long}} {
		if line := errorLine(t, v.cli(true, args...)); !strings.HasPrefix(line, "name: must be at most 128 bytes (this one has 5000)") {
			t.Errorf("%s of a 5,000-character name: %q", args[0], line)
		}
	}
	v.cli(false, "write", "apitokens/config/"+long[:128], "provider=opsnow", "api_key=k", "base_url="+url+simulator.OpsNowPrefix)
	v.cli(false, "delete", "apitokens/config/"+long[:128])
	for _, name := range []string{"input-big", long} { // a config is read whatever its name's length
		if s, err := v.client.Logical().Read("apitokens/config/" + name); err != nil || s != nil {
			t.Errorf("config %.20s… stored: %v %v", name, s, err)
		}
	}

	// A secret given as a list, through the HTTP API.
	_, err := v.client.Logical().Write("apitokens/config/input-list", map[string]any{"provider": "offblocks",
		"api_key": key, "api_secret": []any{marker}})
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 || strings.Join(re.Errors, "|") != "api_secret: must be a string, not a list" {
		t.Errorf("api_secret as a list: %v", err)
	}
	serverLog, err := os.ReadFile(v.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(serverLog), marker) {
		t.Error("Vault's log holds a secret given in bad input")
	}
}

// What the README says of the CLI's output: it shows a duration field whose name ends in
// _ttl or _period as a duration, and any other (request_timeout) as a number of seconds.
func TestCLIShowsDurations(t *testing.T) {
	v, _, url := shared(t)
	v.cli(false, "write", "apitokens/config/input-durations", "provider=offblocks", "base_url="+url+simulator.OffBlocksPrefix,
		"api_key=7d0e5c8a-1b2f-4c3d-8e9f-0a1b2c3d4e5f", "api_secret="+strings.Repeat("7d", 20),
		"max_ttl=1h", "min_token_ttl=90s", "request_timeout=45s", "rotation_period=720h")
	defer v.cli(false, "delete", "apitokens/config/input-durations")
	out := v.cli(false, "read", "apitokens/config/input-durations")
	for _, want := range []string{`max_ttl\s+1h\n`, `min_token_ttl\s+1m30s\n`, `request_timeout\s+45\n`, `rotation_period\s+720h\n`} {
		if !regexp.MustCompile(`(?m)^` + want).MatchString(out) {
			t.Errorf("vault read does not show %q:\n%s", want, out)
		}
	}
}
