package apitokens

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// Demo credentials seeded into every harness's simulator.
const (
	obKey     = "6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f"
	obSecret  = "0123456789abcdef0123456789abcdef01234567"
	bqClient  = "c0ffee0000c0ffee0000c0ffee0000c0ffee0000"
	bqSecret  = "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e7aa"
	bqUser    = "ops@example.com"
	bqPass    = "correct horse battery staple"
	opsAPIKey = "opsnow-key-7d1f0c5a9b3e4f21"
)

// fakeClock is a settable clock shared by the backend and the simulator.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// flakyStorage is in-memory storage whose Put can be made to fail for chosen keys, with
// errStorageDown or another error (logical.ErrReadOnly on a standby).
type flakyStorage struct {
	logical.InmemStorage
	mu      sync.Mutex
	failPut func(key string) bool
	putErr  error
	// landThenFail picks the writes (Put and Delete) that land and then report an error, as
	// a Raft commit whose answer times out.
	landThenFail func(key string) bool
	// configGets counts reads of config/ keys; getDelay slows each of them.
	configGets atomic.Int64
	getDelay   atomic.Int64
}

func (s *flakyStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if strings.HasPrefix(key, configPrefix) {
		s.configGets.Add(1)
		time.Sleep(time.Duration(s.getDelay.Load()))
		if err := ctx.Err(); err != nil { // as Vault's storage over gRPC refuses a done context
			return nil, err
		}
	}
	return s.InmemStorage.Get(ctx, key)
}

var errStorageDown = errors.New("storage unavailable")

func (s *flakyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.mu.Lock()
	fail, err := s.failPut != nil && s.failPut(e.Key), s.putErr
	s.mu.Unlock()
	if fail {
		if err == nil {
			err = errStorageDown
		}
		return err
	}
	if err := s.InmemStorage.Put(ctx, e); err != nil || !s.lands(e.Key) {
		return err
	}
	return errStorageLanded
}

func (s *flakyStorage) Delete(ctx context.Context, key string) error {
	if err := s.InmemStorage.Delete(ctx, key); err != nil || !s.lands(key) {
		return err
	}
	return errStorageLanded
}

// lands reports whether a write of key that landed reports an error anyway.
func (s *flakyStorage) lands(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.landThenFail != nil && s.landThenFail(key)
}

func (s *flakyStorage) setFailPut(f func(key string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failPut, s.putErr = f, nil
}

// setReadOnly makes every write fail as it does on a performance standby.
func (s *flakyStorage) setReadOnly() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failPut, s.putErr = func(string) bool { return true }, logical.ErrReadOnly
}

type harness struct {
	t       testing.TB
	b       *backend
	sim     *simulator.Server
	url     string
	storage *flakyStorage
	clock   *fakeClock
	logs    *syncBuffer
	events  *logical.MockEventSender
	// seeded account ids at the simulator
	obID, bqUserID, bqKeyID string
}

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newHarness starts a simulator with one account per provider and a backend on in-memory
// storage, sharing one fake clock. The mount's maximum lease is 24 h.
func newHarness(t testing.TB) *harness {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	sim := simulator.New()
	sim.SetClock(clock.Now)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)

	h := &harness{t: t, sim: sim, url: srv.URL, storage: &flakyStorage{}, clock: clock, logs: &syncBuffer{},
		events: &logical.MockEventSender{}}
	h.obID = sim.AddOffBlocks(obKey, obSecret)
	h.bqUserID = sim.AddBloqUser(bqUser, bqPass)
	h.bqKeyID = sim.AddBloqKey(h.bqUserID, bqClient, bqSecret)
	sim.AddOpsNowKey(opsAPIKey)

	h.startBackend()
	return h
}

// startBackend starts a backend on the harness's storage, clock and simulator: a mount's
// first start, or its restart (an upgrade, a reload) on the storage an earlier one left.
func (h *harness) startBackend() {
	t, clock := h.t, h.clock
	t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = h.storage
	// Vault Community Edition: the active node serves every creds read (marksComplete).
	conf.System = &logical.StaticSystemView{DefaultLeaseTTLVal: time.Hour, MaxLeaseTTLVal: 24 * time.Hour,
		PluginEnvironment: &logical.PluginEnvironment{VaultVersion: "1.19.5"}}
	conf.Logger = hclog.New(&hclog.LoggerOptions{Output: h.logs, Level: hclog.Trace})
	conf.EventsSender = h.events
	b := newBackend()
	b.now = clock.Now
	// Waits within a request (confirming a rotation, retrying a store) pass on the fake
	// clock, at once: the provider simulator sees the same time pass.
	b.sleep = func(ctx context.Context, d time.Duration) error {
		clock.Advance(d)
		return ctx.Err()
	}
	b.retryWaitMin, b.retryWaitMax = time.Millisecond, 20*time.Millisecond
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.clean(context.Background()) })
	h.b = b
}

// do runs one request against the backend.
func (h *harness) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	h.t.Helper()
	req := &logical.Request{Operation: op, Path: path, Data: data, Storage: h.storage, MountPoint: "apitokens/"}
	if op == logical.CreateOperation || op == logical.UpdateOperation {
		// Vault decides create vs update with the path's existence check.
		if checkFound, exists, err := h.b.HandleExistenceCheck(context.Background(), req); err == nil && checkFound {
			req.Operation = logical.UpdateOperation
			if !exists {
				req.Operation = logical.CreateOperation
			}
		}
	}
	return h.b.HandleRequest(context.Background(), req)
}

