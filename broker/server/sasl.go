package server

import (
	"context"
	"fmt"
	"slices"

	"github.com/strata-broker/strata/broker/kafkaapi"
	"github.com/strata-broker/strata/sasl"
	"github.com/strata-broker/strata/sasl/oauthbearer"
	"github.com/strata-broker/strata/topicconfig"
)

// loadOAuthBearer makes the token validator when the sasl.oauthbearer.*
// settings say how to validate tokens (a JWKS, an issuer key, or the
// unsecured mode). An https JWKS is fetched now, so an unreachable one
// fails the start rather than every login.
func (p *process) loadOAuthBearer(ctx context.Context) error {
	cfg, enabled, err := topicconfig.OAuthBearer(p.cfg.Settings)
	if err != nil {
		return err
	}
	offered := slices.Contains(p.sasl.EnabledMechanisms, sasl.OAuthBearer)
	if !enabled {
		if offered {
			return fmt.Errorf("sasl.enabled.mechanisms lists %s but no way to validate tokens is set: set %s, %s or %s",
				sasl.OAuthBearer, topicconfig.OAuthBearerJWKSURLKey, topicconfig.OAuthBearerPublicKeyLocationKey, topicconfig.OAuthBearerUnsecuredKey)
		}
		return nil
	}
	p.oauth, err = oauthbearer.NewValidator(ctx, cfg, oauthbearer.Options{
		Logger:     p.logger.With("component", "oauthbearer"),
		Registerer: p.reg,
	})
	if err != nil {
		return fmt.Errorf("OAUTHBEARER token validation: %w", err)
	}
	return nil
}

// saslConfig is how the Kafka listener authenticates, if it is a SASL
// one: the mechanisms sasl.enabled.mechanisms lists, checking the users'
// SCRAM credentials the broker follows, or tokens with the validator.
func (p *process) saslConfig() *kafkaapi.SASLConfig {
	cfg := &kafkaapi.SASLConfig{
		MaxReauth:                 p.sasl.MaxReauth,
		FailedAuthenticationDelay: p.sasl.FailedAuthenticationDelay,
		MaxReceiveSize:            p.sasl.MaxReceiveSize,
	}
	for _, name := range p.sasl.EnabledMechanisms {
		switch name {
		case sasl.Plain:
			cfg.Mechanisms = append(cfg.Mechanisms, sasl.NewPlain(p.broker))
		case sasl.ScramSHA256, sasl.ScramSHA512:
			// topicconfig.SASLSettings lets only these names through, so
			// NewScram cannot fail.
			if m, err := sasl.NewScram(name, p.broker); err == nil {
				cfg.Mechanisms = append(cfg.Mechanisms, m)
			}
		case sasl.OAuthBearer:
			// loadOAuthBearer refused the start when there is no validator.
			cfg.Mechanisms = append(cfg.Mechanisms, oauthbearer.NewMechanism(p.oauth))
		}
	}
	return cfg
}
