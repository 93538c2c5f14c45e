package apitokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// Contracts of settle.go that the rest of the suite left unguarded: what a settle reports,
// the order in which a retired key is recorded and deleted, what an adopt keeps, what the
// unsettled error says, and the deadline a read's settle runs under.

// bloqFallback writes config bq and holds, as its fallback, a second key of the account
// whose secret the provider takes when works, and refuses (401) otherwise.
func (h *harness) bloqFallback(works bool) credential {
	h.t.Helper()
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	next := h.stored("bq").bq()
	next.ClientID, next.ClientSecret = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12", "ab12ab12"
	upstream := next.ClientSecret
	if !works {
		upstream = "not-the-secret-vault-holds"
	}
	h.sim.AddBloqKey(h.bqUserID, next.ClientID, upstream)
	h.holdFallback("bq", next)
	return next
}

// A node that has never read the config (another node of the cluster) finds it holding a
// fallback the provider takes: its read settles it and hands out a token in the same request
// (the settle reports the change), not a 502.
func TestFreshNodeReadAdoptsAWorkingFallback(t *testing.T) {
	h := newHarness(t)
	next := h.pendingOffBlocks()
	other := h.otherNode()
	req := &logical.Request{Operation: logical.ReadOperation, Path: "creds/ob", Storage: h.storage, MountPoint: "apitokens/"}
	resp, err := other.HandleRequest(context.Background(), req)
	if err != nil || resp == nil || resp.IsError() {
		t.Fatalf("a read on another node of a config whose fallback works: %v %v", err, respErr(resp))
	}
	if _, err := h.sim.Validate(resp.Data["token"].(string)); err != nil {
		t.Fatalf("the token is refused: %v", err)
	}
	if h.stored("ob").ob().APIKey != next.APIKey {
		t.Fatal("the fallback was not adopted")
	}
}

// settle reports whether it changed anything: an adopted fallback and a key deleted upstream
// are changes; a retiring key that could not be deleted is none.
func TestSettleReportsWhatItChanged(t *testing.T) {
	ctx := context.Background()
	t.Run("adopted", func(t *testing.T) {
		h := newHarness(t)
		h.pendingOffBlocks()
		if _, changed, err := h.b.settle(ctx, h.storage, "ob"); err != nil || !changed {
			t.Fatalf("a settle that adopted a fallback: changed=%v %v", changed, err)
		}
	})
	t.Run("retired", func(t *testing.T) {
		h := newHarness(t)
		h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
		h.retiringBloqKey()
		if _, changed, err := h.b.settle(ctx, h.storage, "bq"); err != nil || !changed {
			t.Fatalf("a settle that deleted a retiring key: changed=%v %v", changed, err)
		}
	})
	t.Run("retire failed", func(t *testing.T) {
		h := newHarness(t)
		h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
		id, _ := h.retiringBloqKey()
		h.sim.Inject(simulator.RouteBloqKeysDelete, simulator.Fault{Status: 503, Times: -1})
		if _, changed, err := h.b.settle(ctx, h.storage, "bq"); err != nil || changed {
			t.Fatalf("a settle whose delete failed: changed=%v %v", changed, err)
		}
		if c := h.stored("bq"); len(c.Retiring) != 1 || !slices.Contains(h.sim.BloqClientIDs(h.bqUserID), id) {
			t.Fatal("a key not deleted upstream was dropped from retiring")
		}
	})
}

// An adopt whose store fails deletes nothing upstream: storage still holds the old key as
// current and the new one as a fallback, so the old key must still work; the next settle
// adopts the new key and only then deletes the old one.
func TestAdoptWhoseStoreFailsDeletesNothingUpstream(t *testing.T) {
	h := newHarness(t)
	next := h.bloqFallback(true)
	h.failConfigPutsAfter(0)
	if _, _, err := h.b.settle(context.Background(), h.storage, "bq"); err == nil {
		t.Fatal("a settle whose adopt was not stored reported success")
	}
	if keys := h.sim.BloqClientIDs(h.bqUserID); !slices.Contains(keys, bqClient) {
		t.Fatalf("keys upstream %v: the key storage holds as current was deleted", keys)
	}
	h.storage.setFailPut(nil)
	h.tick()
	if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 1 || keys[0] != registry.Identifier(next) {
		t.Fatalf("keys upstream %v after the settle", keys)
	}
	h.creds("bq")
}

