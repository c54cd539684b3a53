// Package kafkatests holds integration tests that drive real Kafka clients
// (franz-go, sarama, kafka-go, kafka-python, kcat, kafkajs) and the security
// surface (SASL, TLS, listeners, ACLs, gRPC authorization) against brokers
// that testenv starts: consumer groups, transactions and exactly-once,
// compatibility matrices and franz-go's own suite. The cluster, replication,
// failure, tiering and storage tests stay in testenv. The integration tests
// are two packages so that go test runs them side by side; what they share
// is in testenv/testenvtest. There is no code here besides the tests.
package kafkatests
