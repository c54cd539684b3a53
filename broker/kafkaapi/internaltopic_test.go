package kafkaapi_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

const offsetsTopic = "__consumer_offsets"

// offsetsTopicIn returns the internal topic's entry in a Metadata response
// (nil if absent).
func offsetsTopicIn(resp *kmsg.MetadataResponse) *kmsg.MetadataResponseTopic {
	for i := range resp.Topics {
		if rt := &resp.Topics[i]; rt.Topic != nil && *rt.Topic == offsetsTopic {
			return rt
		}
	}
	return nil
}

// Clients expect __consumer_offsets in Metadata, marked internal, with
// offsets.topic.num.partitions partitions led by live brokers, whether they
// list every topic or name it; a regex consumer leaves it out by that mark.
func TestMetadataListsTheOffsetsTopicAsInternal(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"offsets.topic.num.partitions": "7"})
	cl := newClient(t, addr)
	var ids [][16]byte
	for _, named := range []bool{false, true} {
		req := kmsg.NewPtrMetadataRequest()
		if named {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(offsetsTopic)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctxFor(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		rt := offsetsTopicIn(resp)
		if rt == nil {
			t.Fatalf("named=%v: %s not listed", named, offsetsTopic)
		}
		if rt.ErrorCode != 0 || !rt.IsInternal || len(rt.Partitions) != 7 {
			t.Fatalf("named=%v: error %d, internal %v, %d partitions; want 0, true, 7", named, rt.ErrorCode, rt.IsInternal, len(rt.Partitions))
		}
		for _, p := range rt.Partitions {
			if p.ErrorCode != 0 || p.Leader != resp.Brokers[0].NodeID {
				t.Fatalf("named=%v: partition %d: error %d leader %d, want led by the only broker", named, p.Partition, p.ErrorCode, p.Leader)
			}
		}
		if rt.TopicID == [16]byte{} {
			t.Fatalf("named=%v: no topic id", named)
		}
		ids = append(ids, rt.TopicID)
	}
	if ids[0] != ids[1] {
		t.Fatalf("topic id changed between requests: %x, %x", ids[0], ids[1])
	}
	// Asked for by id (v10+), it is found too.
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.TopicID = ids[0]
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxFor(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := offsetsTopicIn(resp); got == nil || len(got.Partitions) != 7 {
		t.Fatalf("by id: %+v", resp.Topics)
	}
}

// What Kafka refuses of its internal topic is refused: producing to it
// (INVALID_TOPIC_EXCEPTION, as Kafka's replica manager answers), deleting
// it, adding partitions, creating it (it exists); reading it finds it empty.
func TestOffsetsTopicRefusals(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"auto.create.topics.enable": "true"})
	cl := newClient(t, addr)
	ctx := ctxFor(t)

	prod := kmsg.NewPtrProduceRequest()
	prod.Acks = -1
	prod.TimeoutMillis = 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = offsetsTopic
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = encodeBatch(t, -1, -1, -1, "x")
	pt.Partitions = append(pt.Partitions, pp)
	prod.Topics = append(prod.Topics, pt)
	presp, err := prod.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := presp.Topics[0].Partitions[0].ErrorCode; got != kerr.InvalidTopicException.Code {
		t.Errorf("produce: error %d, want INVALID_TOPIC_EXCEPTION", got)
	}

	del := kmsg.NewPtrDeleteTopicsRequest()
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = kmsg.StringPtr(offsetsTopic)
	del.Topics = append(del.Topics, dt)
	dresp, err := del.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := dresp.Topics[0].ErrorCode; got != kerr.InvalidTopicException.Code {
		t.Errorf("delete: error %d, want INVALID_TOPIC_EXCEPTION", got)
	}

	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = offsetsTopic, 1, 1
	create.Topics = append(create.Topics, ct)
	cresp, err := create.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := cresp.Topics[0].ErrorCode; got != kerr.TopicAlreadyExists.Code {
		t.Errorf("create: error %d, want TOPIC_ALREADY_EXISTS", got)
	}

	cp := kmsg.NewPtrCreatePartitionsRequest()
	cpt := kmsg.NewCreatePartitionsRequestTopic()
	cpt.Topic, cpt.Count = offsetsTopic, 60
	cp.Topics = append(cp.Topics, cpt)
	cpresp, err := cp.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := cpresp.Topics[0].ErrorCode; got != kerr.InvalidPartitions.Code {
		t.Errorf("create partitions: error %d, want INVALID_PARTITIONS", got)
	}

	lo := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = offsetsTopic
	for _, ts := range []int64{-2, -1} {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition, lp.Timestamp = 3, ts
		lt.Partitions = append(lt.Partitions, lp)
	}
	lo.Topics = append(lo.Topics, lt)
	loresp, err := lo.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range loresp.Topics[0].Partitions {
		if p.ErrorCode != 0 || p.Offset != 0 {
			t.Errorf("list offsets: partition %d error %d offset %d, want 0, 0", p.Partition, p.ErrorCode, p.Offset)
		}
	}

	// Fetched by name (v12) and by the id Metadata gave (v13+), it is
	// empty.
	var id [16]byte
	{
		md := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(offsetsTopic)
		md.Topics = append(md.Topics, mt)
		mresp, err := md.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		id = offsetsTopicIn(mresp).TopicID
	}
	for _, v := range []int16{12, 13} {
		fetch := kmsg.NewPtrFetchRequest()
		fetch.Version = v
		fetch.MaxWaitMillis = 10
		fetch.MaxBytes = 1 << 20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic, ft.TopicID = offsetsTopic, id
		fpart := kmsg.NewFetchRequestTopicPartition()
		fpart.Partition, fpart.PartitionMaxBytes = 0, 1<<20
		ft.Partitions = append(ft.Partitions, fpart)
		fetch.Topics = append(fetch.Topics, ft)
		vers := kversion.Stable()
		vers.SetMaxKeyVersion(fetch.Key(), v)
		raw, err := newClient(t, addr, kgo.MaxVersions(vers)).Broker(1).Request(ctx, fetch)
		if err != nil {
			t.Fatal(err)
		}
		fresp := raw.(*kmsg.FetchResponse)
		if p := fresp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.HighWatermark != 0 || len(p.RecordBatches) != 0 {
			t.Errorf("fetch v%d: error %d high watermark %d, %d bytes; want an empty partition", v, p.ErrorCode, p.HighWatermark, len(p.RecordBatches))
		}
	}

	dc := kmsg.NewPtrDescribeConfigsRequest()
	dr := kmsg.NewDescribeConfigsRequestResource()
	dr.ResourceType, dr.ResourceName = kmsg.ConfigResourceTypeTopic, offsetsTopic
	dc.Resources = append(dc.Resources, dr)
	dcresp, err := dc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if r := dcresp.Resources[0]; r.ErrorCode != 0 || len(r.Configs) == 0 {
		t.Errorf("describe configs: error %d, %d configs", r.ErrorCode, len(r.Configs))
	}

	ia := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ir := kmsg.NewIncrementalAlterConfigsRequestResource()
	ir.ResourceType, ir.ResourceName = kmsg.ConfigResourceTypeTopic, offsetsTopic
	ic := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	ic.Name, ic.Value = "retention.ms", kmsg.StringPtr("1000")
	ir.Configs = append(ir.Configs, ic)
	ia.Resources = append(ia.Resources, ir)
	iaresp, err := ia.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := iaresp.Resources[0].ErrorCode; got != kerr.InvalidRequest.Code {
		t.Errorf("alter configs: error %d, want INVALID_REQUEST", got)
	}

	// Auto-creation never creates a real topic of the name: Metadata
	// answers the internal one, and the gRPC listing holds no stored one.
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 1
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(offsetsTopic)
	md.Topics = append(md.Topics, mt)
	mresp, err := md.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if rt := offsetsTopicIn(mresp); rt == nil || rt.ErrorCode != 0 || !rt.IsInternal {
		t.Fatalf("metadata v1: %+v", mresp.Topics)
	}
	if listedTopics(t, addr)[offsetsTopic] {
		t.Errorf("kadm lists %s as a user topic", offsetsTopic)
	}
}

// Metadata asked for by an id that names no topic answers it
// UNKNOWN_TOPIC_ID, as Kafka does, rather than leaving it out; a known id
// in the same request is answered as usual.
func TestMetadataAnswersAnUnknownTopicID(t *testing.T) {
	addr, _ := startBroker(t, nil)
	cl := newClient(t, addr)
	unknown := [16]byte{1, 2, 3}
	req := kmsg.NewPtrMetadataRequest()
	for _, id := range [][16]byte{unknown, unknown} {
		rt := kmsg.NewMetadataRequestTopic()
		rt.TopicID = id
		req.Topics = append(req.Topics, rt)
	}
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(offsetsTopic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxFor(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	var got []kmsg.MetadataResponseTopic
	for _, rt := range resp.Topics {
		if rt.TopicID == unknown {
			got = append(got, rt)
		}
	}
	if len(got) != 1 || got[0].ErrorCode != kerr.UnknownTopicID.Code || got[0].Topic != nil {
		t.Fatalf("unknown id answered %+v; want one UNKNOWN_TOPIC_ID entry without a name", got)
	}
	if offsetsTopicIn(resp) == nil {
		t.Fatalf("the topic named in the same request is missing: %+v", resp.Topics)
	}
}