// mustDo runs a request that must succeed.
func (h *harness) mustDo(op logical.Operation, path string, data map[string]any) *logical.Response {
	h.t.Helper()
	resp, err := h.do(op, path, data)
	if err != nil || (resp != nil && resp.IsError()) {
		h.t.Fatalf("%s %s: err=%v resp=%v", op, path, err, respErr(resp))
	}
	return resp
}

func respErr(resp *logical.Response) any {
	if resp == nil {
		return nil
	}
	return resp.Data["error"]
}

// configs of each kind, pointing at the simulator.
func (h *harness) offblocksConfig() map[string]any {
	return map[string]any{"provider": "offblocks", "base_url": h.url + simulator.OffBlocksPrefix,
		"api_key": obKey, "api_secret": obSecret}
}

func (h *harness) bloqConfig(extra map[string]any) map[string]any {
	m := map[string]any{"provider": "bloq", "base_url": h.url + simulator.BloqPrefix,
		"client_id": bqClient, "client_secret": bqSecret, "username": bqUser, "password": bqPass}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// bloqRefreshConfig writes config/bq with a Client Refresh Token as its root credential.
func (h *harness) bloqRefreshConfig(refreshToken string) {
	h.t.Helper()
	h.mustDo(logical.CreateOperation, "config/bq", map[string]any{"provider": "bloq",
		"base_url": h.url + simulator.BloqPrefix, "refresh_token": refreshToken})
}

func (h *harness) opsnowConfig() map[string]any {
	return map[string]any{"provider": "opsnow", "base_url": h.url + simulator.OpsNowPrefix, "api_key": opsAPIKey}
}

// everyGrant writes one config of each provider and grant: ob (OffBlocks), bq (Bloq client
// keys with a login), bq-acct (a Bloq login alone), bq-rt (a Bloq refresh token), ops (OpsNow).
func (h *harness) everyGrant() {
	h.t.Helper()
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	h.mustDo(logical.CreateOperation, "config/bq-acct", h.bloqConfig(map[string]any{"client_id": "", "client_secret": ""}))
	h.mustDo(logical.CreateOperation, "config/bq-rt", map[string]any{"provider": "bloq",
		"base_url": h.url + simulator.BloqPrefix, "refresh_token": h.sim.BloqRefreshToken(h.bqKeyID)})
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())
}

// creds reads creds/name and checks the token is valid at the simulator now.
func (h *harness) creds(name string) *logical.Response {
	h.t.Helper()
	resp := h.mustDo(logical.ReadOperation, "creds/"+name, nil)
	tok, _ := resp.Data["token"].(string)
	if _, err := h.sim.Validate(tok); err != nil {
		h.t.Fatalf("creds/%s returned a token the provider refuses: %v", name, err)
	}
	return resp
}

// assertNoSecrets fails if any of the given strings appears in s.
func assertNoSecrets(t *testing.T, where, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Errorf("%s contains a secret (%.6s…)", where, sec)
		}
	}
}

// fallbacks is how many fallback credentials config name holds in storage: credentials the
// provider may adopt at any moment (settle.go).
func (h *harness) fallbacks(name string) int {
	h.t.Helper()
	return len(h.stored(name).Fallbacks)
}

// holdFallback stores next as a fallback of config name without sending it anywhere, as a
// rotation leaves it when it stops (a crash) after storing the new credential and before
// sending it to the provider.
func (h *harness) holdFallback(name string, next credential) {
	h.t.Helper()
	c := h.stored(name)
	c.Fallbacks = append(c.Fallbacks, fallback{cred: next, fallbackMeta: fallbackMeta{Since: h.clock.Now().UTC(),
		Why: "a rotation stored it and stopped before sending it"}})
	if err := h.b.putConfig(context.Background(), h.storage, name, c); err != nil {
		h.t.Fatal(err)
	}
}

// legacyRotationWAL writes the WAL entry an earlier plugin version wrote for a whole
// rotation of config name from old to next, as its crash leaves it.
func (h *harness) legacyRotationWAL(name, provider string, old, next credential) {
	h.t.Helper()
	e := newRotationWAL(name, provider, old, next, h.clock.Now())
	if _, err := framework.PutWAL(context.Background(), h.storage, walKindRotation, e); err != nil {
		h.t.Fatal(err)
	}
}

// failConfigPutsAfter lets the next n config writes succeed and fails every later one
// (errStorageDown); setFailPut(nil) heals it. Other keys are written normally.
func (h *harness) failConfigPutsAfter(n int) {
	left := n // read and written under the storage's lock, which Put holds around failPut
	h.storage.setFailPut(func(k string) bool {
		if !strings.HasPrefix(k, configPrefix) {
			return false
		}
		if left > 0 {
			left--
			return false
		}
		return true
	})
}

// wantUnsettledRead checks that a creds read of config name is refused with a 502 saying
// the config is unsettled: while it holds a fallback, no token of its current credential
// is handed out.
func (h *harness) wantUnsettledRead(name string) {
	h.t.Helper()
	resp, err := h.do(logical.ReadOperation, "creds/"+name, nil)
	coded, ok := err.(logical.HTTPCodedError)
	if !ok || coded.Code() != 502 || !strings.Contains(err.Error(), "unsettled") {
		h.t.Fatalf("creds/%s while a fallback is held: want a 502 saying it is unsettled, got %v %v",
			name, err, respErr(resp))
	}
}

// logLine returns the first line of the backend's log that contains s, or "".
func (h *harness) logLine(s string) string {
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}
