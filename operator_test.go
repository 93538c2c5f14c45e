package apitokens

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
)

// Tests of what an operator sees on mistakes (issue 17): each answer names the field, each
// rule is stated once and the same everywhere.

// A typo in a config write, or a delete, is never a silent success: the answer carries
// Vault's "ignored these unrecognized parameters" warning, which the framework adds to a
// response only. A clean write stays a 204.
func TestConfigWriteTypoWarns(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	for _, tc := range []struct {
		op   logical.Operation
		data map[string]any
	}{
		{logical.UpdateOperation, map[string]any{"max_tll": "5m"}},
		{logical.DeleteOperation, map[string]any{"forc": true}},
	} {
		resp := h.mustDo(tc.op, "config/ops", tc.data)
		if resp == nil || !strings.Contains(strings.Join(resp.Warnings, " "), "unrecognized parameters") {
			t.Errorf("%s %v: want Vault's unrecognized-parameters warning, got %v", tc.op, tc.data, resp)
		}
		h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	}
	if resp := h.mustDo(logical.UpdateOperation, "config/ops", map[string]any{"max_ttl": "5m"}); resp != nil {
		t.Fatalf("a clean write answered %v, want nothing (Success!)", resp)
	}
}

// min_token_ttl that cannot work is said on the write and on every read: without
// token_reuse it does nothing; at or above the token's documented life nothing is shared.
func TestReuseSettingsWarn(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	cases := []struct {
		data map[string]any
		want string // "" means no warning
	}{
		{map[string]any{"min_token_ttl": "10m"}, "applies only with token_reuse=true"},
		{map[string]any{"token_reuse": true, "min_token_ttl": "1h"}, "min_token_ttl (1h) is not less than the documented life of a token of provider offblocks (1h)"},
		{map[string]any{"token_reuse": true, "min_token_ttl": "59m"}, ""},
		{map[string]any{"token_reuse": false, "min_token_ttl": 0}, ""},
	}
	for _, tc := range cases {
		write := h.mustDo(logical.UpdateOperation, "config/ob", tc.data)
		read := h.mustDo(logical.ReadOperation, "config/ob", nil)
		for what, resp := range map[string]*logical.Response{"write": write, "read": read} {
			var got string
			if resp != nil {
				got = strings.Join(resp.Warnings, " ")
			}
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("%v: %s warned %q, want %q", tc.data, what, got, tc.want)
			}
		}
	}
}

// Setting one of rotation_period and rotation_schedule replaces the other, saying so;
// giving both is a 400 that names them both.
func TestScheduleOneReplacesTheOther(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "720h"})
	resp := h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"rotation_schedule": "0 3 * * 1", "rotation_window": "2h"})
	if resp == nil || !strings.Contains(strings.Join(resp.Warnings, " "), "rotation_schedule replaces the rotation_period of 720h") {
		t.Fatalf("warnings %v", resp)
	}
	if r := h.stored("ob").Rotation; r.RotationPeriod != 0 || r.RotationSchedule != "0 3 * * 1" || r.RotationWindow != 2*time.Hour {
		t.Fatalf("stored %+v", r.AutomatedRotationParams)
	}
	resp = h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"rotation_period": "24h"})
	if resp == nil || !strings.Contains(strings.Join(resp.Warnings, " "), `rotation_period replaces the rotation_schedule "0 3 * * 1"`) {
		t.Fatalf("warnings %v", resp)
	}
	if r := h.stored("ob").Rotation; r.RotationPeriod != 24*time.Hour || r.RotationSchedule != "" || r.RotationWindow != 0 {
		t.Fatalf("stored %+v", r.AutomatedRotationParams)
	}
	resp, err := h.do(logical.UpdateOperation, "config/ob", map[string]any{"rotation_period": "1h", "rotation_schedule": "0 * * * *"})
	if msg, _ := respErr(resp).(string); !errors.Is(err, logical.ErrInvalidRequest) ||
		!strings.HasPrefix(msg, "rotation_schedule: and rotation_period were both given") {
		t.Fatalf("both given: %v %v", err, msg)
	}
}

