package apitokens

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
)

// Named tests of the safety net's classes, beside the simulation that found each bug first
// (testdata/simulation-seeds.txt).

// A delete whose storage write lands and then reports an error leaves nothing in the node's
// memory: the next read finds no config, as storage says (seed 234).
func TestDeleteThatLandsThenFailsForgetsTheConfig(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.creds("ob") // remembered
	h.storage.mu.Lock()
	h.storage.landThenFail = func(k string) bool { return k == configKey("ob") }
	h.storage.mu.Unlock()
	if _, err := h.do(logical.DeleteOperation, "config/ob", nil); err == nil {
		t.Fatal("the delete reported no error")
	}
	resp, err := h.do(logical.ReadOperation, "creds/ob", nil)
	if err == nil && resp != nil && !resp.IsError() {
		t.Fatalf("creds/ob answered a token after storage deleted the config: %v", resp.Data["expires_at"])
	}
}

// retiringBloqKey stores, beside config bq's current key, a second key of the account held as
// retiring (as a rotation whose delete of the old key failed leaves it), and returns its id
// and secret.
func (h *harness) retiringBloqKey() (string, string) {
	h.t.Helper()
	id, secret := "0ld0ld0000", "0ld5ec2e75ec2e75ec2e7"
	h.sim.AddBloqKey(h.bqUserID, id, secret)
	c := h.stored("bq")
	c.Retiring = append(c.Retiring, c.cred.With("client_id", id).With("client_secret", secret))
	if err := h.b.putConfig(context.Background(), h.storage, "bq", c); err != nil {
		h.t.Fatal(err)
	}
	return id, secret
}

// tick runs Vault's rollback as its once-a-minute pass does: the periodic function, and
// every WAL entry's rollback.
func (h *harness) tick() {
	h.t.Helper()
	if _, err := h.do(logical.RollbackOperation, "", map[string]any{"immediate": true}); err != nil {
		h.t.Fatal(err)
	}
}

// An operator who writes a key that is being retired back as the credential keeps it
// upstream, even with its secret re-typed with a trailing line break (which no longer matches
// the retiring pair): the write stops retiring it, and no settle deletes it (seed 3031).
func TestWriteBackOfARetiringKeyKeepsItUpstream(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	id, secret := h.retiringBloqKey()
	h.mustDo(logical.UpdateOperation, "config/bq", map[string]any{"client_id": id, "client_secret": secret + "\n"})
	if n := len(h.stored("bq").Retiring); n != 0 {
		t.Fatalf("the written key is still held as retiring (%d)", n)
	}
	h.tick()
	if !slices.Contains(h.sim.BloqClientIDs(h.bqUserID), id) {
		t.Fatal("the settle deleted upstream the key an operator wrote as the credential")
	}
}

// A retiring credential that is the config's current one again is dropped from retiring and
// never deleted upstream, however it got there.
func TestRetireNeverDeletesTheCurrentKey(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	c := h.stored("bq")
	c.Retiring = append(c.Retiring, c.cred.With("client_secret", bqSecret+"\n"))
	if err := h.b.putConfig(context.Background(), h.storage, "bq", c); err != nil {
		t.Fatal(err)
	}
	h.tick()
	if !slices.Contains(h.sim.BloqClientIDs(h.bqUserID), bqClient) {
		t.Fatal("the settle deleted the config's current key upstream")
	}
	if n := len(h.stored("bq").Retiring); n != 0 {
		t.Fatalf("the current key is still held as retiring (%d)", n)
	}
	// Stored, it is not even attached (state.go); held in memory, retireAll skips it too.
	c = h.stored("bq")
	c.Retiring = append(c.Retiring, c.cred.With("client_secret", bqSecret+"\n"))
	ctx, prov, err := h.b.providerFor(context.Background(), "bq", c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.b.retireAll(ctx, h.storage, "bq", c, prov.(rotator)); err != nil || len(c.Retiring) != 0 {
		t.Fatalf("retireAll of the current key alone: %v, %d retiring", err, len(c.Retiring))
	}
	if !slices.Contains(h.sim.BloqClientIDs(h.bqUserID), bqClient) {
		t.Fatal("retireAll deleted the config's current key upstream")
	}
	if !strings.Contains(h.logs.String(), "is the current one again") {
		t.Fatal("no warning says why the retiring credential was dropped")
	}
}

// slowAnswers is a transport whose answers take d to arrive, by the harness's clock: the
// provider issued the token d before the plugin reads the answer.
type slowAnswers struct {
	clock *fakeClock
	d     time.Duration
}

func (s slowAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	s.clock.Advance(s.d)
	return resp, err
}

// An answer with no expiry at all, for every provider and grant, arriving 90 s after the
// provider issued it: the token's expiry is the documented lifetime of its kind counted from
// before the call (never from after it, which would outlive the token by the answer's
// delay), and the lease ends a margin before that.
func TestNoExpiryEveryProviderAndGrantAfterASlowAnswer(t *testing.T) {
	h := newHarness(t)
	h.b.transport = slowAnswers{clock: h.clock, d: 90 * time.Second}
	h.sim.SetNoExpiry(func(string, string) bool { return true })
	h.everyGrant()
	for name, life := range map[string]time.Duration{"ob": time.Hour, "bq": time.Hour, "bq-acct": 12 * time.Hour,
		"bq-rt": time.Hour, "ops": 3600 * time.Second} {
		before := h.clock.Now()
		resp := h.creds(name)
		tok, _ := resp.Data["token"].(string)
		real, ok := h.sim.RealExpiry(tok)
		if !ok || strings.Count(tok, ".") != 0 {
			t.Fatalf("%s: the simulator issued no opaque token", name)
		}
		if want := before.Add(life).UTC().Format(time.RFC3339); resp.Data["expires_at"] != want || !real.Equal(before.Add(life)) {
			t.Errorf("%s: expires_at %v (really %s), want %s: the documented %s from before the call", name,
				resp.Data["expires_at"], real.Format(time.RFC3339), want, life)
		}
		now := h.clock.Now()
		if end, latest := now.Add(resp.Secret.TTL), real.Add(-leaseMargin(real.Sub(now))); end.After(latest) {
			t.Errorf("%s: the lease ends %s, after %s (a margin before the token dies)", name, end, latest)
		}
	}
}

// otherNode is a second backend on the harness's storage, simulator and clock: another Vault
// node of the cluster.
func (h *harness) otherNode() *backend {
	h.t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = h.storage
	conf.System = &logical.StaticSystemView{DefaultLeaseTTLVal: time.Hour, MaxLeaseTTLVal: 24 * time.Hour}
	b := newBackend()
	b.now = h.clock.Now
	b.sleep = func(ctx context.Context, d time.Duration) error {
		h.clock.Advance(d)
		return ctx.Err()
	}
	if err := b.Setup(context.Background(), conf); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { b.clean(context.Background()) })
	return b
}

