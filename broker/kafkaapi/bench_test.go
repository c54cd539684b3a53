package kafkaapi_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// benchRecordBytes is the value size of the benchmarks' records, the size
// `strata bench` uses by default.
const benchRecordBytes = 1024

// BenchmarkKafkaProduce measures a franz-go producer with its defaults
// (idempotent, acks=all, batching, no compression) against an in-process
// broker: b.N records of 1 KiB to one partition.
func BenchmarkKafkaProduce(b *testing.B) {
	addr, _ := startBroker(b, nil)
	benchProduce(b, addr, "bench-produce", b.N, true)
}

// BenchmarkKafkaProduceAuthorized is BenchmarkKafkaProduce on a broker
// deciding every request against 10,000 ACLs.
func BenchmarkKafkaProduceAuthorized(b *testing.B) {
	addr := startAuthorizedBroker(b, "bench-produce")
	benchProduce(b, addr, "bench-produce", b.N, true)
}

// BenchmarkKafkaFetch measures a franz-go consumer reading b.N records of
// 1 KiB from the start of one partition.
func BenchmarkKafkaFetch(b *testing.B) {
	addr, _ := startBroker(b, nil)
	benchFetch(b, addr)
}

// BenchmarkKafkaFetchAuthorized is BenchmarkKafkaFetch on a broker
// deciding every request against 10,000 ACLs.
func BenchmarkKafkaFetchAuthorized(b *testing.B) {
	benchFetch(b, startAuthorizedBroker(b, "bench-fetch"))
}

// startAuthorizedBroker starts a broker with an authorizer holding 10,000
// ACLs, among them Write and Read on topic for the benchmark's client
// (User:ANONYMOUS, on the plaintext listener). The cluster has no ACLs,
// so allow.everyone.if.no.acl.found lets that client create the topic and
// the ACLs; the topic's requests are decided by its ACLs.
func startAuthorizedBroker(b *testing.B, topic string) string {
	addr, _ := startBroker(b, map[string]string{"authorizer.class.name": "strata", "allow.everyone.if.no.acl.found": "true"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	create := func(acls *kadm.ACLBuilder) {
		res, err := adm.CreateACLs(ctx, acls)
		if err == nil {
			for _, r := range res {
				err = errors.Join(err, r.Err)
			}
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	// Three ACLs for each of 3,332 principals, then the benchmark
	// client's two and the probe: 10,000. A thousand a request.
	req := kmsg.NewPtrCreateACLsRequest()
	flush := func() {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range resp.Results {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
				b.Fatal(err)
			}
		}
		req.Creations = req.Creations[:0]
	}
	for i := range 3332 {
		for _, r := range []struct {
			rt   kmsg.ACLResourceType
			name string
		}{{kmsg.ACLResourceTypeTopic, "topic-"}, {kmsg.ACLResourceTypeGroup, "group-"}, {kmsg.ACLResourceTypeTransactionalId, "tx-"}} {
			c := kmsg.NewCreateACLsRequestCreation()
			c.ResourceType, c.ResourceName, c.ResourcePatternType = r.rt, fmt.Sprint(r.name, i), kmsg.ACLResourcePatternTypeLiteral
			c.Principal, c.Host = fmt.Sprintf("User:user-%d", i), "*"
			c.Operation, c.PermissionType = kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow
			req.Creations = append(req.Creations, c)
		}
		if len(req.Creations) >= 1000 {
			flush()
		}
	}
	flush()
	create(kadm.NewACLs().Allow("User:ANONYMOUS").AllowHosts().Topics(topic).
		Operations(kadm.OpWrite, kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	// Last, a deny on a probe topic: once the broker refuses it, the ACLs
	// created before it are in the authorizer too.
	create(kadm.NewACLs().Deny("User:ANONYMOUS").DenyHosts().Topics("probe").
		Operations(kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral))
	for {
		md, err := adm.Metadata(ctx, "probe")
		if errors.Is(err, kerr.TopicAuthorizationFailed) || (err == nil && errors.Is(md.Topics["probe"].Err, kerr.TopicAuthorizationFailed)) {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("the ACLs did not reach the authorizer: %v (last: %v)", ctx.Err(), err)
		}
	}
	return addr
}

func benchFetch(b *testing.B, addr string) {
	benchProduce(b, addr, "bench-fetch", b.N, false)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("bench-fetch"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.SetBytes(benchRecordBytes)
	b.ResetTimer()
	for n := 0; n < b.N; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatal(ctx.Err())
		}
		n += fs.NumRecords()
	}
}

func benchProduce(b *testing.B, addr, topic string, n int, timed bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, benchRecordBytes)
	if timed {
		b.SetBytes(benchRecordBytes)
		b.ResetTimer()
	}
	errs := make(chan error, 1)
	for range n {
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}
