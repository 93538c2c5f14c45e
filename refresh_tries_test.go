package apitokens

import (
	"strings"
	"testing"
)

// A new refresh token's store is tried refreshStoreTries times within the read, no more: the
// read then answers with its warning and the node holds the token.
func TestCredsBloqRefreshTokenStoreTriedExactly(t *testing.T) {
	h := newHarness(t)
	h.sim.SetBloqRotateRefresh(true)
	h.bloqRefreshConfig(h.sim.BloqRefreshToken(h.bqKeyID))
	puts := 0
	h.storage.setFailPut(func(k string) bool {
		if !strings.HasPrefix(k, "config/") {
			return false
		}
		puts++
		return puts <= refreshStoreTries // fails every try the read makes, then would succeed
	})
	resp := h.creds("bq")
	if puts != refreshStoreTries || len(resp.Warnings) == 0 || !h.b.refreshTokens.held("bq") {
		t.Fatalf("%d stores (want %d), warnings %v, held %v", puts, refreshStoreTries, resp.Warnings, h.b.refreshTokens.held("bq"))
	}
}
