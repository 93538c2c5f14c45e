//go:build acceptance

package acceptance

import (
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A provider that acknowledges a rotation but applies it minutes later leaves the rotation
// unsettled, in a real Vault through the CLI: rotate-root fails saying so, the config read
// shows the fallback credential it holds, reads hand out no token of the old pair (it may
// die at any moment) but a 502 that says so, a credential write and a delete are refused
// with a 400 that names force=true and the mount, and a forced delete goes through and says
// in the server log what it gave up.
func TestUnsettledRotationBlocksDeleteUntilForced(t *testing.T) {
	v, _, _ := shared(t)
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	key, secret := uuid.NewString(), strings.Repeat("5e", 20)
	sim.AddOffBlocks(key, secret)
	sim.SetOffBlocksLag(10 * time.Minute)
	path := "apitokens/config/unsettled"
	v.cli(false, "write", path, "provider=offblocks", "base_url="+srv.URL+simulator.OffBlocksPrefix,
		"api_key="+key, "api_secret="+secret, "request_timeout=2s")

	start := time.Now()
	out := v.cli(true, "write", "-f", "apitokens/rotate-root/unsettled")
	if !strings.Contains(out, "Code: 502") || !strings.Contains(out, "unsettled") || !strings.Contains(out, "acknowledged") {
		t.Fatalf("rotate-root against a lagging provider:\n%s", out)
	}
	t.Logf("rotate-root gave up confirming after %s (request_timeout 2s)", time.Since(start).Round(time.Millisecond))

	cfg, err := v.client.Logical().Read(path)
	if err != nil || cfg == nil {
		t.Fatalf("config read: %v", err)
	}
	if n := fmt.Sprint(cfg.Data["fallback_credentials"]); n != "1" || cfg.Data["fallback_since"] == nil || len(cfg.Warnings) == 0 {
		t.Fatalf("config read during an unsettled rotation: fallback_credentials=%s fallback_since=%v warnings=%v",
			n, cfg.Data["fallback_since"], cfg.Warnings)
	}
	for k, want := range map[string]string{"unsettled_trigger": "manual", "unsettled_since": fmt.Sprint(cfg.Data["fallback_since"])} {
		if got := fmt.Sprint(cfg.Data[k]); got != want {
			t.Errorf("config read: %s = %s, want %s", k, got, want)
		}
	}
	for _, k := range []string{"unsettled_credential", "unsettled_waiting_for", "unsettled_what_to_do"} {
		if s, _ := cfg.Data[k].(string); s == "" {
			t.Errorf("config read: no %s", k)
		}
	}
	out = v.cli(true, "read", "apitokens/creds/unsettled")
	if !strings.Contains(out, "Code: 502") || strings.Count(out, "unsettled since") != 1 || strings.Count(out, "status 401") != 1 ||
		strings.Contains(out, key) || strings.Contains(out, fmt.Sprint(cfg.Data["unsettled_credential"])) {
		t.Fatalf("a read during an unsettled rotation should answer 502 (saying so once, naming no credential), "+
			"not a token of the old pair:\n%s", out)
	}
	// A credential write (a script repeating the config) is refused and changes nothing.
	out = v.cli(true, "write", path, "api_key="+key, "api_secret="+secret)
	if !strings.Contains(out, "Code: 400") || !strings.Contains(out, "unsettled") ||
		!strings.Contains(out, "force=true (vault write apitokens/config/unsettled force=true") {
		t.Fatalf("a credential write during an unsettled rotation:\n%s", out)
	}
	if cfg, err := v.client.Logical().Read(path); err != nil || fmt.Sprint(cfg.Data["fallback_credentials"]) != "1" {
		t.Fatalf("the refused write changed the config: %v %v", cfg, err)
	}

	out = v.cli(true, "delete", path)
	if !strings.Contains(out, "Code: 400") || !strings.Contains(out, "unsettled") ||
		!strings.Contains(out, "vault delete apitokens/config/unsettled force=true") {
		t.Fatalf("delete with an unsettled rotation:\n%s", out)
	}
	if cfg, err := v.client.Logical().Read(path); err != nil || cfg == nil {
		t.Fatalf("the refused delete removed the config: %v", err)
	}
	v.cli(false, "delete", path, "force=true")
	if cfg, err := v.client.Logical().Read(path); err != nil || cfg != nil {
		t.Fatalf("the forced delete left the config: %v %v", cfg, err)
	}
	log, _ := os.ReadFile(v.logPath)
	if !strings.Contains(string(log), "forced delete") {
		t.Fatal("the forced delete did not log what it gave up")
	}
	if strings.Contains(string(log), secret) {
		t.Fatal("the server log holds the secret")
	}
}
