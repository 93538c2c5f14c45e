//go:build acceptance

package acceptance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// Register through the CLI by sha256 and version, enable, and read it back.
func TestRegisterEnableInfoCLI(t *testing.T) {
	v := startDev(t)
	v.cli(false, "plugin", "register", "-sha256="+shas[version1], "-version="+version1,
		"-command="+pluginName+"-"+version1, "secret", pluginName)
	v.cli(false, "secrets", "enable", "-path=apitokens", "-plugin-version="+version1, pluginName)

	data := v.cliJSON("plugin", "info", "-version="+version1, "secret", pluginName)
	if data["sha256"] != shas[version1] || data["version"] != version1 || data["name"] != pluginName {
		t.Errorf("plugin info = %v", data)
	}
	mounts := v.cliJSON("secrets", "list", "-detailed")
	m, ok := mounts["apitokens/"].(map[string]any)
	if !ok || m["running_plugin_version"] != version1 || m["running_sha256"] != shas[version1] {
		t.Errorf("mount = %v", mounts["apitokens/"])
	}
	// A binary whose sha256 differs from the registered one is refused when Vault runs it.
	bad := strings.Repeat("0", 64)
	v.cli(false, "plugin", "register", "-sha256="+bad, "-version=v9.9.9",
		"-command="+pluginName+"-"+version1, "secret", pluginName)
	out := v.cli(true, "secrets", "enable", "-path=tampered", "-plugin-version=v9.9.9", pluginName)
	t.Logf("mounting a binary with the wrong sha256: %s", strings.TrimSpace(out))
	// The README's troubleshooting row says where and how this shows: not at register (which
	// succeeded above), but at enable (a 400) and at a reload onto it (a 500), as
	// "invalid backend version: ... checksums did not match"; a tune onto it succeeds.
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := ""
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.Contains(line, "checksums did not match") && strings.HasPrefix(line, "| `invalid backend version") {
			row = line
		}
	}
	for _, want := range []string{"at `vault secrets enable` (400)", "`plugin reload` (500)", "not at `register`"} {
		if !strings.Contains(row, want) {
			t.Errorf("the README's checksums row lacks %q: %s", want, row)
		}
	}
	if !strings.Contains(out, "Code: 400") || !strings.Contains(out, "invalid backend version") || !strings.Contains(out, "checksums did not match") {
		t.Errorf("mounting a tampered binary: %s", out)
	}
	v.cli(false, "secrets", "tune", "-plugin-version=v9.9.9", "apitokens/")
	out = v.cli(true, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
	if !strings.Contains(out, "Code: 500") || !strings.Contains(out, "invalid backend version") || !strings.Contains(out, "checksums did not match") {
		t.Errorf("reloading onto a tampered binary: %s", out)
	}
	v.cli(false, "secrets", "tune", "-plugin-version="+version1, "apitokens/")
	v.cli(false, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
	if _, err := v.client.Logical().List("apitokens/config"); err != nil {
		t.Errorf("the mount does not work after going back to %s: %v", version1, err)
	}
}

func TestPathHelpAndOpenAPI(t *testing.T) {
	v, _, _ := shared(t)
	for path, phrase := range map[string]string{
		"apitokens/config/x":      "never a secret",
		"apitokens/creds/x":       "not renewable",
		"apitokens/rotate-root/x": "fallback",
	} {
		if out := v.cli(false, "path-help", path); !strings.Contains(out, phrase) {
			t.Errorf("path-help %s lacks %q:\n%s", path, phrase, out)
		}
	}

	resp, err := v.client.Logical().ReadRaw("sys/internal/specs/openapi")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths      map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					DisplayAttrs map[string]any `json:"x-vault-displayAttrs"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/apitokens/config/", "/apitokens/config/{name}", "/apitokens/creds/{name}", "/apitokens/rotate-root/{name}"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("OpenAPI lacks %s", p)
		}
	}
	sensitive := map[string]bool{}
	for name, schema := range doc.Components.Schemas {
		if !strings.Contains(strings.ToLower(name), "apitokens") {
			continue
		}
		for field, prop := range schema.Properties {
			if prop.DisplayAttrs["sensitive"] == true {
				sensitive[field] = true
			}
		}
	}
	for _, f := range []string{"api_key", "api_secret", "client_secret", "password", "refresh_token"} {
		if !sensitive[f] {
			t.Errorf("OpenAPI does not mark %s sensitive (sensitive: %v)", f, sensitive)
		}
	}
}

func TestConfigCRUDThroughAPIAndCLI(t *testing.T) {
	v, _, url := shared(t)
	logical := v.client.Logical()
	obKey := "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
	obSecret := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"

	// API client: create, partial update, read, list, delete.
	if _, err := logical.Write("apitokens/config/crud-api", map[string]any{"provider": "offblocks",
		"base_url": url + simulator.OffBlocksPrefix, "api_key": obKey, "api_secret": obSecret}); err != nil {
		t.Fatal(err)
	}
	if _, err := logical.Write("apitokens/config/crud-api", map[string]any{"max_ttl": "15m"}); err != nil {
		t.Fatal(err)
	}
	s, err := logical.Read("apitokens/config/crud-api")
	if err != nil {
		t.Fatal(err)
	}
	if s.Data["api_key"] != obKey || s.Data["max_ttl"] != json.Number("900") || s.Data["request_timeout"] != json.Number("30") {
		t.Errorf("read = %v", s.Data)
	}
	if _, ok := s.Data["api_secret"]; ok || strings.Contains(fmt.Sprint(s.Data), obSecret) {
		t.Error("config read returned the secret")
	}

	// CLI with -format=json.
	v.cli(false, "write", "apitokens/config/crud-cli", "provider=bloq", "base_url="+url+simulator.BloqPrefix,
		"username=a@example.com", "password=hunter2-cli-secret")
	read := v.cliJSON("read", "apitokens/config/crud-cli")["data"].(map[string]any)
	if read["grant_type"] != "password" || read["username"] != "a@example.com" || strings.Contains(fmt.Sprint(read), "hunter2") {
		t.Errorf("cli read = %v", read)
	}
	var keys []string
	if err := json.Unmarshal([]byte(v.cli(false, "list", "-format=json", "apitokens/config")), &keys); err != nil {
		t.Fatal(err)
	}
	if !contains(keys, "crud-api") || !contains(keys, "crud-cli") {
		t.Errorf("list = %v", keys)
	}
	v.cli(false, "delete", "apitokens/config/crud-cli")
	if s, err := logical.Read("apitokens/config/crud-cli"); err != nil || s != nil {
		t.Errorf("read after delete = %v %v", s, err)
	}
	if _, err := logical.Delete("apitokens/config/crud-api"); err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestValidationErrorsAre4xx(t *testing.T) {
	v, _, url := shared(t)
	cases := []struct {
		data  map[string]any
		field string
	}{
		{map[string]any{"api_key": "x"}, "provider"},
		{map[string]any{"provider": "stripe"}, "provider"},
		{map[string]any{"provider": "offblocks", "api_key": "not-a-uuid", "api_secret": "s"}, "api_key"},
		{map[string]any{"provider": "offblocks", "api_key": "1b4e28ba-2fa1-41d2-883f-0016d3cca427"}, "api_secret"},
		{map[string]any{"provider": "offblocks", "api_key": "1b4e28ba-2fa1-41d2-883f-0016d3cca427", "api_secret": "s",
			"base_url": "http://api.offblocks.xyz/v1"}, "base_url"},
		{map[string]any{"provider": "bloq", "refresh_token": "r", "client_id": "c", "client_secret": "s"}, "grant_type"},
		{map[string]any{"provider": "bloq", "client_id": "c"}, "client_secret"},
		{map[string]any{"provider": "opsnow"}, "api_key"},
		{map[string]any{"provider": "opsnow", "api_key": "k", "client_id": "c"}, "client_id"},
	}
	for i, tc := range cases {
		_, err := v.client.Logical().Write(fmt.Sprintf("apitokens/config/invalid-%d", i), tc.data)
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 400 || !strings.Contains(strings.Join(re.Errors, " "), tc.field) {
			t.Errorf("case %d: want a 400 naming %s, got %v", i, tc.field, err)
		}
	}
	// Immutable provider.
	v.cli(false, "write", "apitokens/config/immutable", "provider=opsnow", "api_key=k", "base_url="+url+simulator.OpsNowPrefix)
	if out := v.cli(true, "write", "apitokens/config/immutable", "provider=offblocks"); !strings.Contains(out, "Code: 400") || !strings.Contains(out, "immutable") {
		t.Errorf("immutable provider: %s", out)
	}
	// Reading creds of a missing config, rotating one without a rotation API.
	if out := v.cli(true, "read", "apitokens/creds/missing"); !strings.Contains(out, "Code: 400") || !strings.Contains(out, `no config named "missing"`) {
		t.Errorf("missing config: %s", out)
	}
	if out := v.cli(true, "write", "-f", "apitokens/rotate-root/immutable"); !strings.Contains(out, "Code: 400") || !strings.Contains(out, "no rotation API") {
		t.Errorf("opsnow rotation: %s", out)
	}
}
