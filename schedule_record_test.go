package apitokens

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// ctxStorage refuses any call whose context is done, as Vault's storage over gRPC does.
type ctxStorage struct{ logical.Storage }

func (s ctxStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Storage.Get(ctx, key)
}

func (s ctxStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Storage.Put(ctx, e)
}

func (s ctxStorage) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Storage.Delete(ctx, key)
}

func (s ctxStorage) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Storage.List(ctx, prefix)
}

// A scheduled rotation that fails after using its whole budget (its context is done) is
// still recorded, so that it is retried after its backoff and not on every read.
func TestScheduleRecordsFailureAfterBudgetExhausted(t *testing.T) {
	h := newHarness(t)
	h.scheduledOffBlocks(map[string]any{"rotation_period": "1h"})
	cfg := h.stored("ob")
	cfg.RequestTimeout = 500 * time.Millisecond // a rotation budget of 2 s (the API's least is 1 s)
	if err := h.b.putConfig(context.Background(), h.storage, "ob", cfg); err != nil {
		t.Fatal(err)
	}
	// The provider takes the new pair but applies it only much later, and the confirmation
	// waits until the rotation's deadline.
	h.sim.SetOffBlocksLag(time.Hour)
	h.b.sleep = func(ctx context.Context, _ time.Duration) error {
		<-ctx.Done()
		return ctx.Err()
	}
	h.clock.Advance(time.Hour)
	start := time.Now()
	if err := h.b.periodic(context.Background(), &logical.Request{Storage: ctxStorage{h.storage}}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < rotationBudget(cfg) {
		t.Fatalf("the rotation ended after %s, before its budget: the test does not exhaust it", took)
	}
	r := h.stored("ob").Rotation
	if r.Failures != 1 || !r.RetryAt.Equal(h.clock.Now().Add(time.Minute)) || r.LastError == "" {
		t.Fatalf("the failed rotation was not recorded: failures %d, retry_at %s, last error %q",
			r.Failures, r.RetryAt, r.LastError)
	}
}
