//go:build acceptance

package acceptance

import (
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A provider that acknowledges a rotation but applies it minutes later leaves the rotation
// unsettled, in a real Vault through the CLI: rotate-root fails saying so, reads go on with
// the old pair, a delete is refused with a 400 that names force=true, and a forced delete
// goes through and says in the server log what it gave up.
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

	s, err := v.client.Logical().Read("apitokens/creds/unsettled")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Validate(s.Data["token"].(string)); err != nil {
		t.Fatalf("the old pair should still work while the provider lags: %v", err)
	}

	out = v.cli(true, "delete", path)
	if !strings.Contains(out, "Code: 400") || !strings.Contains(out, "unsettled") || !strings.Contains(out, "force=true") {
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
