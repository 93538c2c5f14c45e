package apitokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A read that begins with room for a lease before the scheduled rotation, but whose mint
// outlasts that room, waits for the rotation and hands out a token of the new credential in
// the same request (issue 28, item 4: no 503 at a scheduled rotation). The read begins at
// T-4s (T: next_vault_rotation; a lease of 2 s fits before T-2s) and its mint ends at
// T-1.5s, when no lease fits: the rotation may start at T-1s and kills the first token
// (OffBlocks' PUT, Bloq's key delete). With token_reuse on or off, OffBlocks and Bloq
// (client keys and a login): the read succeeds, its token is valid at the provider after
// the rotation, the rotation ran once, the lease ends a margin before the next rotation may
// start, and only the token handed out is counted as issued.
func TestSlowMintAtRotationGetsTheNewCredential(t *testing.T) {
	type kind struct {
		name, provider, route, rotateRoute string
		write                              func(h *harness, extra map[string]any)
		rotated                            func(h *harness) bool
	}
	kinds := []kind{
		{name: "ob", provider: "offblocks", route: simulator.RouteOffBlocksToken, rotateRoute: simulator.RouteOffBlocksCredentials,
			write:   func(h *harness, extra map[string]any) { h.scheduledOffBlocks(extra) },
			rotated: func(h *harness) bool { return h.rotatedFrom(obKey) }},
		{name: "bq", provider: "bloq", route: simulator.RouteBloqToken, rotateRoute: simulator.RouteBloqKeysCreate,
			write: func(h *harness, extra map[string]any) {
				h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(extra))
			},
			rotated: func(h *harness) bool {
				ids := h.sim.BloqClientIDs(h.bqUserID)
				return len(ids) == 1 && ids[0] != bqClient && h.stored("bq").bq().ClientID == ids[0]
			}},
	}
	for _, k := range kinds {
		for _, reuse := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/token_reuse=%v", k.provider, reuse), func(t *testing.T) {
				h := newHarness(t)
				k.write(h, map[string]any{"rotation_period": "1h", "token_reuse": reuse})
				h.clock.Advance(time.Hour - 4*time.Second)
				if c := h.stored(k.name); c.rotateFirst(h.clock.Now()) {
					t.Fatal("the read begins with no room for a lease: the test would prove nothing")
				}
				h.sim.Inject(k.route, simulator.Fault{OnHit: func() { h.clock.Advance(2500 * time.Millisecond) }})

				resp := h.creds(k.name) // fails on an error, or a token the provider refuses now
				if !k.rotated(h) {
					t.Fatal("the read did not wait for the rotation")
				}
				if n := h.sim.Calls(k.rotateRoute); n != 1 {
					t.Fatalf("%d rotations upstream (%s), want 1", n, k.rotateRoute)
				}
				now := h.clock.Now()
				bound := h.stored(k.name).rotationStart(now).Add(-rotationLeaseMargin)
				if end := now.Add(resp.Secret.TTL); end.After(bound) || resp.Secret.TTL < time.Minute {
					t.Fatalf("lease %s ends %s after the bound before the next rotation", resp.Secret.TTL, end.Sub(bound))
				}
				text := h.scrape()
				for _, want := range []string{
					fmt.Sprintf(`apitokens_tokens_issued_total{kind="fresh",provider=%q} 1`, k.provider),
					fmt.Sprintf(`apitokens_rotations_total{outcome="success",provider=%q,trigger="scheduled"} 1`, k.provider),
				} {
					if !strings.Contains(text, want) {
						t.Errorf("metrics lack %s:\n%s", want, text)
					}
				}
				if strings.Contains(text, `kind="shared"`) {
					t.Errorf("a shared token counted:\n%s", text)
				}
			})
		}
	}
}

// setClock moves the harness's clock to at (forward only).
func (h *harness) setClock(at time.Time) { h.clock.Advance(at.Sub(h.clock.Now())) }

// The retry is bounded: a read each of whose mints outlasts the room left before the next
// rotation (every mint ends half a second before that rotation may start) is answered the
// 503 that says to read again after three rounds, having rotated twice, and counts no token.
func TestSlowMintAtEveryRotationIsRefusedAfterThreeRounds(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.clock.Advance(time.Hour - 4*time.Second)
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Times: -1, OnHit: func() {
		if c, err := getConfig(context.Background(), h.storage, "ob"); err == nil && c != nil && !c.unsettled() {
			h.setClock(c.rotationStart(h.clock.Now()).Add(-500 * time.Millisecond)) // a read's mint, not a rotation's confirmation
		}
	}})
	resp, err := h.do(logical.ReadOperation, "creds/ob", nil)
	code, ok := err.(logical.HTTPCodedError)
	if !ok || code.Code() != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "too soon for a lease of this token: read again") {
		t.Fatalf("err=%v resp=%v, want the 503 that says to read again", err, resp)
	}
	if n := h.sim.Calls(simulator.RouteOffBlocksCredentials); n != 2 {
		t.Fatalf("%d rotations, want 2 (rounds 2 and 3 each rotate first)", n)
	}
	if text := h.scrape(); strings.Contains(text, "apitokens_tokens_issued_total{") {
		t.Fatalf("a token not handed out was counted:\n%s", text)
	}
}

// On a node that cannot write, a read whose mint outlasted the room is forwarded
// (logical.ErrReadOnly) to the active node, which rotates: it neither waits nor rotates.
func TestSlowMintAtRotationOnAStandbyIsForwarded(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	h.clock.Advance(time.Hour - 4*time.Second)
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{OnHit: func() { h.clock.Advance(2500 * time.Millisecond) }})
	before := h.clock.Now()
	if _, err := h.do(logical.ReadOperation, "creds/ob", nil); err != logical.ErrReadOnly {
		t.Fatalf("err %v, want logical.ErrReadOnly", err)
	}
	if h.rotatedFrom(obKey) || h.clock.Now().Sub(before) != 2500*time.Millisecond {
		t.Fatalf("the standby rotated (%v) or waited (%s in all)", h.rotatedFrom(obKey), h.clock.Now().Sub(before))
	}
}

// A reader that gives up during its slow mint gets its context's error and rotates nothing:
// with token_reuse the mint runs on, under the config's request_timeout, and is shared.
func TestSlowMintAtRotationReaderGivingUp(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h", "token_reuse": true})
	h.clock.Advance(time.Hour - 4*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{OnHit: func() {
		h.clock.Advance(2500 * time.Millisecond)
		cancel()
	}})
	req := &logical.Request{Operation: logical.ReadOperation, Path: "creds/ob", Storage: h.storage, MountPoint: "apitokens/"}
	if _, err := h.b.HandleRequest(ctx, req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want the reader's context.Canceled", err)
	}
	if h.rotatedFrom(obKey) {
		t.Fatal("a reader that gave up performed the rotation")
	}
}
