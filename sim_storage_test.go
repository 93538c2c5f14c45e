package apitokens

import (
	"context"

	"github.com/hashicorp/vault/sdk/logical"
)

// The simulated nodes' storage: every call is a scheduling point, and the seed's storage
// faults (failed writes, writes that land and then fail, reads that time out, crashes).

// nodeStorage is node n's view of the shared storage. Each write that lands is delivered to
// the other nodes' Invalidate, as Vault's replication does.
type nodeStorage struct{ n *node }

func (s *nodeStorage) List(ctx context.Context, prefix string) ([]string, error) {
	s.n.w.yield("storage list", prefix)
	if s.n.call() {
		return nil, errSimDead
	}
	keys, err := s.n.w.store.List(ctx, prefix)
	s.n.w.yield("the answer to storage list", prefix)
	return keys, err
}

func (s *nodeStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.n.w.yield("storage get", key)
	if s.n.call() {
		return nil, errSimDead
	}
	if err := s.n.w.readFails(key); err != nil {
		return nil, err
	}
	e, err := s.n.w.store.Get(ctx, key)
	s.n.w.yield("the answer to storage get", key)
	return e, err
}

func (s *nodeStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	err := s.write(ctx, e.Key, func() error { return s.n.w.store.Put(ctx, e) })
	s.n.w.yield("the answer to storage write", e.Key)
	return err
}

func (s *nodeStorage) Delete(ctx context.Context, key string) error {
	err := s.write(ctx, key, func() error { return s.n.w.store.Delete(ctx, key) })
	s.n.w.yield("the answer to storage delete", key)
	return err
}

func (s *nodeStorage) write(ctx context.Context, key string, apply func() error) error {
	n, w := s.n, s.n.w
	w.yield("storage write", key)
	apply = w.conc.watch(key, apply)
	if n.dead {
		return errSimDead
	}
	if n.standby {
		return logical.ErrReadOnly
	}
	if w.sw.storageFail > 0 && w.r.Intn(100) < w.sw.storageFail {
		w.faulted = true
		w.cover["fault.storage"]++
		w.logf("  storage write of %s fails", key)
		return errStorageDown
	}
	if w.landsThenFails(key) {
		if err := apply(); err != nil {
			return err
		}
		w.invalidateOthers(ctx, n, key)
		if n.call() {
			return errSimDead
		}
		return errStorageLanded
	}
	// A crash at a write may come just before or just after it lands.
	landsFirst := w.r.Intn(2) == 0
	if landsFirst {
		if err := apply(); err != nil {
			return err
		}
		w.invalidateOthers(ctx, n, key)
	}
	if n.call() {
		return errSimDead
	}
	if !landsFirst {
		if err := apply(); err != nil {
			return err
		}
		w.invalidateOthers(ctx, n, key)
	}
	return nil
}

func (w *world) invalidateOthers(ctx context.Context, from *node, key string) {
	w.conc.landed(key)
	for _, o := range w.nodes {
		if o != from && !o.dead {
			o.b.invalidate(ctx, key)
		}
	}
}
