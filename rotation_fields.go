package apitokens

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/rotation"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// cannotRotate names the configs that cannot rotate, in the words every text uses (the
// README, rotate-root's path-help, the rotation fields' descriptions and the errors),
// composed from the providers' drivers: a test holds them to it.
var cannotRotate = composeCannotRotate()

// rotationFields are the schedule's fields, in the order errors name them.
var rotationFields = []string{"rotation_schedule", "rotation_period", "rotation_window", "disable_automated_rotation", "rotation_policy"}

// Descriptions of the rotation fields: the README says the same.
var rotationPeriodDesc = "Rotate the root credential this often (at least 1m), counted from the last rotation, or " +
	"from when the period was set if that is later. Setting it replaces a rotation_schedule. Run by the plugin " +
	"itself, on Vault Community Edition too. Not for " + cannotRotate + "."

const (
	rotationScheduleDesc = "Rotate the root credential on this cron schedule (UTC). Setting it replaces a rotation_period."
	rotationWindowDesc   = "With rotation_schedule: how long after a scheduled time a missed rotation may still run " +
		"(at least 1h); past it, the next scheduled time is waited for. 0: a missed rotation runs at once."
	disableRotationDesc = "true pauses scheduled rotation and keeps the schedule; false resumes it, counted as " +
		"before: a rotation that fell due during the pause runs once the leases handed out during the pause have ended."
	rotationPolicyDesc = "Not supported (a Vault Enterprise rotation manager setting): a failed scheduled rotation " +
		"is retried after 1 minute, doubling, at most 1 hour."
)

// canRotate says why config c cannot be rotated, or nil. It needs no client.
func canRotate(c *accountConfig) error {
	d, _ := registry.Lookup(c.Provider)
	if rd, ok := d.(registry.RotatingDriver); ok {
		return rd.CanRotate(c.cred)
	}
	return fmt.Errorf("provider %s has no rotation API", c.Provider)
}

// rotationInput is what a write says about the schedule: each field given, and its value.
type rotationInput struct {
	schedule, policy                  string
	period, window                    time.Duration
	hasSchedule, hasPeriod, hasWindow bool
	disable, hasDisable, hasPolicy    bool
}

func readRotationInput(d *framework.FieldData) rotationInput {
	var in rotationInput
	for _, f := range rotationFields {
		v, ok := d.GetOk(f)
		if !ok {
			continue
		}
		switch f {
		case "rotation_schedule":
			in.schedule, in.hasSchedule = v.(string), true
		case "rotation_period":
			in.period, in.hasPeriod = time.Duration(v.(int))*time.Second, true
		case "rotation_window":
			in.window, in.hasWindow = time.Duration(v.(int))*time.Second, true
		case "disable_automated_rotation":
			in.disable, in.hasDisable = v.(bool), true
		case "rotation_policy":
			in.policy, in.hasPolicy = v.(string), true
		}
	}
	return in
}

// asksForSchedule names the first rotation field given with a value that asks for a
// schedule or a pause (not 0, "" or false), or "".
func (in rotationInput) asksForSchedule() string {
	switch {
	case in.schedule != "":
		return "rotation_schedule"
	case in.period != 0:
		return "rotation_period"
	case in.window != 0:
		return "rotation_window"
	case in.disable:
		return "disable_automated_rotation"
	}
	return ""
}

