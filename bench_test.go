package apitokens

import (
	"context"
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
