package server

import (
	"fmt"

	"github.com/strata-broker/strata/broker/kafkaapi"
	"github.com/strata-broker/strata/sasl"
)

// checkMechanisms refuses an enabled mechanism this broker cannot offer.
func checkMechanisms(names []string) error {
	for _, name := range names {
		if name == sasl.OAuthBearer {
			return fmt.Errorf("sasl.enabled.mechanisms: %s is not available yet", name)
		}
	}
	return nil
}

// saslConfig is how the Kafka listener authenticates, if it is a SASL
// one: the mechanisms sasl.enabled.mechanisms lists, checking the users'
// SCRAM credentials the broker follows.
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
			// checkMechanisms and topicconfig.SASLSettings let only these
			// names through, so NewScram cannot fail.
			if m, err := sasl.NewScram(name, p.broker); err == nil {
				cfg.Mechanisms = append(cfg.Mechanisms, m)
			}
		}
	}
	return cfg
}
