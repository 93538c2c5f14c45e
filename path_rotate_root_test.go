package apitokens

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

var hex40 = regexp.MustCompile(`^[0-9a-f]{40}$`)

func (h *harness) stored(name string) *accountConfig {
	h.t.Helper()
	c, err := getConfig(context.Background(), h.storage, name)
	if err != nil || c == nil {
		h.t.Fatalf("config %s: %v", name, err)
	}
	return c
}

func (h *harness) walCount() int {
	h.t.Helper()
	ids, err := framework.ListWAL(context.Background(), h.storage)
	if err != nil {
		h.t.Fatal(err)
	}
	return len(ids)
}

// rollback runs one RollbackOperation as Vault's rollback manager does about once a minute:
// the backend's periodic function first (which settles every config holding a fallback or
// retiring credential, and runs due scheduled rotations), then the WAL rollback of every
// entry whatever its age ("immediate"), which turns entries of earlier plugin versions into
// fallbacks (settled by the next run) and settles Bloq create markers.
func (h *harness) rollback() {
	h.t.Helper()
	_, err := h.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RollbackOperation, Storage: h.storage, Data: map[string]any{"immediate": true}})
	if err != nil {
		h.t.Logf("rollback: %v", err)
	}
}

// assertOffBlocksConsistent: a creds read works (settling any interrupted rotation), and the
// stored pair is then the one the provider holds.
func (h *harness) assertOffBlocksConsistent(name string) {
	h.t.Helper()
	h.creds(name)
	key, secret := h.sim.OffBlocksPair(h.obID)
	c := h.stored(name)
	if c.ob().APIKey != key || c.ob().APISecret != secret {
		h.t.Fatalf("stored pair %s is not the provider's %s: the credential is lost", c.ob().APIKey, key)
	}
}

func TestRotateOffBlocks(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	before := h.creds("ob").Data["token"].(string)

	resp := h.mustDo(logical.UpdateOperation, "rotate-root/ob", nil)
	newKey, _ := resp.Data["api_key"].(string)
	if u, err := uuid.Parse(newKey); err != nil || u.Version() != 4 || newKey == obKey {
		t.Fatalf("new api_key %q is not a fresh UUID v4", newKey)
	}
	if resp.Data["last_rotated"] != h.clock.Now().Format("2006-01-02T15:04:05Z") {
		t.Errorf("last_rotated = %v", resp.Data["last_rotated"])
	}
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "apitokens/rotate-root/ob planned=true") {
		t.Errorf("warnings = %v", resp.Warnings)
	}
	c := h.stored("ob")
	if !hex40.MatchString(c.ob().APISecret) || c.ob().APISecret == obSecret {
		t.Errorf("new secret is not 40 fresh hex characters")
	}
	assertNoSecrets(t, "rotate response", strings.Join(valuesOf(resp.Data), " ")+strings.Join(resp.Warnings, " "), c.ob().APISecret, obSecret)
	if _, err := h.sim.Validate(before); err == nil {
		t.Error("a token issued before the rotation still works at the provider")
	}
	h.assertOffBlocksConsistent("ob")
	if h.walCount() != 0 {
		t.Error("WAL entry left behind")
	}
	if h.sim.OffBlocksDeleted(h.obID) {
		t.Fatal("the plugin called DELETE /auth/credentials")
	}
	if got := h.mustDo(logical.ReadOperation, "config/ob", nil).Data["last_rotated"]; got != resp.Data["last_rotated"] {
		t.Errorf("config last_rotated = %v", got)
	}
}

func TestRotateBloq(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	before := h.creds("bq").Data["token"].(string)

	resp := h.mustDo(logical.UpdateOperation, "rotate-root/bq", nil)
	newID, _ := resp.Data["client_id"].(string)
	if newID == "" || newID == bqClient {
		t.Fatalf("client_id = %q", newID)
	}
	if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 1 || keys[0] != newID {
		t.Fatalf("provider keys after rotation = %v, want only %s", keys, newID)
	}
	if _, err := h.sim.Validate(before); err == nil {
		t.Error("a token of the deleted key still works")
	}
	c := h.stored("bq")
	if c.bq().ClientID != newID || c.bq().ClientSecret == bqSecret || c.bq().Username != bqUser {
		t.Errorf("stored config after rotation: %+v", c.publicData(h.clock.Now()))
	}
	assertNoSecrets(t, "rotate response", strings.Join(valuesOf(resp.Data), " "), c.bq().ClientSecret, bqPass)
	h.creds("bq")
	if h.walCount() != 0 {
		t.Error("WAL entry left behind")
	}
}

func TestRotateRefused(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
	h.mustDo(logical.CreateOperation, "config/bq-nologin", h.bloqConfig(map[string]any{"username": "", "password": ""}))
	h.mustDo(logical.CreateOperation, "config/bq-login", map[string]any{"provider": "bloq",
		"base_url": h.url + simulator.BloqPrefix, "username": bqUser, "password": bqPass})
	for name, phrase := range map[string]string{
		"ops":         "opsnow has no rotation API",
		"bq-nologin":  "only with an account login",
		"bq-login":    "rotates client keys only",
		"nonexistent": `no config named "nonexistent"`,
	} {
		resp, err := h.do(logical.UpdateOperation, "rotate-root/"+name, nil)
		if !errors.Is(err, logical.ErrInvalidRequest) || !strings.Contains(respErr(resp).(string), phrase) {
			t.Errorf("%s: want a 400 with %q, got %v %v", name, phrase, err, respErr(resp))
		}
	}
}

