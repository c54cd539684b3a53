package topicconfig

import (
	"strconv"
	"strings"
)

// GRPCReflectionEnableKey switches the gRPC port's server reflection, which
// lets tools such as grpcurl list and call the services without the .proto
// files. Kafka has no gRPC port, so the key is Strata's own, under the
// grpc. prefix of the port's other settings.
const GRPCReflectionEnableKey = "grpc.reflection.enable"

// GRPCReflection reads grpc.reflection.enable; on by default, since it
// tells no more than the published .proto files do. A cluster that would
// rather not describe its API to whoever can reach the port turns it off.
func GRPCReflection(brokerSettings map[string]string) (bool, error) {
	raw, ok := brokerSettings[GRPCReflectionEnableKey]
	if !ok {
		return true, nil
	}
	v, err := strconv.ParseBool(strings.TrimSpace(raw))
	if err != nil {
		return true, &ValueError{Key: GRPCReflectionEnableKey, Value: raw, Reason: "must be true or false"}
	}
	return v, nil
}