// A fallback key the provider refuses is recorded as retiring before it is deleted upstream
// (rule 3): when the delete fails, storage holds it as retiring and the config is settled
// (reads get tokens); when the record fails, it is not deleted, and the settle fails.
func TestRefusedBloqFallbackIsRecordedBeforeItsDelete(t *testing.T) {
	t.Run("delete fails", func(t *testing.T) {
		h := newHarness(t)
		next := h.bloqFallback(false)
		h.sim.Inject(simulator.RouteBloqKeysDelete, simulator.Fault{Status: 503, Times: -1})
		_, changed, err := h.b.settle(context.Background(), h.storage, "bq")
		if err != nil || !changed {
			t.Fatalf("settle: changed=%v %v", changed, err)
		}
		c := h.stored("bq")
		if len(c.Fallbacks) != 0 || len(c.Retiring) != 1 || !sameKey(c.Retiring[0], next) {
			t.Fatalf("%d fallbacks, %d retiring: the refused key is not recorded as retiring", len(c.Fallbacks), len(c.Retiring))
		}
		h.creds("bq")
	})
	t.Run("record fails", func(t *testing.T) {
		h := newHarness(t)
		next := h.bloqFallback(false)
		h.failConfigPutsAfter(0)
		if _, _, err := h.b.settle(context.Background(), h.storage, "bq"); err == nil {
			t.Error("a settle whose record failed reported success")
		}
		if keys := h.sim.BloqClientIDs(h.bqUserID); !slices.Contains(keys, registry.Identifier(next)) {
			t.Fatalf("keys upstream %v: a key not recorded as retiring was deleted", keys)
		}
	})
}

// A retiring key that is the config's current one is kept upstream, and the keys after it in
// the list are still deleted, not dropped from retiring while alive.
func TestRetireAllGoesOnPastTheCurrentKey(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	id, secret := "0ld0ld0000", "0ld5ec2e75ec2e75ec2e7"
	h.sim.AddBloqKey(h.bqUserID, id, secret)
	c := h.stored("bq")
	c.Retiring = append(c.Retiring, c.cred, c.cred.With("client_id", id).With("client_secret", secret))
	if err := h.b.putConfig(context.Background(), h.storage, "bq", c); err != nil {
		t.Fatal(err)
	}
	h.tick()
	if keys := h.sim.BloqClientIDs(h.bqUserID); len(keys) != 1 || keys[0] != bqClient {
		t.Fatalf("keys upstream %v: want the current key alone", keys)
	}
	if n := len(h.stored("bq").Retiring); n != 0 {
		t.Fatalf("%d retiring left", n)
	}
}

// An OffBlocks adopt keeps nothing of the old pair: the change killed it, so its secret is
// not stored as retiring even when the store after the adopt fails.
func TestOffBlocksAdoptStoresNoOldPair(t *testing.T) {
	h := newHarness(t)
	h.pendingOffBlocks()
	h.failConfigPutsAfter(1)
	_, _, _ = h.b.settle(context.Background(), h.storage, "ob") // storage is checked below
	h.storage.setFailPut(nil)
	if c := h.stored("ob"); c.ob().APIKey == obKey || len(c.Retiring) != 0 {
		t.Fatalf("stored %s with %d retiring: the killed pair was kept", c.ob().APIKey, len(c.Retiring))
	}
}

// The unsettled error says what is known of the change: a re-send refused outright proves
// nothing about the first sending; a re-send without an answer, or a Bloq fallback the
// provider does not answer for, leaves the provider's answer unknown, quoting it once; with
// nothing to quote, no empty parentheses. An acknowledged change quotes the confirmation's
// last answer.
func TestUnsettledErrorSaysWhatIsKnown(t *testing.T) {
	unsettled := func(h *harness, name string) string {
		h.t.Helper()
		_, _, err := h.b.settle(context.Background(), h.storage, name)
		var u *unsettledError
		if !errors.As(err, &u) {
			h.t.Fatalf("settle: want an unsettled error, got %v", err)
		}
		return u.Error()
	}
	t.Run("refused", func(t *testing.T) {
		h := newHarness(t)
		h.pendingOffBlocks()
		h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 400, Times: -1})
		if msg := unsettled(h, "ob"); !strings.Contains(msg, "the change sent again was refused, which proves nothing") {
			t.Errorf("%s", msg)
		}
	})
	t.Run("no answer", func(t *testing.T) {
		h := newHarness(t)
		h.pendingOffBlocks()
		h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 503, Times: -1})
		if msg := unsettled(h, "ob"); !strings.Contains(msg, "the provider's answer to the change is unknown (") ||
			strings.Contains(msg, "refused") {
			t.Errorf("%s", msg)
		}
	})
	t.Run("confirmation unanswered", func(t *testing.T) {
		// The change is taken, and the provider stops answering before it is confirmed: the
		// error quotes the confirmation's answer, not the 401 of the mint before the change.
		h := newHarness(t)
		h.pendingOffBlocks()
		h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{AfterApply: true,
			OnHit: func() { h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1}) }})
		if msg := unsettled(h, "ob"); !strings.Contains(msg, "the provider acknowledged the change (") ||
			!strings.Contains(msg, "503 Service Unavailable") || strings.Contains(msg, "401 Unauthorized") {
			t.Errorf("%s", msg)
		}
	})
	t.Run("bloq unanswered", func(t *testing.T) {
		h := newHarness(t)
		next := h.bloqFallback(true)
		h.sim.Inject(simulator.RouteBloqToken, simulator.Fault{Status: 503, Times: -1,
			Match: func(body []byte) bool { return bytes.Contains(body, []byte(registry.Identifier(next))) }})
		if msg := unsettled(h, "bq"); !strings.Contains(msg, "the provider's answer to the change is unknown (") {
			t.Errorf("%s", msg)
		}
	})
	e := &unsettledError{name: "ob", provider: "offblocks", identifier: "k", why: "a rotation stored it and stopped"}
	if got := e.how(); got != "a rotation stored it and stopped" {
		t.Errorf("how() = %q", got)
	}
}

