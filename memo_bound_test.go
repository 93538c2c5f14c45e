package apitokens

import (
	"fmt"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// Reads of names that have no config leave nothing in memory: anyone allowed to read
// creds/* cannot grow the plugin without bound.
func TestMemoBoundedByMissingNames(t *testing.T) {
	h := newHarness(t)
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	for i := 0; i < 100_000; i++ {
		if _, err := h.do(logical.ReadOperation, fmt.Sprintf("creds/missing-%d", i), nil); err == nil {
			t.Fatalf("creds/missing-%d: no error", i)
		}
	}
	h.b.memo.mu.Lock()
	n := len(h.b.memo.entries)
	h.b.memo.mu.Unlock()
	if n > 1 { // config/ob's, remembered by its write
		t.Fatalf("%d memo entries after 100,000 reads of missing configs, want at most 1 (config/ob)", n)
	}
	h.mustDo(logical.DeleteOperation, "config/ob", nil)
	if n := len(h.b.memo.entries); n != 0 {
		t.Fatalf("%d memo entries after the only config was deleted, want 0", n)
	}
}

// A value loaded or minted before a forget is never installed after it, even once the
// entry is gone and created again: a re-created config never receives the shared token
// minted for the config it replaced, nor the old config itself.
func TestMemoGenerationAcrossForgetAndRecreate(t *testing.T) {
	var m memo
	oldCfg, newCfg := &accountConfig{configHead: configHead{BaseURL: "old"}}, &accountConfig{configHead: configHead{BaseURL: "new"}}
	_, loadGen := m.config("ob") // a read starts loading the old config
	_, mintGen := m.token("ob")  // another starts minting a shared token with it
	m.fillConfig("ob", loadGen, oldCfg)
	if cfg, _ := m.config("ob"); cfg != oldCfg {
		t.Fatal("a config loaded with no forget since was not remembered")
	}
	_, mintGen2 := m.token("ob") // a mint that begins once the old config is remembered

	m.forget("ob") // the config is deleted, then written anew
	if len(m.entries) != 0 {
		t.Fatalf("forget left %d entries", len(m.entries))
	}
	_, gen := m.config("ob")
	m.fillConfig("ob", gen, newCfg)

	m.share("ob", mintGen, &sharedToken{minted: minted{Minted: registry.Minted{Token: apiclient.Token{Value: "old-1"}}}})
	m.share("ob", mintGen2, &sharedToken{minted: minted{Minted: registry.Minted{Token: apiclient.Token{Value: "old-2"}}}})
	m.fillConfig("ob", loadGen, oldCfg)
	if tok, _ := m.token("ob"); tok != nil {
		t.Fatalf("the re-created config received the token %q minted for the one it replaced", tok.Value)
	}
	if cfg, _ := m.config("ob"); cfg != newCfg {
		t.Fatalf("the re-created config was replaced by the old one (%q)", cfg.BaseURL)
	}

	// Before the re-created entry exists, an old value is refused as well.
	_, mintGen3 := m.token("ob")
	m.forget("ob")
	m.share("ob", mintGen3, &sharedToken{minted: minted{Minted: registry.Minted{Token: apiclient.Token{Value: "old-3"}}}})
	if len(m.entries) != 0 {
		t.Fatalf("a token minted before a forget created an entry after it")
	}
}

// With token_reuse off a read leaves no shared token in memory, also after the config
// turned it off.
func TestMemoNoSharedTokenWithoutReuse(t *testing.T) {
	h := newHarness(t)
	shared := func() *sharedToken {
		tok, _ := h.b.memo.token("ob")
		return tok
	}
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.creds("ob")
	h.creds("ob")
	if tok := shared(); tok != nil {
		t.Fatal("a read with token_reuse off installed a shared token")
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"token_reuse": true})
	h.creds("ob")
	if shared() == nil {
		t.Fatal("a read with token_reuse on installed no shared token")
	}
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"token_reuse": false})
	h.creds("ob")
	if shared() != nil {
		t.Fatal("a shared token is held after token_reuse was turned off")
	}
}
