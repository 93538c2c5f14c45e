// Command vault-plugin-secrets-apitokens serves the apitokens secrets engine to Vault.
package main

import (
	"os"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/plugin"

	apitokens "github.com/apitokens/vault-plugin-secrets-apitokens"
)

func main() {
	logger := hclog.New(&hclog.LoggerOptions{})
	apitokens.ExitWithParent(logger) // never outlive the Vault that started this process
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{BackendFactoryFunc: apitokens.Factory}); err != nil {
		logger.Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}