// A pause keeps the schedule: resuming it does not restart the period, which still counts
// from when it was set (a rotation due meanwhile waits only for the leases of the pause).
func TestSchedulePauseKeepsIt(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "3h"})
	want := h.nextRotation("ob")
	h.clock.Advance(30 * time.Minute)
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"disable_automated_rotation": true})
	h.clock.Advance(10 * time.Minute)
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"disable_automated_rotation": false})
	if got := h.nextRotation("ob"); got != want {
		t.Fatalf("next_vault_rotation after a pause = %s, want %s (as before the pause)", got, want)
	}
	// Paused past its slot: the missed rotation runs, once the last token handed out during
	// the pause (uncapped: 59 minutes) has ended.
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"disable_automated_rotation": true})
	h.clock.Advance(3 * time.Hour)
	read := h.clock.Now()
	lease := h.creds("ob").Secret.TTL
	h.clock.Advance(10 * time.Minute)
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"disable_automated_rotation": false})
	if got, bound := h.nextRotation("ob"), read.Add(lease+rotationLeaseMargin+rotationEarly).UTC().Format(time.RFC3339); got != bound {
		t.Fatalf("next_vault_rotation after a long pause = %s, want %s (the pause's last lease ends)", got, bound)
	}
	// With no lease handed out during a pause, a missed rotation runs at once.
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"disable_automated_rotation": true})
	h.clock.Advance(5 * time.Hour)
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"disable_automated_rotation": false})
	if next := h.nextRotation("ob"); next > h.clock.Now().UTC().Format(time.RFC3339) {
		t.Fatalf("next_vault_rotation after a pause with no lease = %s, want now (%s) or before", next, h.clock.Now().UTC())
	}
}

// One rule for configs that cannot rotate (cannotRotate): no rotation field on read, a 400
// naming the field that asks for a schedule or a pause, and the same words in the README,
// rotate-root's path-help and the rotation_period description.
func TestConfigsThatCannotRotate(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(map[string]any{"username": "", "password": ""}))
	h.mustDo(logical.CreateOperation, "config/bqr", h.bloqConfig(nil))
	for _, name := range []string{"ops", "bq"} {
		resp := h.mustDo(logical.ReadOperation, "config/"+name, nil)
		for k := range resp.Data {
			if strings.Contains(k, "rotation") || strings.HasPrefix(k, "fallback") {
				t.Errorf("config/%s (cannot rotate) shows %s", name, k)
			}
		}
		// Values that ask for nothing are accepted, as a tool that writes every field sends them.
		h.mustDo(logical.UpdateOperation, "config/"+name, map[string]any{"rotation_period": 0, "disable_automated_rotation": false})
		resp, err := h.do(logical.UpdateOperation, "config/"+name, map[string]any{"rotation_window": "2h"})
		if msg, _ := respErr(resp).(string); !errors.Is(err, logical.ErrInvalidRequest) || !strings.HasPrefix(msg, "rotation_window: this config cannot rotate") {
			t.Errorf("rotation_window on config/%s: %v %v", name, err, msg)
		}
	}
	if resp := h.mustDo(logical.ReadOperation, "config/bqr", nil); resp.Data["rotation_period"] == nil {
		t.Error("a Bloq config with keys and a login (it can rotate) does not show its schedule")
	}
	// A config that would lose what it rotates with while it has a schedule, paused or not.
	h.mustDo(logical.UpdateOperation, "config/bqr", map[string]any{"rotation_period": "24h"})
	for _, paused := range []bool{false, true} {
		h.mustDo(logical.UpdateOperation, "config/bqr", map[string]any{"disable_automated_rotation": paused})
		resp, err := h.do(logical.UpdateOperation, "config/bqr", map[string]any{"username": "", "password": ""})
		if msg, _ := respErr(resp).(string); !errors.Is(err, logical.ErrInvalidRequest) || !strings.HasPrefix(msg, "rotation_period: ") ||
			!strings.Contains(msg, "clear the schedule first") {
			t.Fatalf("removing the login of a scheduled config (paused %v): %v %v", paused, err, msg)
		}
	}
	// Clearing a cron schedule clears its window with it.
	h.mustDo(logical.UpdateOperation, "config/bqr", map[string]any{"rotation_schedule": "0 3 * * *", "rotation_window": "2h"})
	h.mustDo(logical.UpdateOperation, "config/bqr", map[string]any{"rotation_schedule": ""})
	if r := h.stored("bqr").Rotation; r.RotationSchedule != "" || r.RotationWindow != 0 || r.RotationPeriod != 0 {
		t.Fatalf("after clearing the schedule: %+v", r.AutomatedRotationParams)
	}

	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	help := h.mustDo(logical.HelpOperation, "rotate-root/x", nil).Data["help"].(string)
	texts := map[string]string{"README.md": strings.Join(strings.Fields(string(readme)), " "),
		"rotate-root path-help": strings.Join(strings.Fields(help), " "), "rotation_period description": rotationPeriodDesc}
	for where, text := range texts {
		if !strings.Contains(text, cannotRotate) {
			t.Errorf("%s does not say which configs cannot rotate as the code does: %q", where, cannotRotate)
		}
	}
}

