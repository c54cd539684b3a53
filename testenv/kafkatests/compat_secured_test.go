package kafkatests_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// TestKafkaClientMatrixSecured runs the client matrix against a secured
// broker, `strata dev --tls`: Kafka over SASL_SSL with ACLs enforced. Each
// client checks the broker's certificate against the generated CA and
// authenticates as the user compat with its row's mechanism; compat may do
// anything to topics and groups named compat-* (and describe the cluster),
// so the matrix passes only if every request is authorized as Kafka would,
// and its produce to a topic outside that prefix (capDenied) must be
// refused with TOPIC_AUTHORIZATION_FAILED, not hang. kafka-go is left out:
// its readers, writers and connections each need their own dialer.
func TestKafkaClientMatrixSecured(t *testing.T) {
	if testing.Short() {
		t.Skip("installs Kafka clients and runs them against a broker over SASL_SSL")
	}
	compatInstall(t)
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{"--tls",
		"--config", "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"}})
	dir := filepath.Join(dev.DataDir, "tls")
	ca := filepath.Join(dir, "ca.pem")
	admin := []string{"--tls-ca", ca, "--tls-cert", filepath.Join(dir, "client.pem")}
	const user, password = "compat", "compat-secret"
	testenvtest.StrataCLI(t, dev, password+"\n", append([]string{"users", "create", user}, admin...)...)
	for _, resource := range [][]string{
		{"--topic", "compat-", "--resource-pattern-type", "prefixed"},
		{"--group", "compat-", "--resource-pattern-type", "prefixed"},
	} {
		testenvtest.StrataCLI(t, dev, "", append(append([]string{"acls", "add", "--allow-principal", "User:" + user, "--operation", "All"}, resource...), admin...)...)
	}
	testenvtest.StrataCLI(t, dev, "", append([]string{"acls", "add", "--allow-principal", "User:" + user, "--operation", "Describe", "--cluster"}, admin...)...)

	rows := []struct{ client, mechanism string }{
		{"kcat", "SCRAM-SHA-512"},
		{"kafka-python", "PLAIN"},
		{"kafka-python", "SCRAM-SHA-256"},
		{"kafkajs", "SCRAM-SHA-512"},
		{"franz-go", "SCRAM-SHA-256"},
		{"sarama", "SCRAM-SHA-512"},
	}
	all := compatClients()
	var clients []compatClient
	for _, row := range rows {
		i := slices.IndexFunc(all, func(c compatClient) bool { return c.name == row.client })
		cl := all[i]
		cl.name = row.client + " (" + row.mechanism + ")"
		cl.version += ", SASL_SSL " + row.mechanism
		cl.sec = compatSecurity{protocol: "SASL_SSL", mechanism: row.mechanism, user: user, password: password,
			caFile: ca, deniedTopic: "restricted"}
		testenvtest.StrataCLI(t, dev, "", append([]string{"topics", "create", cl.sec.deniedTopic + "-" + cl.topicName()}, admin...)...)
		clients = append(clients, cl)
	}
	// The user has no ACL on transactional ids: transactions stay out.
	capabilities := append(slices.DeleteFunc(slices.Clone(compatCapabilities), func(c string) bool { return c == capTransactions }), capDenied)
	results := runCompatMatrix(t, clients, compatEnv{bootstrap: []string{dev.KafkaAddr}, brokers: 1, rf: 1}, capabilities)
	t.Logf("Kafka client matrix over SASL_SSL with ACLs:\n%s", compatTable(clients, results, capabilities))
}
