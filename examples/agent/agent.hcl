# Vault Agent rendering one provider token per file, for an application that reads the file
# each time it calls the provider. A creds lease ends before its token does, so the agent
# fetches and renders the next token while the current one still works. Rotate a root
# credential under it with `vault write apitokens/rotate-root/<name> planned=true` (an
# operator's token): leases end by its rotates_at, and the agent's read then rotates and
# renders a token of the new credential. An immediate rotation leaves it a dead token until
# its lease ends.
#
# Runs as is against `make dev`, whose configs are named offblocks, bloq and opsnow. From
# this directory, with a token of examples/policy-reader.hcl:
#
#   export VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root
#   vault policy write apitokens-reader ../policy-reader.hcl
#   vault token create -policy=apitokens-reader -field=token > vault-token
#   vault agent -config=agent.hcl        # then: cat tokens/offblocks.token
#
# In production: the auto_auth method of your platform (kubernetes, aws, approle) in place of
# token_file, absolute destinations (say /run/app/offblocks.token) and perms that let the
# app's user, and no one else, read them.

# The Vault address comes from VAULT_ADDR.

auto_auth {
  method "token_file" {
    config = {
      token_file_path = "vault-token"
    }
  }
}

template {
  contents    = "{{ with secret \"apitokens/creds/offblocks\" }}{{ .Data.token }}{{ end }}"
  destination = "tokens/offblocks.token"
  perms       = "0600"
}

template {
  contents    = "{{ with secret \"apitokens/creds/bloq\" }}{{ .Data.token }}{{ end }}"
  destination = "tokens/bloq.token"
  perms       = "0600"
}

template {
  contents    = "{{ with secret \"apitokens/creds/opsnow\" }}{{ .Data.token }}{{ end }}"
  destination = "tokens/opsnow.token"
  perms       = "0600"
}
