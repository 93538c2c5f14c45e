package apitokens

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// A manual rotation kills the old credential's tokens for both providers that rotate
// (OffBlocks' PUT; Bloq's delete of the old client key): both responses say to revoke the
// old leases, and how.
func TestRotateRootWarnsToRevokeOldLeases(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	for _, name := range []string{"ob", "bq"} {
		resp := h.mustDo(logical.UpdateOperation, "rotate-root/"+name, nil)
		want := "vault lease revoke -prefix apitokens/creds/" + name
		if !strings.Contains(strings.Join(resp.Warnings, "\n"), want) {
			t.Errorf("rotate-root/%s: warnings %q do not say %q", name, resp.Warnings, want)
		}
	}
}
