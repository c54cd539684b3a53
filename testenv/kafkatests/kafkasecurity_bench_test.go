package kafkatests_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// BenchmarkKafkaListenerSecurity measures a franz-go producer and consumer
// against `strata dev` on each security protocol of its Kafka listener
// (without ACLs: the protocol's cost alone),
// the protocols alternating within each -count round so that the machine's
// noise falls on all of them alike. Each sub-benchmark starts its own
// broker process; run it with a fixed -benchtime (records), e.g.
//
//	go test -run '^$' -bench KafkaListenerSecurity -benchtime 200000x -count 3 ./testenv/kafkatests/
func BenchmarkKafkaListenerSecurity(b *testing.B) {
	modes := []struct {
		name string
		args []string
		sec  func(dev *testenv.Dev) compatSecurity
	}{
		{"PLAINTEXT", nil, func(*testenv.Dev) compatSecurity { return compatSecurity{} }},
		{"SSL", []string{"--tls", "--config", "authorizer.class.name="}, func(dev *testenv.Dev) compatSecurity {
			return compatSecurity{protocol: "SSL", caFile: filepath.Join(dev.DataDir, "tls", "ca.pem")}
		}},
		{"SASL_SSL", []string{"--tls", "--config", "authorizer.class.name="}, func(dev *testenv.Dev) compatSecurity {
			ca := filepath.Join(dev.DataDir, "tls", "ca.pem")
			testenvtest.StrataCLI(b, dev, "bench-secret\n", "users", "create", "bench", "--mechanism", "SCRAM-SHA-512", "--tls-ca", ca)
			return compatSecurity{protocol: "SASL_SSL", mechanism: "SCRAM-SHA-512", user: "bench", password: "bench-secret", caFile: ca}
		}},
	}
	for _, m := range modes {
		for _, op := range []string{"produce", "consume"} {
			b.Run(m.name+"/"+op, func(b *testing.B) {
				opts := testenv.DevOptions{ExtraArgs: m.args}
				if m.name != "PLAINTEXT" {
					opts.KafkaProtocol = m.name
				}
				dev := testenv.StartDev(b, opts)
				env := compatEnv{bootstrap: []string{dev.KafkaAddr}, sec: m.sec(dev)}
				benchKafkaSecurity(b, env, op == "produce")
			})
		}
	}
}

// benchKafkaSecurity produces b.N records of 1 KiB to a new topic of one
// partition (timed when produce is set), or produces them untimed and
// times reading them back.
func benchKafkaSecurity(b *testing.B, env compatEnv, produce bool) {
	const recordBytes = 1024
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const topic = "bench"
	cl, err := franzClient(env, kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil || resp.Err != nil {
		b.Fatalf("create topic: %v %v", err, resp.Err)
	}
	value := make([]byte, recordBytes)
	b.SetBytes(recordBytes)
	if produce {
		b.ResetTimer()
	}
	failed := make(chan error, 1)
	for range b.N {
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case failed <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-failed:
		b.Fatal(err)
	default:
	}
	if produce {
		return
	}
	cons, err := franzClient(env, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	b.ResetTimer()
	for n := 0; n < b.N; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("read %d of %d records: %v", n, b.N, ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { b.Fatal(err) })
		n += fs.NumRecords()
	}
}
