// Command app is an example application of the apitokens secrets engine: it keeps a valid
// provider token at hand with the vault/api client and uses it.
//
// It reads apitokens/creds/<name>, calls the provider with the token, and reads a new token
// before the lease ends, or at once when the provider refuses the token (as OffBlocks does
// with every earlier token after a rotate-root). When Vault or the provider is down it
// retries with backoff and keeps using the token it has while that token lives. It never
// logs the token.
//
// Configuration, from the environment:
//
//	VAULT_ADDR, VAULT_TOKEN  as for the vault CLI (VAULT_CACERT and the rest work too); the
//	                         token needs read on the creds path (examples/policy-reader.hcl)
//	APP_CREDS_PATH           required, e.g. apitokens/creds/offblocks
//	APP_TOKEN_FILE           optional: each new token is written here (mode 0600, replaced
//	                         atomically), for a process that reads a file
//	APP_PROVIDER_URL         optional: a provider endpoint to call with the token, standing
//	                         for the application's own work; a 401 means the token is dead
//	APP_PROVIDER_METHOD      GET (default) or POST
//	APP_CALL_EVERY           how often to call it (default 5s)
//
// Against `make dev` (its simulator answers POST /_sim/validate for any provider's token):
//
//	. .dev/sim.env && VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root \
//	  APP_CREDS_PATH=apitokens/creds/offblocks APP_PROVIDER_URL=$SIM_URL/_sim/validate \
//	  APP_PROVIDER_METHOD=POST go run ./examples/app
//
// A real application would authenticate to Vault with its platform's auth method and keep
// that Vault token alive too (another LifetimeWatcher); this example takes VAULT_TOKEN as is.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("exiting", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	path := os.Getenv("APP_CREDS_PATH")
	if path == "" {
		return errors.New("APP_CREDS_PATH is not set (e.g. apitokens/creds/offblocks)")
	}
	every := 5 * time.Second
	if v := os.Getenv("APP_CALL_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("APP_CALL_EVERY %q: want a positive duration such as 5s", v)
		}
		every = d
	}
	conf := api.DefaultConfig() // VAULT_ADDR and the rest
	if conf.Error != nil {
		return fmt.Errorf("vault client configuration: %w", conf.Error)
	}
	conf.MaxRetries = 0 // one retry policy, the keeper's backoff, not two stacked
	client, err := api.NewClient(conf)
	if err != nil {
		return fmt.Errorf("vault client: %w", err)
	}
	if client.Token() == "" {
		return errors.New("VAULT_TOKEN is not set")
	}

	k := newKeeper(client, path, log)
	if file := os.Getenv("APP_TOKEN_FILE"); file != "" {
		k.onNew = func(token string) error { return writeFile(file, token) }
	}
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	if url := os.Getenv("APP_PROVIDER_URL"); url != "" {
		method := os.Getenv("APP_PROVIDER_METHOD")
		if method == "" {
			method = http.MethodGet
		}
		p := &provider{http: &http.Client{Timeout: 10 * time.Second}, method: method, url: url, log: log}
		p.loop(ctx, k, every)
	}
	return <-done
}

// provider stands for the application's calls to the provider's API.
type provider struct {
	http        *http.Client
	method, url string
	log         *slog.Logger
}

// loop calls the provider with the token in hand every interval until ctx ends. A 401 tells
// the keeper the token is dead, and that token is not sent again; a provider that is down
// (no answer, 5xx) is called again after a backoff instead of the interval.
func (p *provider) loop(ctx context.Context, k *keeper, every time.Duration) {
	retry := backoff{min: every, max: 8 * every}
	failing := false
	dead := "" // the last token refused: never sent again
	for wait := time.Duration(0); sleep(ctx, wait); {
		wait = every
		tok, ok := k.Token()
		if !ok || tok == dead {
			continue // none yet, expired while Vault is away, or refused: the keeper is on it
		}
		status, err := p.call(ctx, tok)
		switch {
		case err != nil || status >= 500:
			wait = retry.Next()
			p.log.Warn("the provider is unavailable; calling again later", "status", status, "error", err, "retry_in", wait)
			failing = true
		case status == http.StatusUnauthorized:
			p.log.Warn("the provider refused the token; reading a new one")
			k.Refused(tok)
			dead = tok
		default:
			retry.Reset()
			if failing {
				p.log.Info("the provider answers again", "status", status)
				failing = false
			}
		}
	}
}

// call makes one request with tok as the Bearer token and returns the status. Errors name
// the method and URL, never the header.
func (p *provider) call(ctx context.Context, tok string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, p.method, p.url, nil)
	if err != nil {
		return 0, fmt.Errorf("build the request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("call the provider: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// writeFile replaces path with content atomically (a reader sees the old token or the new
// one, never part of one), mode 0600.
func writeFile(path, content string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".token-*") // mode 0600
	if err != nil {
		return fmt.Errorf("write the token file: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename, there is nothing to remove
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("write the token file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write the token file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write the token file: %w", err)
	}
	return nil
}
