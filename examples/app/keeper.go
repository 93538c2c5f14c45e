package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// keeper keeps a valid provider token from the apitokens secrets engine at hand.
//
// It reads creds/<name>, holds the token, and reads again before the lease ends: creds
// leases are not renewable, so a LifetimeWatcher (vault/api) does no renewal and only says
// when the lease is near its end (after 80–90% of it). It also reads again at once when the
// application reports that the provider refused the token (Refused), as it does to every
// OffBlocks token issued before a rotate-root. A failed read (Vault down, or the provider
// down, which Vault answers with a 502) is retried with backoff, and the token in hand stays
// in use meanwhile until its own expiry. The token is never logged.
type keeper struct {
	client *api.Client
	path   string // apitokens/creds/<name>
	log    *slog.Logger
	// onNew, when set, is called with each new token (for example to write it to a file).
	onNew func(token string) error
	// retry paces failed reads; refusedRetry paces reads after repeated refusals, so a token
	// the provider keeps refusing (a clock or credential problem) does not become a loop.
	retry, refusedRetry backoff

	mu      sync.Mutex
	token   string
	expires time.Time     // the provider's expiry of token
	refused chan struct{} // capacity 1: the token in hand was refused
}

// newKeeper returns a keeper of the token at path (apitokens/creds/<name>).
func newKeeper(client *api.Client, path string, log *slog.Logger) *keeper {
	return &keeper{
		client: client, path: path, log: log,
		retry:        backoff{min: 250 * time.Millisecond, max: 30 * time.Second},
		refusedRetry: backoff{min: time.Second, max: time.Minute},
		refused:      make(chan struct{}, 1),
	}
}

// Token returns the token in hand and true, or false when there is none that is unexpired:
// none read yet, or Vault has been unreachable for longer than the token lives.
func (k *keeper) Token() (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.token == "" || !time.Now().Before(k.expires) {
		return "", false
	}
	return k.token, true
}

// Refused reports that the provider refused token (a 401). Unless the keeper holds another
// token by now, it reads a new one at once.
func (k *keeper) Refused(token string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if token != k.token {
		return
	}
	select {
	case k.refused <- struct{}{}:
	default:
	}
}

// Run reads the first token and keeps it fresh until ctx ends, and then returns ctx's error
// (or, never in practice, an error of vault/api's LifetimeWatcher).
func (k *keeper) Run(ctx context.Context) error {
	for refusals := 0; ; {
		s, err := k.read(ctx)
		if err != nil {
			return err
		}
		if err := k.set(s); err != nil {
			k.log.Error("could not hand the new token over", "error", err)
		}
		refused, err := k.wait(ctx, s)
		if err != nil {
			return err
		}
		if !refused {
			refusals = 0
			k.refusedRetry.Reset()
			continue
		}
		if refusals++; refusals > 1 {
			d := k.refusedRetry.Next()
			k.log.Warn("the provider refused a fresh token again; waiting before the next read", "retry_in", d)
			if !sleep(ctx, d) {
				return ctx.Err()
			}
		}
	}
}

// read reads the path until it yields a token, waiting with backoff between failures.
func (k *keeper) read(ctx context.Context) (*api.Secret, error) {
	for {
		s, err := k.client.Logical().ReadWithContext(ctx, k.path)
		if err == nil {
			err = check(s)
		}
		if err == nil {
			k.retry.Reset()
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		d := k.retry.Next()
		status := 0
		var re *api.ResponseError
		if errors.As(err, &re) {
			status = re.StatusCode
		}
		// Vault's and the plugin's errors name the path, the provider call and its status,
		// never a credential or token.
		k.log.Warn("reading the token failed; retrying", "path", k.path, "status", status,
			"error", err, "retry_in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return nil, ctx.Err()
		}
	}
}

// check verifies that s is a creds answer: a token and a lease.
func check(s *api.Secret) error {
	if s == nil {
		return errors.New("no secret at the path")
	}
	if tok, _ := s.Data["token"].(string); tok == "" {
		return errors.New("the answer has no token")
	}
	if s.LeaseID == "" || s.LeaseDuration <= 0 {
		return errors.New("the answer has no lease")
	}
	return nil
}

// set makes s's token the one in hand and hands it to onNew.
func (k *keeper) set(s *api.Secret) error {
	tok := s.Data["token"].(string)
	lease := time.Duration(s.LeaseDuration) * time.Second
	expires := time.Now().Add(lease) // the lease ends before the token: a safe fallback
	if at, ok := s.Data["expires_at"].(string); ok {
		if t, err := time.Parse(time.RFC3339, at); err == nil {
			expires = t
		}
	}
	k.mu.Lock()
	k.token, k.expires = tok, expires
	select { // a refusal of the previous token is answered by this one
	case <-k.refused:
	default:
	}
	k.mu.Unlock()
	k.log.Info("new token", "path", k.path, "lease", lease, "expires_at", expires.UTC().Format(time.RFC3339))
	if k.onNew == nil {
		return nil
	}
	return k.onNew(tok)
}

// wait returns when s's lease is near its end (refused false) or the token was refused
// (refused true), or with ctx's error.
func (k *keeper) wait(ctx context.Context, s *api.Secret) (refused bool, err error) {
	w, err := k.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: s})
	if err != nil {
		return false, fmt.Errorf("watch the lease: %w", err)
	}
	go w.Start()
	defer w.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-w.DoneCh(): // nil for a lease that cannot be renewed: it is simply ending
		return false, nil
	case <-k.refused:
		return true, nil
	}
}
