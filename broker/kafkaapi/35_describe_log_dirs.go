// DescribeLogDirs (key 35), versions 0-5.
//
// A Strata broker has one log directory, its data directory: the answer is
// that directory and each replica hosted in it, with the size of its local
// log (a tiered topic's segments in the object store are not counted), an
// offset lag of 0 and is_future false, as no replica is ever moved between
// directories of one broker. Null topics describe every replica; a named
// partition not hosted here is left out, as Kafka leaves it. The volume's
// total and usable bytes (v4) are -1: unknown. The directory is never
// cordoned (v5, KIP-1066): Strata places replicas on brokers, not
// directories. Needs Describe on the
// cluster; a refused request gets CLUSTER_AUTHORIZATION_FAILED (v3+) or
// no directories (v0-2), as in Kafka.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) describeLogDirsAPI() api {
	return api{key: 35, min: 0, max: 5, amplification: 130, handle: decoded(s.describeLogDirs), auth: onCluster(acl.OpDescribe)}
}

func (s *Server) describeLogDirs(_ context.Context, req *kmsg.DescribeLogDirsRequest) *kmsg.DescribeLogDirsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	var parts []metastore.TopicPartition
	if req.Topics != nil {
		parts = []metastore.TopicPartition{}
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				parts = append(parts, metastore.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
	}
	dirs := s.core.DescribeLogDirs(parts)
	d := kmsg.NewDescribeLogDirsResponseDir()
	d.Dir = dirs.Dir
	d.Topics = []kmsg.DescribeLogDirsResponseDirTopic{}
	for _, r := range dirs.Replicas {
		if n := len(d.Topics); n == 0 || d.Topics[n-1].Topic != r.Topic {
			t := kmsg.NewDescribeLogDirsResponseDirTopic()
			t.Topic = r.Topic
			d.Topics = append(d.Topics, t)
		}
		p := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
		p.Partition, p.Size = r.Partition, r.Size
		t := &d.Topics[len(d.Topics)-1]
		t.Partitions = append(t.Partitions, p)
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{d}
	return resp
}
