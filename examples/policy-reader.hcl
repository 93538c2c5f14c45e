# apitokens-reader: for applications, Vault Agents and CI jobs that need a provider token.
# They may read a fresh token from creds/<name> and nothing else of the mount: not the
# configs, not rotate-root, not metrics.
#
#   vault policy write apitokens-reader examples/policy-reader.hcl
#   vault token create -policy=apitokens-reader        # or attach it to an auth method's role
#
# Assumes the mount is at apitokens/. To allow one provider account only, name it:
# path "apitokens/creds/offblocks-live". No lease renewal is granted: creds leases are not
# renewable, a reader reads again for a new token.
path "apitokens/creds/*" {
  capabilities = ["read"]
}