// afterAnswer is a transport that runs hook once the provider has answered a call, before the
// answer reaches the caller.
type afterAnswer struct{ hook func(*http.Request) }

func (a afterAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	a.hook(r)
	return resp, err
}

// A token minted while another node rotates the credential, whose answer arrives after the
// rotation killed it (and after Vault delivered the config's change to this node), is never
// handed out: the read mints again with the new credential. With token_reuse on and off (the
// seed that found it: a shared mint on a standby racing a rotate-root on the active node).
func TestTokenMintedWhileAnotherNodeRotatesIsNotHandedOut(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		h := newHarness(t)
		cfg := h.offblocksConfig()
		cfg["token_reuse"] = reuse
		h.mustDo(logical.CreateOperation, "config/ob", cfg)
		other := h.otherNode()
		rotated := false
		h.b.transport = afterAnswer{hook: func(r *http.Request) {
			if rotated || !strings.HasSuffix(r.URL.Path, "/auth/token") {
				return
			}
			rotated = true
			req := &logical.Request{Operation: logical.UpdateOperation, Path: "rotate-root/ob", Storage: h.storage}
			if resp, err := other.HandleRequest(context.Background(), req); err != nil || resp.IsError() {
				t.Errorf("rotate-root on the other node: %v %v", err, respErr(resp))
			}
			h.b.invalidate(context.Background(), configKey("ob")) // as Vault delivers the other node's write
		}}
		h.creds("ob") // fails if the token is dead at the provider
		if !rotated {
			t.Fatal("the rotation never ran during a mint")
		}
	}
}

// A due scheduled rotation whose settle adopts a fallback the provider applied late stops
// there: the adopted credential is new and the schedule counts from it. Rotating it again
// would kill the tokens other nodes mint from it as soon as it is stored (seed 18661: a
// standby's read leased a token of the adopted credential that the rest of the rotation
// killed).
func TestScheduledRotationThatAdoptsAFallbackRotatesNoFurther(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	h.sim.SetOffBlocksLag(10 * time.Minute)
	if resp, err := h.do(logical.UpdateOperation, "rotate-root/ob", nil); err == nil && !resp.IsError() {
		t.Fatal("the lagging rotation settled: the test would prove nothing")
	}
	adopted := h.stored("ob").Fallbacks[0].cred.(offblocks.Credentials).APIKey
	h.clock.Advance(time.Hour) // the provider applied the change; the schedule is due
	if k, _ := h.sim.OffBlocksPair(h.obID); k != adopted {
		t.Fatalf("the provider has %s, not the fallback %s: the test would prove nothing", k, adopted)
	}
	h.b.invalidate(context.Background(), configKey("ob")) // the read finds the rotation due first
	h.creds("ob")
	if k, _ := h.sim.OffBlocksPair(h.obID); k != adopted || h.sim.OffBlocksPending(h.obID) {
		t.Fatalf("the scheduled rotation rotated the adopted credential again (provider has %s, pending %v)",
			k, h.sim.OffBlocksPending(h.obID))
	}
	if c := h.stored("ob"); c.ob().APIKey != adopted || c.unsettled() || c.Rotation.Failures != 0 {
		t.Fatalf("stored %s, %d fallbacks, %d failures; want the adopted %s, settled", c.ob().APIKey,
			len(c.Fallbacks), c.Rotation.Failures, adopted)
	}
}

