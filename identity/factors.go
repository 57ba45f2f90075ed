package identity

import (
	"context"
	"fmt"

	"github.com/airlockhq/airlock"
)

// requireFactorChange allows factor changes: without any factor yet
// (enrollment), or with MFA fresh for ActionFactors.
func (s *Service) requireFactorChange(ctx context.Context, p *Principal) error {
	fs, err := s.activeFactors(ctx, p.User.ID)
	if err != nil {
		return err
	}
	if len(fs) == 0 {
		return nil
	}
	return s.RequireFresh(p, ActionFactors)
}

// ListFactors returns p's factors (no secrets).
func (s *Service) ListFactors(ctx context.Context, p *Principal) ([]*airlock.Factor, error) {
	return s.store.ListFactors(ctx, p.User.ID)
}

// EnrollTOTP starts a TOTP enrollment; the factor is pending until ConfirmTOTP.
func (s *Service) EnrollTOTP(ctx context.Context, p *Principal, name string) (f *airlock.Factor, uri, qr string, err error) {
	if err := s.requireFactorChange(ctx, p); err != nil {
		return nil, "", "", err
	}
	if name == "" {
		name = "authenticator"
	}
	err = s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "mfa.enrolled", SourceAddr: p.Source, Details: airlock.EventDetails("kind", airlock.FactorTOTP, "name", name)},
		func(ctx context.Context) (err error) {
			f, uri, qr, err = s.totp.Enroll(ctx, p.User, name)
			return err
		})
	if err != nil {
		return nil, "", "", err
	}
	return f, uri, qr, nil
}

// ConfirmTOTP activates a pending TOTP factor with a valid code. Confirming
// the first factor also makes the session's MFA fresh.
func (s *Service) ConfirmTOTP(ctx context.Context, p *Principal, factorID, code string) error {
	f, err := s.store.FactorByID(ctx, factorID)
	if err != nil || f.UserID != p.User.ID {
		return airlock.Errorf(airlock.ENOTFOUND, "no pending factor %q; run `airlock mfa list`", factorID)
	}
	srcKey, err := s.admit(ctx, p.User.Name, p.User.ID, p.Source)
	if err != nil {
		return err
	}
	if err := s.totp.Confirm(ctx, p.User.ID, factorID, code); err != nil {
		s.fail(ctx, p.User.Name, p.User.ID, p.Source, "mfa.confirm_failed", "totp confirm: "+err.Error())
		return airlock.Errorf(airlock.EUNAUTHORIZED, "invalid or already used code")
	}
	if err := s.markFresh(ctx, p, MethodTOTP, "mfa.confirmed"); err != nil {
		return err
	}
	s.admitted(ctx, srcKey)
	return nil
}

// BeginWebAuthnRegistration starts registering a passkey or security key.
func (s *Service) BeginWebAuthnRegistration(ctx context.Context, p *Principal, name string) (string, []byte, error) {
	if s.webauthn == nil {
		return "", nil, airlock.Errorf(airlock.EINVALID, "WebAuthn is not configured on this server")
	}
	if err := s.requireFactorChange(ctx, p); err != nil {
		return "", nil, err
	}
	if name == "" {
		name = "security key"
	}
	return s.webauthn.BeginRegistration(ctx, p.User, name)
}

// FinishWebAuthnRegistration completes a registration ceremony.
func (s *Service) FinishWebAuthnRegistration(ctx context.Context, p *Principal, ceremony string, response []byte) (*airlock.Factor, error) {
	if s.webauthn == nil {
		return nil, airlock.Errorf(airlock.EINVALID, "WebAuthn is not configured on this server")
	}
	if err := s.requireFactorChange(ctx, p); err != nil {
		return nil, err
	}
	f, err := s.webauthn.FinishRegistration(ctx, p.User, ceremony, response)
	if err != nil {
		s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "mfa.confirm_failed", SourceAddr: p.Source, Outcome: airlock.OutcomeFailure,
			Details: airlock.EventDetails("kind", airlock.FactorWebAuthn, "reason", airlock.ErrorMessage(err))})
		return nil, err
	}
	// Audited once the key is verified (a refused registration is not an
	// enrollment); no factor stays without its audit record.
	if err := s.record(ctx, airlock.Event{Actor: p.Actor(), Action: "mfa.enrolled", SourceAddr: p.Source,
		Details: airlock.EventDetails("kind", airlock.FactorWebAuthn, "factor_id", f.ID, "name", f.Name)}); err != nil {
		if derr := s.store.DeleteFactor(ctx, f.ID); derr != nil {
			return nil, fmt.Errorf("%w (and removing the unaudited factor %s failed: %v)", err, f.ID, derr)
		}
		return nil, err
	}
	if err := s.markFresh(ctx, p, MethodWebAuthn, "mfa.confirmed"); err != nil {
		return nil, err
	}
	return f, nil
}

// RemoveFactor deletes one of p's factors. Removing the last one is refused.
func (s *Service) RemoveFactor(ctx context.Context, p *Principal, factorID string) error {
	if err := s.RequireFresh(p, ActionFactors); err != nil {
		return err
	}
	f, err := s.store.FactorByID(ctx, factorID)
	if err != nil || f.UserID != p.User.ID {
		return airlock.Errorf(airlock.ENOTFOUND, "no factor %q; run `airlock mfa list`", factorID)
	}
	if f.Status == airlock.FactorActive && f.Kind != airlock.FactorRecovery {
		active, err := s.activeFactors(ctx, p.User.ID)
		if err != nil {
			return err
		}
		if len(active) <= 1 {
			return airlock.Errorf(airlock.EINVALID, "refusing to remove your last second factor; add another first (`airlock mfa add totp`)")
		}
	}
	return s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "mfa.removed", SourceAddr: p.Source, Details: airlock.EventDetails("factor_id", f.ID, "kind", f.Kind)},
		func(ctx context.Context) error { return s.store.DeleteFactor(ctx, factorID) })
}

// RecoveryCodes replaces p's recovery codes with a new set of 10.
func (s *Service) RecoveryCodes(ctx context.Context, p *Principal) ([]string, error) {
	if err := s.RequireFresh(p, ActionFactors); err != nil {
		return nil, err
	}
	var codes []string
	err := s.change(ctx, airlock.Event{Actor: p.Actor(), Action: "mfa.recovery_generated", SourceAddr: p.Source},
		func(ctx context.Context) (err error) {
			codes, err = s.recovery.Generate(ctx, p.User.ID)
			return err
		})
	if err != nil {
		return nil, err
	}
	return codes, nil
}