// applyRotationFields reads rotation_schedule, rotation_period, rotation_window,
// disable_automated_rotation (and rotation_policy, which is refused) into c and checks them.
// The rules, which the README and the fields' descriptions state:
//
//   - a config that cannot rotate (cannotRotate) has no schedule: a rotation field that asks
//     for one, or for a pause, is a 400 naming it (0, "" and false ask for nothing);
//   - rotation_period and rotation_schedule are one choice: setting one replaces the other
//     (a warning says so); giving both non-empty is a 400 naming both;
//   - a change of the schedule (period, cron or window) restarts it from now and clears its
//     failures; on an existing config its first rotation waits for the leases handed out
//     before (leasesEndBy);
//   - disable_automated_rotation pauses the schedule and keeps it; resuming it restarts
//     nothing: a rotation that fell due meanwhile runs once the leases handed out during the
//     pause, which no schedule capped, have ended.
func applyRotationFields(c, existing *accountConfig, d *framework.FieldData, now time.Time) (warnings []string, err error) {
	in := readRotationInput(d)
	if in.hasPolicy && in.policy != "" {
		return nil, fieldErrorf("rotation_policy", "is a setting of Vault Enterprise's rotation manager; this plugin "+
			"schedules rotations itself and retries a failed one with backoff (1 minute, doubling, at most 1 hour)")
	}
	if why := canRotate(c); why != nil {
		if f := in.asksForSchedule(); f != "" {
			return nil, fieldErrorf(f, "this config cannot rotate (%v), so it takes no schedule; "+
				"configs that cannot rotate: %s", why, cannotRotate)
		}
		if c.Rotation.RotationPeriod != 0 || c.Rotation.RotationSchedule != "" { // paused or not: a pause keeps it
			return nil, fieldErrorf(scheduleField(c), "this config has a rotation schedule, but after this write it "+
				"could not rotate (%v): clear the schedule first (rotation_period=0 or rotation_schedule=\"\")", why)
		}
		c.Rotation = rotationState{} // a config that cannot rotate has no rotation fields, nor a plan
		if !c.Plan.At.IsZero() {
			c.Plan = plannedRotation{}
			warnings = append(warnings, "the planned rotation is dropped: after this write the config cannot rotate")
		}
		return warnings, nil
	}
	before := c.Rotation.AutomatedRotationParams
	p := before
	if in.hasSchedule && in.hasPeriod && in.schedule != "" && in.period != 0 {
		return nil, fieldErrorf("rotation_schedule", "and rotation_period were both given: a config rotates either "+
			"every rotation_period or on a cron rotation_schedule; give one (it replaces the other)")
	}
	if in.hasSchedule {
		if in.schedule != strings.TrimSpace(in.schedule) {
			return nil, fieldErrorf("rotation_schedule", "has leading or trailing white space; remove it")
		}
		if in.schedule != "" {
			if _, err := rotation.DefaultScheduler.Parse(in.schedule); err != nil {
				return nil, fieldErrorf("rotation_schedule", "is not a cron schedule (minute hour day month weekday, "+
					"such as \"0 3 * * 1\"): %v", err)
			}
			if p.RotationPeriod != 0 {
				warnings = append(warnings, fmt.Sprintf("rotation_schedule replaces the rotation_period of %s",
					formatDuration(p.RotationPeriod)))
			}
			p.RotationPeriod = 0
		}
		p.RotationSchedule = in.schedule
		if in.schedule == "" {
			p.RotationWindow = 0
		}
	}
	if in.hasPeriod {
		if in.period < 0 || (in.period > 0 && in.period < minRotationPeriod) {
			return nil, fieldErrorf("rotation_period", "must be at least %s (or 0 for none)", formatDuration(minRotationPeriod))
		}
		if in.period > 0 && p.RotationSchedule != "" {
			warnings = append(warnings, fmt.Sprintf("rotation_period replaces the rotation_schedule %q", p.RotationSchedule))
			p.RotationSchedule, p.RotationWindow = "", 0
		}
		p.RotationPeriod = in.period
	}
	if in.hasWindow {
		p.RotationWindow = in.window
	}
	if p.RotationWindow != 0 {
		if p.RotationSchedule == "" {
			return nil, fieldErrorf("rotation_window", "applies only to rotation_schedule")
		}
		if err := rotation.DefaultScheduler.ValidateRotationWindow(int(p.RotationWindow.Seconds())); err != nil {
			return nil, fieldErrorf("rotation_window", "must be at least 1h, or 0 for none (%v)", err)
		}
	}
	if in.hasDisable {
		p.DisableAutomatedRotation = in.disable
	}
	c.Rotation.AutomatedRotationParams = p
	resumed := before.DisableAutomatedRotation && !p.DisableAutomatedRotation
	p.DisableAutomatedRotation, before.DisableAutomatedRotation = false, false
	switch {
	case p != before: // a new schedule: it counts from now
		c.Rotation.Since = now
		c.keepPlanBackoff()
		c.Rotation.clearFailures()
		c.Rotation.LeasesEndBy, c.Rotation.BoundSince = time.Time{}, time.Time{}
		if existing != nil {
			c.Rotation.LeasesEndBy = existing.leasesEndBy(now)
		}
	case resumed && existing != nil: // the same schedule, resumed: it counts as before
		c.keepPlanBackoff()
		c.Rotation.clearFailures()
		c.Rotation.LeasesEndBy, c.Rotation.BoundSince = existing.leasesEndBy(now), now
	}
	return warnings, nil
}

// scheduleField names the field of c's schedule, for an error about it.
func scheduleField(c *accountConfig) string {
	switch {
	case c.Rotation.RotationSchedule != "":
		return "rotation_schedule"
	case c.Rotation.RotationPeriod != 0:
		return "rotation_period"
	}
	return "disable_automated_rotation"
}