// A re-send the provider refuses outright, or one never sent (the current pair mints no
// Bearer), is not waited for: the settle confirms nothing and answers at once, so that reads
// of the config do not queue for request_timeout behind it.
func TestUnsentOrRefusedResendIsNotWaitedFor(t *testing.T) {
	for name, fault := range map[string]func(h *harness){
		"refused": func(h *harness) {
			h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{Status: 400, Times: -1})
		},
		"unsent": func(h *harness) {
			h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 503, Times: -1,
				Match: func(body []byte) bool { return bytes.Contains(body, []byte(obKey)) }})
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.pendingOffBlocks()
			fault(h)
			start := h.clock.Now()
			if _, _, err := h.b.settle(context.Background(), h.storage, "ob"); err == nil {
				t.Fatal("settled")
			}
			if waited := h.clock.Now().Sub(start); waited != 0 {
				t.Fatalf("the settle waited %s to confirm a change the provider did not take", waited)
			}
		})
	}
}

// A read's settle runs under the config's own budget (4 × request_timeout), not the default
// one: with request_timeout 5m, its calls get their whole 5 minutes.
func TestSettleForReadUsesTheConfigsBudget(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	var least time.Duration = -1
	h.b.transport = afterAnswer{hook: func(r *http.Request) {
		dl, ok := r.Context().Deadline()
		mu.Lock()
		defer mu.Unlock()
		if left := time.Until(dl); ok && (least < 0 || left < least) {
			least = left
		}
	}}
	cfg := h.offblocksConfig()
	cfg["request_timeout"] = 300
	h.mustDo(logical.CreateOperation, "config/ob", cfg)
	next := h.pendingOffBlocks2()
	mu.Lock()
	least = -1
	mu.Unlock()
	if _, _, err := h.b.settleForRead(context.Background(), h.storage, "ob"); err != nil {
		t.Fatal(err)
	}
	if h.stored("ob").ob().APIKey != next {
		t.Fatal("not adopted")
	}
	if least < 4*time.Minute {
		t.Fatalf("a settle's call had %s left of its deadline, want about request_timeout (5m)", least)
	}
}

// pendingOffBlocks2 holds a new pair, never sent, as a fallback of the existing config ob,
// and returns its api_key.
func (h *harness) pendingOffBlocks2() string {
	h.t.Helper()
	next, err := offblocks.GenerateCredentials()
	if err != nil {
		h.t.Fatal(err)
	}
	h.holdFallback("ob", next)
	return next.APIKey
}

// Only a write refused because this node cannot write becomes logical.ErrReadOnly (which
// Vault forwards to the active node): any other storage refusal, such as the "relative
// paths not supported" of Vault's storage view for a config named "a..b", is answered here.
func TestOnlyReadOnlyStorageIsForwarded(t *testing.T) {
	h := newHarness(t)
	req := &logical.Request{Operation: logical.CreateOperation, Path: "config/a..b", Data: h.opsnowConfig(),
		Storage: logical.NewStorageView(h.storage, ""), MountPoint: "apitokens/"}
	if _, err := h.b.HandleRequest(context.Background(), req); err == nil || errors.Is(err, logical.ErrReadOnly) {
		t.Errorf("a write the storage view refuses: %v, want its own error", err)
	}
	if err := readOnlyAware(fmt.Errorf("store: %w", logical.ErrReadOnly)); err != logical.ErrReadOnly {
		t.Errorf("readOnlyAware of a wrapped ErrReadOnly: %v", err)
	}
}
