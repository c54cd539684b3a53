package topicconfig

import (
	"slices"
	"strconv"
	"strings"

	"github.com/strata-broker/strata/acl"
)

// Authorizer names accepted for authorizer.class.name. Kafka's two ACL
// authorizers name the same model Strata implements, so a server.properties
// written for Kafka turns it on unchanged; "strata" is the short name.
var authorizerNames = []string{
	"strata",
	"org.apache.kafka.metadata.authorizer.StandardAuthorizer",
	"kafka.security.authorizer.AclAuthorizer",
}

// Authorizer reads authorizer.class.name, super.users and
// allow.everyone.if.no.acl.found. enabled is false when
// authorizer.class.name is unset or empty, as in Kafka: then the ACL APIs
// answer SECURITY_DISABLED.
func Authorizer(brokerSettings map[string]string) (cfg acl.Config, enabled bool, err error) {
	class := strings.TrimSpace(brokerSettings["authorizer.class.name"])
	if class != "" && !slices.Contains(authorizerNames, class) {
		return acl.Config{}, false, &ValueError{Key: "authorizer.class.name", Value: class,
			Reason: "must be empty (no authorizer) or one of " + strings.Join(authorizerNames, ", ")}
	}
	if raw, ok := brokerSettings["allow.everyone.if.no.acl.found"]; ok {
		v, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return acl.Config{}, false, &ValueError{Key: "allow.everyone.if.no.acl.found", Value: raw, Reason: "must be true or false"}
		}
		cfg.AllowEveryoneIfNoACLFound = v
	}
	for p := range strings.SplitSeq(brokerSettings["super.users"], ";") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if _, _, err := acl.ParsePrincipal(p); err != nil {
			return acl.Config{}, false, &ValueError{Key: "super.users", Value: brokerSettings["super.users"], Reason: err.Error()}
		}
		cfg.SuperUsers = append(cfg.SuperUsers, p)
	}
	return cfg, class != "", nil
}