func TestRotateBloqInterrupted(t *testing.T) {
	// The create call fails: nothing changes, and the old key goes on working.
	t.Run("create key fails", func(t *testing.T) {
		h := newHarness(t)
		h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
		h.sim.Inject(simulator.RouteBloqKeysCreate, simulator.Fault{Status: 500})
		_, err := h.do(logical.UpdateOperation, "rotate-root/bq", nil)
		wantCoded(t, err, http.StatusBadGateway, "bloq: create client key (POST /users/me/client-keys): status 500")
		if h.stored("bq").bq().ClientID != bqClient || h.walCount() != 0 {
			t.Fatal("a failed create changed the config or left a WAL entry")
		}
		h.creds("bq")
	})
	// The new key is stored as a fallback and confirmed, but storing it as the current key
	// fails: the fallback holds it. While storage fails, reads answer 502 (the old key is
	// about to be deleted); once it heals, Vault's rollback adopts the new key and deletes
	// the old one.
	t.Run("config write fails after the new key works, recovered by rollback", func(t *testing.T) {
		h := newHarness(t)
		h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
		h.failConfigPutsAfter(1)
		if _, err := h.do(logical.UpdateOperation, "rotate-root/bq", nil); err == nil {
			t.Fatal("rotation reported success without storing")
		}
		if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 2 || h.fallbacks("bq") != 1 {
			t.Fatalf("provider keys %v, %d fallbacks: the new key must be held as a fallback", keys, h.fallbacks("bq"))
		}
		h.wantUnsettledRead("bq")
		h.storage.setFailPut(nil)
		h.rollback()
		c := h.stored("bq")
		if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 1 || keys[0] != c.bq().ClientID || c.bq().ClientID == bqClient {
			t.Fatalf("after rollback: stored %s, provider keys %v", c.bq().ClientID, keys)
		}
		if len(c.Fallbacks) != 0 || len(c.Retiring) != 0 {
			t.Fatalf("after rollback: %d fallbacks, %d retiring", len(c.Fallbacks), len(c.Retiring))
		}
		h.creds("bq")
	})
	// The old key cannot be deleted: the rotation succeeds with a warning, the old key is
	// kept as retiring, and Vault's rollback deletes it once the provider lets it.
	t.Run("deleting the old key fails", func(t *testing.T) {
		h := newHarness(t)
		h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
		h.sim.Inject(simulator.RouteBloqKeysDelete, simulator.Fault{Status: 500, Times: -1})
		resp := h.mustDo(logical.UpdateOperation, "rotate-root/bq", nil)
		if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "delete client key") {
			t.Fatalf("warnings = %v", resp.Warnings)
		}
		if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 2 {
			t.Fatalf("provider keys = %v", keys)
		}
		if r := h.stored("bq").Retiring; len(r) != 1 || r[0].(bloq.Credentials).ClientID != bqClient {
			t.Fatalf("retiring = %d credentials, want the old key", len(r))
		}
		h.creds("bq")
		if h.walCount() != 0 {
			t.Error("WAL entry left behind")
		}
		h.sim.ClearFaults()
		h.rollback()
		c := h.stored("bq")
		if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 1 || keys[0] != c.bq().ClientID || len(c.Retiring) != 0 {
			t.Fatalf("after rollback: provider keys %v, stored %s, %d retiring", keys, c.bq().ClientID, len(c.Retiring))
		}
	})
}

// An operator who writes a new credential while a rotation is unsettled wins (rule 4 of
// settle.go): the fallback is given up, never adopted over the operator's write, even
// though the provider took it. A rotation that sent nothing holds no fallback at all.
func TestOperatorWriteSupersedesPendingRotation(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 503, Times: -1})
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1})
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("rotation succeeded against an unreachable provider")
	}
	h.sim.ClearFaults()
	if n := h.fallbacks("ob"); n != 0 {
		// The bearer mint failed before the PUT: nothing upstream changed, nothing held.
		t.Fatalf("%d fallbacks after a rotation that sent nothing", n)
	}
	// Now a rotation whose outcome is unknown (the provider applied it), followed by the
	// operator's own write.
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{AfterApply: true, Status: 500,
		OnHit: func() { h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1}) }})
	if _, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil {
		t.Fatal("rotation succeeded with an unknown outcome")
	}
	h.sim.ClearFaults()
	if n := h.fallbacks("ob"); n != 1 {
		t.Fatalf("an unknown outcome must keep the new pair as a fallback, have %d", n)
	}
	other := "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	h.sim.AddOffBlocks(other, "ffff0000ffff0000ffff0000ffff0000ffff0000")
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"api_key": other, "api_secret": "ffff0000ffff0000ffff0000ffff0000ffff0000",
		"force": true})
	h.rollback()
	if c := h.stored("ob"); len(c.Fallbacks) != 0 || c.ob().APIKey != other {
		t.Fatalf("after rollback: %d fallbacks, stored %s", len(c.Fallbacks), c.ob().APIKey)
	}
	h.creds("ob")
}

// A Bloq deployment that serves only the older login path and lists keys as {id, createdAt}
// (Bloq's newest CLI) still rotates: the old key is found by its id and deleted.
func TestRotateBloqLegacyLoginAndIDOnlyList(t *testing.T) {
	h := newHarness(t)
	h.sim.SetBloqLegacyLogin(true)
	h.sim.SetBloqKeyListIDOnly(true)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	resp := h.mustDo(logical.UpdateOperation, "rotate-root/bq", nil)
	newID := resp.Data["client_id"].(string)
	if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 1 || keys[0] != newID {
		t.Fatalf("provider keys after rotation = %v, want only %s", keys, newID)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "apitokens/rotate-root/bq planned=true") {
		t.Errorf("warnings = %v, want only the one about the old tokens", resp.Warnings)
	}
	h.creds("bq")
}