// provider follows the rule of every non-secret text field: used exactly as given,
// surrounding white space refused, naming the field.
func TestProviderExactly(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{" offblocks ", "offblocks\n", "OffBlocks"} {
		cfg := h.offblocksConfig()
		cfg["provider"] = p
		resp, err := h.do(logical.CreateOperation, "config/x", cfg)
		if msg, _ := respErr(resp).(string); !errors.Is(err, logical.ErrInvalidRequest) || !strings.HasPrefix(msg, "provider: ") {
			t.Errorf("provider %q: %v %v", p, err, msg)
		}
	}
	cfg := h.offblocksConfig()
	cfg["base_url"] = " " + cfg["base_url"].(string)
	if resp, err := h.do(logical.CreateOperation, "config/x", cfg); !errors.Is(err, logical.ErrInvalidRequest) ||
		!strings.HasPrefix(respErr(resp).(string), "base_url: has leading or trailing white space") {
		t.Errorf("base_url with white space: %v %v", err, respErr(resp))
	}
}

// A creds read says when min_ttl or min_token_ttl cannot work: min_ttl without token_reuse
// is ignored, and a min_token_ttl of the token's whole life shares nothing.
func TestCredsReuseWarnings(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	resp := h.mustDo(logical.ReadOperation, "creds/ob", map[string]any{"min_ttl": "10m"})
	if w := strings.Join(resp.Warnings, " "); !strings.Contains(w, "min_ttl (10m) is ignored: config token_reuse is off") {
		t.Fatalf("min_ttl without token_reuse: warnings %q", w)
	}
	if resp := h.mustDo(logical.ReadOperation, "creds/ob", nil); len(resp.Warnings) != 0 {
		t.Fatalf("a plain read warned: %v", resp.Warnings)
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"token_reuse": true, "min_token_ttl": "1h"})
	for i := 0; i < 2; i++ {
		h.clock.Advance(time.Second)
		resp := h.mustDo(logical.ReadOperation, "creds/ob", nil)
		if w := strings.Join(resp.Warnings, " "); !strings.Contains(w, "min_token_ttl (1h) is not less than this token's life (1h): no token is shared") {
			t.Fatalf("read %d with min_token_ttl of the token's life: warnings %q", i, w)
		}
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"min_token_ttl": "30m"})
	h.creds("ob")
	if resp := h.mustDo(logical.ReadOperation, "creds/ob", map[string]any{"min_ttl": "40m"}); len(resp.Warnings) != 0 {
		t.Fatalf("a read with a min_ttl that can work warned: %v", resp.Warnings)
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"min_token_ttl": "1h"})
	h.creds("ob") // mints: the warning is due
	resp = h.mustDo(logical.ReadOperation, "creds/ob", nil)
	if len(resp.Warnings) != 0 {
		t.Fatalf("a read that got the shared token warned: %v", resp.Warnings)
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"min_token_ttl": 0})
	resp = h.mustDo(logical.ReadOperation, "creds/ob", map[string]any{"min_ttl": "2h"})
	if w := strings.Join(resp.Warnings, " "); !strings.Contains(w, "min_ttl (2h) is more than this fresh token's life (1h)") {
		t.Fatalf("min_ttl beyond the token's life: warnings %q", w)
	}
}

