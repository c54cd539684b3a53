package kafkaapi

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

// benchACLs are 10,000 ACLs shaped as a broker's might be (2,500
// principals with four each, on topics, prefixes, groups and
// transactional ids), with principal allowed Write and Read on topic.
func benchACLs(principal, topic string) []acl.Binding {
	var out []acl.Binding
	bind := func(rt acl.ResourceType, name string, pt acl.PatternType, p string, op acl.Operation) {
		out = append(out, acl.Binding{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: p,
			Host: acl.WildcardHost, Operation: op, Permission: acl.PermissionAllow})
	}
	for i := range 2499 {
		p := fmt.Sprintf("User:user-%d", i)
		bind(acl.ResourceTopic, fmt.Sprintf("topic-%d", i), acl.PatternLiteral, p, acl.OpWrite)
		bind(acl.ResourceTopic, fmt.Sprintf("team-%d-", i), acl.PatternPrefixed, p, acl.OpRead)
		bind(acl.ResourceGroup, fmt.Sprintf("group-%d", i), acl.PatternLiteral, p, acl.OpRead)
		bind(acl.ResourceTransactionalID, fmt.Sprintf("tx-%d", i), acl.PatternLiteral, p, acl.OpWrite)
	}
	bind(acl.ResourceTopic, topic, acl.PatternLiteral, principal, acl.OpWrite)
	bind(acl.ResourceTopic, topic, acl.PatternLiteral, principal, acl.OpRead)
	bind(acl.ResourceGroup, "bench", acl.PatternLiteral, principal, acl.OpRead)
	bind(acl.ResourceCluster, acl.ClusterName, acl.PatternLiteral, principal, acl.OpIdempotentWrite)
	return out
}

// BenchmarkAuthorizedRequest is the frontend's cost of answering a Produce
// and a Fetch of one partition (over nullCore, so that what is measured is
// decoding, authorizing and answering, not the log), with no authorizer
// and with one holding 10,000 ACLs.
func BenchmarkAuthorizedRequest(b *testing.B) {
	const topic = "bench"
	produce := kmsg.NewPtrProduceRequest()
	produce.Acks = 1
	p := kmsg.NewProduceRequestTopicPartition()
	produce.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{p}}}
	fetch := kmsg.NewPtrFetchRequest()
	fp := kmsg.NewFetchRequestTopicPartition()
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{fp}}}
	for _, mode := range []string{"off", "10000acls"} {
		var authz *acl.Authorizer
		if mode != "off" {
			authz = acl.New(acl.Config{})
			authz.Update(benchACLs(testPrincipal, topic))
			if authz.Len() != 10000 {
				b.Fatalf("%d ACLs", authz.Len())
			}
		}
		s := New(nullCore{}, Config{NodeID: 1, Authorizer: authz})
		for _, req := range []kmsg.Request{produce, fetch} {
			a, _ := s.lookup(req.Key())
			req.SetVersion(a.max)
			body := req.AppendTo(nil)
			b.Run(fmt.Sprintf("%s/authorizer=%s", kmsg.NameForKey(req.Key()), mode), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					// As handleFrame makes it for each request.
					ctx := context.Background()
					if authz != nil {
						ctx = withClient(ctx, &client{principal: testPrincipal, host: testHost, api: kmsg.NameForKey(req.Key())})
					}
					empty := kmsg.RequestForKey(req.Key())
					empty.SetVersion(a.max)
					resp, err := s.answer(ctx, header{key: req.Key(), version: a.max}, empty, body)
					if err != nil {
						b.Fatal(err)
					}
					if pr, ok := resp.(*pooledResponse); ok {
						pr.release()
					}
				}
			})
		}
	}
}
