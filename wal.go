package apitokens

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// walKindRotation marks a rotation in flight: written before the provider's side changes,
// deleted once the outcome is stored. The WAL prefix is seal-wrapped like config/.
const walKindRotation = "rotate-root"

// rotationWAL is everything needed to finish or undo an interrupted rotation: both
// credentials, so recovery can ask the provider which one works.
//
// An entry with Creating set is written by a provider whose new credential is created
// upstream (Bloq) just before the create call, when no new credential exists yet: if the
// rotation dies before the next entry is written, the key it may have created is an orphan
// that nobody holds, and recovery names it (Known lists what existed before).
type rotationWAL struct {
	// Nonce tells this rotation's entry from any other (the rollback hook gets no WAL id).
	Nonce    string     `json:"nonce"`
	Name     string     `json:"name"`
	Provider string     `json:"provider"`
	Old      credential `json:"old"`
	New      credential `json:"new"`
	// Started is when the rotation began, by the backend's clock.
	Started time.Time `json:"started"`
	// Acknowledged records that the provider answered the activation of New with a 2xx:
	// from then on the old credential is never kept, whatever the provider answers.
	Acknowledged bool `json:"acknowledged,omitempty"`
	// Creating marks an entry written before a create call; New is empty.
	Creating bool `json:"creating,omitempty"`
	// Known are the identifiers of the account's credentials upstream before the create call.
	Known []string `json:"known,omitempty"`
}

func newRotationWAL(name, provider string, old, next credential, started time.Time) rotationWAL {
	return rotationWAL{Nonce: uuid.NewString(), Name: name, Provider: provider, Old: old, New: next, Started: started}
}

func decodeRotationWAL(data any) (rotationWAL, error) {
	var e rotationWAL
	raw, err := json.Marshal(data)
	if err == nil {
		err = json.Unmarshal(raw, &e)
	}
	if err == nil && (e.Name == "" || e.Nonce == "") {
		err = fmt.Errorf("entry lacks a config name or nonce")
	}
	return e, err
}

type pendingRotation struct {
	id    string
	entry rotationWAL
}

// pendingRotations lists the WAL entries of interrupted rotations of config name.
func pendingRotations(ctx context.Context, s logical.Storage, name string) ([]pendingRotation, error) {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("list WAL: %w", err)
	}
	var out []pendingRotation
	for _, id := range ids {
		w, err := framework.GetWAL(ctx, s, id)
		if err != nil {
			return nil, fmt.Errorf("read WAL entry: %w", err)
		}
		if w == nil || w.Kind != walKindRotation {
			continue
		}
		e, err := decodeRotationWAL(w.Data)
		if err != nil || e.Name != name {
			continue
		}
		out = append(out, pendingRotation{id: id, entry: e})
	}
	return out, nil
}

// deleteWAL removes a settled or abandoned entry. A failure is only logged: the rollback
// finds the entry again, sees that it is settled, and removes it.
func (b *backend) deleteWAL(ctx context.Context, s logical.Storage, name, id string) {
	if err := framework.DeleteWAL(ctx, s, id); err != nil {
		b.Logger().Warn("could not delete a settled WAL entry; the rollback will clear it", "config", name, "error", err)
	}
}