// The durations that bound the config's fields are written the same way, from the code's own
// constants, in the README's field tables, in the fields' descriptions (path-help and
// OpenAPI) and in the errors.
func TestDurationsAgree(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Join(strings.Fields(string(raw)), " ")
	fields := configFields()
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	errOf := func(data map[string]any) string {
		resp, _ := h.do(logical.UpdateOperation, "config/ob", data)
		s, _ := respErr(resp).(string)
		return s
	}
	cases := []struct {
		field, readme, desc, err string
		data                     map[string]any
	}{
		{"request_timeout", "default " + formatDuration(apiclient.DefaultTimeout) + ", at most " + formatDuration(maxRequestTimeout),
			"Default " + formatDuration(apiclient.DefaultTimeout) + "; at most " + formatDuration(maxRequestTimeout),
			"request_timeout: must be at most " + formatDuration(maxRequestTimeout), map[string]any{"request_timeout": "11m"}},
		{"rotation_period", "rotate this often (at least `" + formatDuration(minRotationPeriod) + "`)",
			"(at least " + formatDuration(minRotationPeriod) + ")",
			"rotation_period: must be at least " + formatDuration(minRotationPeriod), map[string]any{"rotation_period": "30s"}},
		{"rotation_window", "at least `1h`", "(at least 1h)", "rotation_window: must be at least 1h",
			map[string]any{"rotation_schedule": "0 3 * * *", "rotation_window": "10m"}},
	}
	for _, tc := range cases {
		if !strings.Contains(readme, tc.readme) {
			t.Errorf("README lacks %q", tc.readme)
		}
		if !strings.Contains(fields[tc.field].Description, tc.desc) {
			t.Errorf("%s's description %q lacks %q", tc.field, fields[tc.field].Description, tc.desc)
		}
		if got := errOf(tc.data); !strings.HasPrefix(got, tc.err) || strings.Contains(got, "0s") {
			t.Errorf("%v: error %q, want it to start with %q and write durations as the README does", tc.data, got, tc.err)
		}
	}
}

// The README's table of input limits is the code's.
func TestReadmeLimitsAreTheCode(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| ([0-9,]+) \\| (.*)\\|$")
	seen := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		n, err := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
		if err != nil {
			continue
		}
		for _, f := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(m[2], -1) {
			seen[f[1]] = true // a word the code does not list (provider, true) takes the default: checked too
			if maxBytes(f[1]) != n {
				t.Errorf("README says %s takes at most %d bytes; the code, %d", f[1], n, maxBytes(f[1]))
			}
		}
		if strings.Contains(m[2], "the name") && maxBytes("name") != n {
			t.Errorf("README says a name takes at most %d bytes; the code, %d", n, maxBytes("name"))
		}
		if strings.Contains(m[2], "every other field") && defaultMaxFieldBytes != n {
			t.Errorf("README says other fields take at most %d bytes; the code, %d", n, defaultMaxFieldBytes)
		}
	}
	for f := range maxFieldBytes {
		if !seen[f] && f != "name" {
			t.Errorf("README's limits table lacks %s", f)
		}
	}
}
