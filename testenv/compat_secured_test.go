package testenv_test

import (
	"path/filepath"
	"testing"

	"github.com/strata-broker/strata/testenv"
)

// TestKafkaClientMatrixSecured runs the client matrix against a broker that
// only speaks TLS (`strata dev --tls`): each client checks the broker's
// certificate against the CA the broker generated. kafka-go is left out:
// its readers, writers and connections each need their own dialer.
func TestKafkaClientMatrixSecured(t *testing.T) {
	if testing.Short() {
		t.Skip("installs Kafka clients and runs them against a broker over TLS")
	}
	compatInstall(t)
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{"--tls"}})
	sec := compatSecurity{protocol: "SSL", caFile: filepath.Join(dev.DataDir, "tls", "ca.pem")}
	var clients []compatClient
	for _, cl := range compatClients() {
		if cl.name == "kafka-go" {
			continue
		}
		cl.sec = sec
		clients = append(clients, cl)
	}
	results := runCompatMatrix(t, clients, compatEnv{bootstrap: []string{dev.KafkaAddr}, brokers: 1, rf: 1}, compatCapabilities)
	t.Logf("Kafka client matrix over TLS:\n%s", compatTable(clients, results, compatCapabilities))
}