// refuseDeletes answers every DELETE 503 while on, as a provider down for that call.
type refuseDeletes struct{ on *bool }

func (r refuseDeletes) RoundTrip(req *http.Request) (*http.Response, error) {
	if *r.on && req.Method == http.MethodDelete {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: http.NoBody, Request: req}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// rotateBloqWhileDeletesFail writes config/bq and rotates it while the provider answers every
// DELETE 503, so the replaced key is left retiring; setting the returned flag false lets
// deletes through again.
func (h *harness) rotateBloqWhileDeletesFail() *bool {
	h.t.Helper()
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	down := true
	h.b.transport = refuseDeletes{on: &down}
	h.mustDo(logical.UpdateOperation, "rotate-root/bq", nil)
	return &down
}

// A retiring Bloq key is deleted with the account login the config holds when it is deleted:
// an operator who changed the password (and wrote the new one) does not leave the key upstream
// because the delete logs in with the password of the key's own day.
func TestRetiringKeyDeletedWithTheCurrentLogin(t *testing.T) {
	h := newHarness(t)
	down := h.rotateBloqWhileDeletesFail()
	if r := h.stored("bq").Retiring; len(r) != 1 {
		t.Fatalf("%d retiring keys after a rotation whose delete failed, want 1", len(r))
	}
	h.clock.Advance(13 * time.Hour) // every account token of the old password has expired
	h.sim.SetBloqPassword(h.bqUserID, "a-new-password")
	h.mustDo(logical.UpdateOperation, "config/bq", map[string]any{"password": "a-new-password"})
	*down = false
	h.periodic()
	if r := h.stored("bq").Retiring; len(r) != 0 || slices.Contains(h.sim.BloqClientIDs(h.bqUserID), bqClient) {
		t.Fatalf("the retiring key is still upstream (%d retiring) after a settle with the new password", len(r))
	}
}

// Settles of one config never overlap: a settle that starts while another is in a provider
// call (a read's and Vault's periodic function's, say) waits for it to end.
func TestSettlesOfOneConfigNeverOverlap(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	next := h.stored("ob").cred.(offblocks.Credentials)
	next.APISecret = strings.Repeat("f", 40)
	h.holdFallback("ob", next)
	entered, release := make(chan struct{}, 16), make(chan struct{})
	h.b.transport = afterAnswer{hook: func(*http.Request) {
		select {
		case entered <- struct{}{}:
		default: // more calls than the buffer holds: only the first two matter
		}
		<-release
	}}
	done := make(chan error, 2)
	settle := func() {
		_, _, err := h.b.settle(context.Background(), h.storage, "ob")
		done <- err
	}
	go settle()
	<-entered // the first settle is in a provider call
	go settle()
	select {
	case <-entered:
		t.Error("a second settle called the provider while the first was in a call")
	case <-time.After(200 * time.Millisecond): // long enough for an overlapping settle to show
	}
	close(release)
	for i := 0; i < 2; i++ {
		<-done
	}
}

// A config write whose read of the stored config fails (a storage timeout) fails: it is never
// taken for the create of a config that does not exist, which would store the written
// credential over a fallback the provider may adopt (a whole-config write, provider included,
// as Terraform sends).
func TestConfigWriteWhoseReadTimesOutFails(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	next := h.stored("ob").cred.(offblocks.Credentials)
	next.APISecret = strings.Repeat("f", 40)
	h.holdFallback("ob", next)
	s := &failGetOnce{Storage: h.storage, key: configKey("ob")}
	s.err = fmt.Errorf("raft read: %w", context.DeadlineExceeded)
	req := &logical.Request{Operation: logical.UpdateOperation, Path: "config/ob", Storage: s, MountPoint: "apitokens/",
		Data: h.offblocksConfig()}
	if resp, err := h.b.HandleRequest(context.Background(), req); err == nil && !resp.IsError() {
		t.Fatal("the write succeeded though the stored config could not be read")
	}
	if n := h.fallbacks("ob"); n != 1 {
		t.Fatalf("the config holds %d fallbacks, want 1", n)
	}
}

// With a Bloq refresh token that the provider replaces on every use, concurrent reads all get
// a token: the refresh grant runs under the config's exclusive lock, one at a time, each with
// the refresh token the one before it received.
func TestConcurrentRefreshGrantsEachUseTheNewestRefreshToken(t *testing.T) {
	h := newHarness(t)
	h.sim.SetBloqRotateRefresh(true)
	h.bloqRefreshConfig(h.sim.BloqRefreshToken(h.bqKeyID))
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			resp, err := h.do(logical.ReadOperation, "creds/bq", nil)
			if err == nil && resp.IsError() {
				err = resp.Error()
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
