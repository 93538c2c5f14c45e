package apitokens

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// BenchmarkCredsRead measures the backend alone (no Vault, no gRPC) serving creds reads
// against the in-process simulator: "fresh" mints every time (one provider call each),
// "shared" hands out the config's shared token (no provider call, no storage read).
func BenchmarkCredsRead(b *testing.B) {
	for _, mode := range []struct {
		name  string
		reuse bool
	}{{"fresh", false}, {"shared", true}} {
		b.Run(mode.name, func(b *testing.B) {
			h := newHarness(b)
			h.b.Logger().SetLevel(hclog.Info) // as in production: debug lines are filtered
			cfg := h.offblocksConfig()
			cfg["token_reuse"] = mode.reuse
			h.mustDo(logical.CreateOperation, "config/ob", cfg)
			req := &logical.Request{Operation: logical.ReadOperation, Path: "creds/ob", Storage: h.storage, MountPoint: "apitokens/"}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req.Data = nil
				if resp, err := h.b.HandleRequest(ctx, req); err != nil || resp.IsError() {
					b.Fatal(err, respErr(resp))
				}
			}
		})
	}
}

// BenchmarkCredsRead10k measures a shared-token creds read against a backend holding
// 10,000 configs, each read once before (so each holds its config and shared token in
// memory), reading them in turn: a read's cost must not grow with the number of configs.
// It reports the backend's heap at rest per config (B/config: decoded config, shared token,
// mint slots, lock state), measured after a garbage collection; storage's copy, which lives
// in Vault, is excluded.
func BenchmarkCredsRead10k(b *testing.B) {
	const n = 10000
	h := newHarness(b)
	h.b.Logger().SetLevel(hclog.Info)
	cfg := h.offblocksConfig()
	cfg["token_reuse"] = true
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("c%05d", i)
		h.mustDo(logical.CreateOperation, "config/"+names[i], cfg)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	ctx := context.Background()
	req := &logical.Request{Operation: logical.ReadOperation, Storage: h.storage, MountPoint: "apitokens/"}
	for _, name := range names {
		req.Path, req.Data = "creds/"+name, nil
		if resp, err := h.b.HandleRequest(ctx, req); err != nil || resp.IsError() {
			b.Fatal(err, respErr(resp))
		}
	}
	perConfig := float64(heap()-before) / n
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.Path, req.Data = "creds/"+names[i%n], nil
		if resp, err := h.b.HandleRequest(ctx, req); err != nil || resp.IsError() {
			b.Fatal(err, respErr(resp))
		}
	}
	b.StopTimer()
	b.ReportMetric(perConfig, "B/config")
}
