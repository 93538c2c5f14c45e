package apitokens

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// putSettings stores settings as another node's write would, without telling this node.
func (h *harness) putSettings(perConfig bool) {
	h.t.Helper()
	entry, err := logical.StorageEntryJSON(settingsKey, mountSettings{MetricsPerConfig: perConfig})
	if err == nil {
		err = h.storage.Put(context.Background(), entry)
	}
	if err != nil {
		h.t.Fatal(err)
	}
}

// Settings written on another node apply here when Vault invalidates the key, and when the
// mount starts; only the settings key makes a node read them again.
func TestSettingsFollowStorage(t *testing.T) {
	h := newHarness(t)
	h.putSettings(true)
	h.b.invalidate(context.Background(), "config/other") // not the settings key
	time.Sleep(50 * time.Millisecond)
	if h.b.metrics.perConfig.Load() {
		t.Fatal("a config's invalidation read the settings")
	}
	h.b.invalidate(context.Background(), settingsKey)
	for deadline := time.Now().Add(5 * time.Second); !h.b.metrics.perConfig.Load(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("settings changed on another node not applied after Vault's invalidation")
		}
	}

	started := newHarness(t)
	started.putSettings(true)
	if err := started.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: started.storage}); err != nil {
		t.Fatal(err)
	}
	if !started.b.metrics.perConfig.Load() {
		t.Fatal("stored settings not applied when the mount starts")
	}
}

// Configs whose scheduled rotations fail are listed one by one (up to attentionCap) and
// counted; the series go when the rotation succeeds.
func TestMetricsRotationFailing(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1})
	h.clock.Advance(time.Hour)
	h.periodic()
	if h.stored("ob").Rotation.Failures != 1 {
		t.Fatal("the test does not make the scheduled rotation fail")
	}
	text := h.scrape()
	for _, want := range []string{
		`apitokens_rotation_failures{config="ob",provider="offblocks"} 1`,
		`apitokens_configs_needing_attention{provider="offblocks",reason="rotation_failing"} 1`,
		`apitokens_configs_needing_attention{provider="offblocks",reason="unsettled"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, `apitokens_rotation_failures{config="ops"`) || strings.Contains(text, `apitokens_unsettled_rotations{`) {
		t.Errorf("a healthy config listed:\n%s", text)
	}
	h.sim.ClearFaults()
	h.clock.Advance(time.Hour)
	h.periodic()
	if text := h.scrape(); strings.Contains(text, `apitokens_rotation_failures{`) ||
		!strings.Contains(text, `apitokens_configs_needing_attention{provider="offblocks",reason="rotation_failing"} 0`) {
		t.Fatalf("a config that rotated again is still failing:\n%s", text)
	}
}

// The failing list is capped like the unsettled one, with the exact count beside.
func TestMetricsRotationFailingCap(t *testing.T) {
	h := newHarness(t)
	const n = attentionCap + 3
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("c%03d", i)
		h.mustDo(logical.CreateOperation, "config/"+name, h.offblocksConfig())
		cfg := h.stored(name)
		cfg.Rotation.Failures = 2
		if err := h.b.putConfig(context.Background(), h.storage, name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	h.checkCapped("apitokens_rotation_failures", "rotation_failing", n)
}

// A config deleted on another node loses its per-config series here at the next scrape.
func TestMetricsDetailOfConfigDeletedElsewhere(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.UpdateOperation, "settings", map[string]any{"metrics_per_config": true})
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.creds("ob")
	if text := h.scrape(); !strings.Contains(text, `apitokens_config_tokens_issued_total{config="ob"`) {
		t.Fatalf("no per-config series: the test would prove nothing\n%s", text)
	}
	if err := h.storage.Delete(context.Background(), configKey("ob")); err != nil {
		t.Fatal(err)
	}
	h.b.invalidate(context.Background(), configKey("ob"))
	if text := h.scrape(); strings.Contains(text, `config="ob"`) {
		t.Fatalf("a config deleted on another node keeps its series:\n%s", text)
	}
}
