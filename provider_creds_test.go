package apitokens

import (
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/opsnow"
)

// White-box tests read a config's credential as its provider's own type.

func (c *accountConfig) ob() offblocks.Credentials { return c.cred.(offblocks.Credentials) }
func (c *accountConfig) bq() bloq.Credentials      { return c.cred.(bloq.Credentials) }
func (c *accountConfig) ops() opsnow.Credentials   { return c.cred.(opsnow.Credentials) }
