//go:build acceptance

package acceptance

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// An operator's mistakes through the real CLI (issue 17): a typo is never a silent
// Success!, a rotation field on a config that cannot rotate is a 400 naming it, provider
// with white space is a 400, a schedule that replaces another says so, and min_token_ttl
// that cannot work is warned about.
func TestOperatorMistakesCLI(t *testing.T) {
	v, sim, url := shared(t)
	opsKey := "ops-" + uuid.NewString()
	sim.AddOpsNowKey(opsKey)
	v.cli(false, "write", "apitokens/config/mistakes-ops", "provider=opsnow", "base_url="+url+simulator.OpsNowPrefix, "api_key="+opsKey)

	out, ok := v.cliAll("write", "apitokens/config/mistakes-ops", "max_tll=5m")
	if !ok || !strings.Contains(out, "ignored these unrecognized parameters: [max_tll]") {
		t.Errorf("a typo on a config write:\n%s", out)
	}
	out, ok = v.cliAll("write", "apitokens/config/mistakes-ops", "disable_automated_rotation=true")
	if ok || !strings.Contains(out, "Code: 400") || !strings.Contains(out, "* disable_automated_rotation: this config cannot rotate") {
		t.Errorf("a pause on a config that cannot rotate:\n%s", out)
	}
	out, ok = v.cliAll("write", "apitokens/config/mistakes-ops", `rotation_schedule=0 3 * * 1`)
	if ok || !strings.Contains(out, "* rotation_schedule: this config cannot rotate") {
		t.Errorf("a schedule on a config that cannot rotate:\n%s", out)
	}
	read := v.cliJSON("read", "apitokens/config/mistakes-ops")
	for k := range read["data"].(map[string]any) {
		if strings.Contains(k, "rotation") {
			t.Errorf("a config that cannot rotate shows %s", k)
		}
	}

	key, secret := uuid.NewString(), strings.Repeat("7a", 20)
	sim.AddOffBlocks(key, secret)
	out, ok = v.cliAll("write", "apitokens/config/mistakes-ob", "provider= offblocks ", "base_url="+url+simulator.OffBlocksPrefix,
		"api_key="+key, "api_secret="+secret)
	if ok || !strings.Contains(out, "* provider: has leading or trailing white space") {
		t.Errorf("provider with white space:\n%s", out)
	}
	v.cli(false, "write", "apitokens/config/mistakes-ob", "provider=offblocks", "base_url="+url+simulator.OffBlocksPrefix,
		"api_key="+key, "api_secret="+secret, "rotation_period=720h")
	out, ok = v.cliAll("write", "apitokens/config/mistakes-ob", "rotation_schedule=0 3 * * 1")
	if !ok || !strings.Contains(out, "rotation_schedule replaces the rotation_period of 720h") {
		t.Errorf("a schedule replacing a period:\n%s", out)
	}
	out, ok = v.cliAll("write", "apitokens/config/mistakes-ob", "rotation_period=1h", "rotation_schedule=0 * * * *")
	if ok || !strings.Contains(out, "* rotation_schedule: and rotation_period were both given") {
		t.Errorf("both a period and a schedule:\n%s", out)
	}
	out, ok = v.cliAll("write", "apitokens/config/mistakes-ob", "min_token_ttl=10m")
	if !ok || !strings.Contains(out, "min_token_ttl (10m) applies only with token_reuse=true") {
		t.Errorf("min_token_ttl without token_reuse:\n%s", out)
	}
	out, ok = v.cliAll("read", "apitokens/config/mistakes-ob")
	if !ok || !strings.Contains(out, "min_token_ttl (10m) applies only with token_reuse=true") {
		t.Errorf("a config read of min_token_ttl without token_reuse:\n%s", out)
	}
	v.cli(false, "delete", "apitokens/config/mistakes-ob")
	v.cli(false, "delete", "apitokens/config/mistakes-ops")
}
