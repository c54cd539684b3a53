package kafkatests_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/rcrowley/go-metrics"
	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// The Go clients of the Kafka client matrix (TestKafkaClientMatrix): each
// creates its topic, checks the metadata, produces compatExpected, reads it
// back by explicit partition (no group), checks ListOffsets, consumes the
// topic through a consumer group (compatCheckGroup), when the matrix asks
// runs transactions on a second topic (compatCheckTxn) and deletes the topic,
// reporting each capability through a compatReport.

// compatTimes are the timestamps the by-time ListOffsets asks for: one
// before the produce and one well after it.
func compatTimes(produceStart time.Time) (before, after time.Time) {
	return produceStart.Add(-time.Second), time.Now().Add(time.Hour)
}

// runFranzGo: kgo with its defaults (idempotent producer, the sticky key
// partitioner with murmur2) and kadm for administration.
func runFranzGo(ctx context.Context, env compatEnv, r *compatReport) {
	cl, err := franzClient(env, kgo.WithLogger(kgo.BasicLogger(&r.log, kgo.LogLevelWarn, nil)))
	if err != nil {
		r.check(capMetadata, func() (string, error) { return "", err })
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := env.topic
	var counts []int64
	var produceStart time.Time

	r.check(capCreateTopic, func() (string, error) {
		resp, err := adm.CreateTopic(ctx, compatPartitions, int16(env.rf), nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return "", fmt.Errorf("CreateTopics: %w", err)
		}
		return fmt.Sprintf("%s, %d partitions, RF %d", topic, compatPartitions, env.rf), nil
	})
	r.check(capMetadata, func() (string, error) {
		var md kadm.Metadata
		err := await.Poll(20*time.Second, func() error {
			var err error
			md, err = adm.Metadata(ctx)
			if err != nil {
				return err
			}
			td, ok := md.Topics[topic]
			if !ok || td.Err != nil || len(td.Partitions) != compatPartitions {
				return fmt.Errorf("topic %s in metadata: %+v", topic, td)
			}
			for _, p := range td.Partitions {
				if p.Err != nil || !slices.Contains(md.Brokers.NodeIDs(), p.Leader) {
					return fmt.Errorf("partition %d: leader %d, error %v", p.Partition, p.Leader, p.Err)
				}
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		if ids := md.Brokers.NodeIDs(); len(ids) != env.brokers || !slices.Contains(ids, md.Controller) {
			return "", fmt.Errorf("brokers %v (want %d), controller %d", ids, env.brokers, md.Controller)
		}
		return fmt.Sprintf("brokers %v, controller %d; %s has %d partitions", md.Brokers.NodeIDs(), md.Controller, topic, len(md.Topics[topic].Partitions)), nil
	})
	r.check(capProduce, func() (string, error) {
		produceStart = time.Now()
		var recs []*kgo.Record
		for _, rec := range compatExpected() {
			kr := &kgo.Record{Topic: topic, Value: []byte(rec.value)}
			if rec.key != nil {
				kr.Key = []byte(*rec.key)
			}
			recs = append(recs, kr)
		}
		results := cl.ProduceSync(ctx, recs...)
		if err := results.FirstErr(); err != nil {
			return "", fmt.Errorf("ProduceSync: %w", err)
		}
		var got []compatRecord
		for _, res := range results {
			rec := compatRecord{partition: res.Record.Partition, offset: res.Record.Offset, value: string(res.Record.Value)}
			if res.Record.Key != nil {
				k := string(res.Record.Key)
				rec.key = &k
			}
			got = append(got, rec)
		}
		if err := compatCheckKeyed(got); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d records in one ProduceSync (idempotent, acks=all); keys on murmur2 partitions", len(recs)), nil
	})
	r.check(capConsume, func() (string, error) {
		offsets := map[int32]kgo.Offset{}
		for p := range int32(compatPartitions) {
			offsets[p] = kgo.NewOffset().AtStart()
		}
		cons, err := franzClient(env,
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
			kgo.WithLogger(kgo.BasicLogger(&r.log, kgo.LogLevelWarn, nil)))
		if err != nil {
			return "", err
		}
		defer cons.Close()
		var got []compatRecord
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		for len(got) < compatRecords {
			fetches := cons.PollFetches(pctx)
			if pctx.Err() != nil {
				return "", fmt.Errorf("read %d of %d records before the deadline", len(got), compatRecords)
			}
			var errs []error
			fetches.EachError(func(t string, p int32, err error) { errs = append(errs, fmt.Errorf("%s/%d: %w", t, p, err)) })
			if len(errs) > 0 {
				return "", errors.Join(errs...)
			}
			fetches.EachRecord(func(kr *kgo.Record) {
				rec := compatRecord{partition: kr.Partition, offset: kr.Offset, value: string(kr.Value)}
				if kr.Key != nil {
					k := string(kr.Key)
					rec.key = &k
				}
				got = append(got, rec)
			})
		}
		counts, err = compatCompare(got)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("read all %d back from offset 0, per partition %v", len(got), counts), nil
	})
	r.check(capListOffsets, func() (string, error) {
		before, after := compatTimes(produceStart)
		list := func(fn func() (kadm.ListedOffsets, error)) ([]int64, error) {
			lo, err := fn()
			if err == nil {
				err = lo.Error()
			}
			if err != nil {
				return nil, err
			}
			out := make([]int64, compatPartitions)
			for p := range int32(compatPartitions) {
				o, ok := lo.Lookup(topic, p)
				if !ok {
					return nil, fmt.Errorf("no offset for partition %d", p)
				}
				out[p] = o.Offset
			}
			return out, nil
		}
		earliest, err1 := list(func() (kadm.ListedOffsets, error) { return adm.ListStartOffsets(ctx, topic) })
		latest, err2 := list(func() (kadm.ListedOffsets, error) { return adm.ListEndOffsets(ctx, topic) })
		byBefore, err3 := list(func() (kadm.ListedOffsets, error) { return adm.ListOffsetsAfterMilli(ctx, before.UnixMilli(), topic) })
		byAfter, err4 := list(func() (kadm.ListedOffsets, error) { return adm.ListOffsetsAfterMilli(ctx, after.UnixMilli(), topic) })
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return "", err
		}
		// kadm answers a time after the last record with the end offset.
		return compatCheckOffsets(earliest, latest, byBefore, byAfter, counts, -2)
	})
	r.check(capGroup, func() (string, error) {
		return franzGoGroup(ctx, env, cl, adm, r)
	})
	if env.transactions {
		r.check(capTransactions, func() (string, error) {
			return franzGoTxn(ctx, env, adm, r)
		})
	}
	compatDenied(ctx, r, env.sec, func(ctx context.Context, topic string) error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("denied")}).FirstErr()
	}, franzDenied)
	r.check(capDeleteTopic, func() (string, error) {
		resp, err := adm.DeleteTopic(ctx, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return "", fmt.Errorf("DeleteTopics: %w", err)
		}
		err = await.Poll(20*time.Second, func() error {
			td, err := adm.ListTopics(ctx)
			if err == nil && td.Has(topic) {
				err = errors.New("still listed")
			}
			return err
		})
		if err != nil {
			return "", fmt.Errorf("%s still listed after DeleteTopics: %v", topic, err)
		}
		return topic + " gone from metadata", nil
	})
}

// runSarama: ClusterAdmin, SyncProducer, Consumer.ConsumePartition and
// Client.GetOffset, with sarama's defaults except Return.Successes (a
// SyncProducer needs it) and the partitioner: sarama's default hashes keys
// with FNV-1a, its Java-compatible one is NewMurmur2Partitioner.
func runSarama(ctx context.Context, env compatEnv, r *compatReport) {
	// sarama's meters start a go-metrics goroutine that never ends, which
	// the package's goleak check would report.
	metrics.UseNilMetrics = true
	testenvtest.SaramaLogTo(nil) // installs sarama.Logger before any sarama goroutine runs
	cfg := sarama.NewConfig()
	cfg.ClientID = "compat-sarama"
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
	if err := env.sec.saramaConfig(cfg); err != nil {
		r.check(capMetadata, func() (string, error) { return "", err })
		return
	}
	topic := env.topic
	client, err := sarama.NewClient(env.bootstrap, cfg)
	if err != nil {
		r.check(capMetadata, func() (string, error) { return "", fmt.Errorf("NewClient: %w", err) })
		return
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdmin(env.bootstrap, cfg)
	if err != nil {
		r.check(capMetadata, func() (string, error) { return "", fmt.Errorf("NewClusterAdmin: %w", err) })
		return
	}
	defer admin.Close()
	var counts []int64
	var produceStart time.Time

	r.check(capCreateTopic, func() (string, error) {
		err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: compatPartitions, ReplicationFactor: int16(env.rf)}, false)
		if err != nil {
			return "", fmt.Errorf("CreateTopic: %w", err)
		}
		return fmt.Sprintf("%s, %d partitions, RF %d", topic, compatPartitions, env.rf), nil
	})
	r.check(capMetadata, func() (string, error) {
		brokers, controller, err := admin.DescribeCluster()
		if err != nil {
			return "", fmt.Errorf("DescribeCluster: %w", err)
		}
		var ids []int32
		for _, b := range brokers {
			ids = append(ids, b.ID())
		}
		if len(ids) != env.brokers || !slices.Contains(ids, controller) {
			return "", fmt.Errorf("brokers %v (want %d), controller %d", ids, env.brokers, controller)
		}
		var leaders []int32
		err = await.Poll(20*time.Second, func() error {
			tms, err := admin.DescribeTopics([]string{topic})
			if err != nil {
				return err
			}
			if len(tms) != 1 || !errors.Is(tms[0].Err, sarama.ErrNoError) || len(tms[0].Partitions) != compatPartitions {
				return fmt.Errorf("topic %s: %+v", topic, tms)
			}
			leaders = leaders[:0]
			for _, p := range tms[0].Partitions {
				if !slices.Contains(ids, p.Leader) {
					return fmt.Errorf("partition %d has leader %d", p.ID, p.Leader)
				}
				leaders = append(leaders, p.Leader)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		// ListTopics asks any broker for all topics; one that has not yet
		// seen the creation through its etcd watch lists it a moment later.
		err = await.Poll(10*time.Second, func() error {
			listed, err := admin.ListTopics()
			if err != nil {
				return fmt.Errorf("ListTopics: %w", err)
			}
			if _, ok := listed[topic]; !ok {
				return fmt.Errorf("ListTopics does not list %s", topic)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("brokers %v, controller %d; %s has leaders %v", ids, controller, topic, leaders), nil
	})
	r.check(capProduce, func() (string, error) {
		producer, err := sarama.NewSyncProducerFromClient(client)
		if err != nil {
			return "", err
		}
		defer producer.Close()
		produceStart = time.Now()
		var got []compatRecord
		for _, rec := range compatExpected() {
			msg := &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(rec.value)}
			if rec.key != nil {
				msg.Key = sarama.StringEncoder(*rec.key)
			}
			p, o, err := producer.SendMessage(msg)
			if err != nil {
				return "", fmt.Errorf("SendMessage %s: %w", rec.value, err)
			}
			rec.partition, rec.offset = p, o
			got = append(got, rec)
		}
		if err := compatCheckKeyed(got); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d records with SyncProducer (acks=1, its default), keys on murmur2 partitions", len(got)), nil
	})
	r.check(capConsume, func() (string, error) {
		consumer, err := sarama.NewConsumerFromClient(client)
		if err != nil {
			return "", err
		}
		defer consumer.Close()
		// sarama produces with acks=1: the high watermark (what consumers may
		// read, and what OffsetNewest reports) passes the records once the
		// followers have them, a moment after the acknowledgement.
		err = await.Poll(20*time.Second, func() error {
			total := int64(0)
			for p := range int32(compatPartitions) {
				end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
				if err != nil {
					return err
				}
				total += end
			}
			if want := int64(len(compatExpected())); total != want {
				return fmt.Errorf("high watermarks add up to %d, want %d", total, want)
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("high watermarks never reached the records produced: %w", err)
		}
		var got []compatRecord
		for p := range int32(compatPartitions) {
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return "", fmt.Errorf("partition %d: GetOffset: %w", p, err)
			}
			if end == 0 {
				continue
			}
			pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
			if err != nil {
				return "", fmt.Errorf("ConsumePartition %d: %w", p, err)
			}
			err = func() error {
				defer pc.Close()
				timeout := time.After(20 * time.Second)
				for {
					select {
					case m := <-pc.Messages():
						rec := compatRecord{partition: m.Partition, offset: m.Offset, value: string(m.Value)}
						if m.Key != nil {
							k := string(m.Key)
							rec.key = &k
						}
						got = append(got, rec)
						if m.Offset+1 >= end {
							return nil
						}
					case cerr := <-pc.Errors():
						return fmt.Errorf("partition %d: %w", p, cerr)
					case <-timeout:
						return fmt.Errorf("partition %d: no record at offset %d after 20s", p, len(got))
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}()
			if err != nil {
				return "", err
			}
		}
		counts, err = compatCompare(got)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("read all %d back from offset 0 with ConsumePartition, per partition %v", len(got), counts), nil
	})
	r.check(capListOffsets, func() (string, error) {
		before, after := compatTimes(produceStart)
		query := func(t int64) ([]int64, error) {
			out := make([]int64, compatPartitions)
			for p := range int32(compatPartitions) {
				o, err := client.GetOffset(topic, p, t)
				if err != nil {
					return nil, fmt.Errorf("GetOffset(%d, %d): %w", p, t, err)
				}
				out[p] = o
			}
			return out, nil
		}
		earliest, err1 := query(sarama.OffsetOldest)
		latest, err2 := query(sarama.OffsetNewest)
		byBefore, err3 := query(before.UnixMilli())
		byAfter, err4 := query(after.UnixMilli())
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return "", err
		}
		return compatCheckOffsets(earliest, latest, byBefore, byAfter, counts, -1)
	})
	r.check(capGroup, func() (string, error) {
		return saramaGroup(ctx, env, cfg, client, admin, r)
	})
	if env.transactions {
		r.check(capTransactions, func() (string, error) {
			return saramaTxn(ctx, env, cfg, admin, r)
		})
	}
	compatDenied(ctx, r, env.sec, func(ctx context.Context, topic string) error {
		producer, err := sarama.NewSyncProducerFromClient(client)
		if err != nil {
			return err
		}
		defer producer.Close()
		_, _, err = producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("denied")})
		return err
	}, func(err error) bool { return errors.Is(err, sarama.ErrTopicAuthorizationFailed) })
	r.check(capDeleteTopic, func() (string, error) {
		if err := admin.DeleteTopic(topic); err != nil {
			return "", fmt.Errorf("DeleteTopic: %w", err)
		}
		err := await.Poll(20*time.Second, func() error {
			listed, err := admin.ListTopics()
			if _, ok := listed[topic]; err == nil && ok {
				err = errors.New("still listed")
			}
			return err
		})
		if err != nil {
			return "", fmt.Errorf("%s still listed after DeleteTopic: %v", topic, err)
		}
		return topic + " gone from metadata", nil
	})
}

// runKafkaGo: Client for CreateTopics, DeleteTopics, Metadata and
// ListOffsets, Conn for offsets by time, Writer (acks=all, and a second one
// with the Writer's default acks=0) and Reader with Partition set. The Writer
// balances round-robin by default; Murmur2Balancer is kafka-go's
// Java-compatible one.
func runKafkaGo(ctx context.Context, env compatEnv, r *compatReport) {
	transport := &kafka.Transport{ClientID: "compat-kafka-go"}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(env.bootstrap...), Timeout: 20 * time.Second, Transport: transport}
	topic := env.topic
	var counts []int64
	var produceStart time.Time

	r.check(capCreateTopic, func() (string, error) {
		resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic: topic, NumPartitions: compatPartitions, ReplicationFactor: env.rf,
		}}})
		if err == nil {
			err = resp.Errors[topic]
		}
		if err != nil {
			return "", fmt.Errorf("CreateTopics: %w", err)
		}
		return fmt.Sprintf("%s, %d partitions, RF %d", topic, compatPartitions, env.rf), nil
	})
	r.check(capMetadata, func() (string, error) {
		var md *kafka.MetadataResponse
		var ids []int
		err := await.Poll(20*time.Second, func() error {
			var err error
			md, err = client.Metadata(ctx, &kafka.MetadataRequest{})
			if err != nil {
				return err
			}
			ids = ids[:0]
			for _, b := range md.Brokers {
				ids = append(ids, b.ID)
			}
			i := slices.IndexFunc(md.Topics, func(t kafka.Topic) bool { return t.Name == topic })
			if i < 0 {
				return fmt.Errorf("metadata does not list %s", topic)
			}
			if t := md.Topics[i]; t.Error != nil || len(t.Partitions) != compatPartitions {
				return fmt.Errorf("topic %s: error %v, %d partitions", topic, t.Error, len(t.Partitions))
			}
			for _, p := range md.Topics[i].Partitions {
				if p.Error != nil || !slices.Contains(ids, p.Leader.ID) {
					return fmt.Errorf("partition %d: leader %d, error %v", p.ID, p.Leader.ID, p.Error)
				}
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		if len(ids) != env.brokers || !slices.Contains(ids, md.Controller.ID) {
			return "", fmt.Errorf("brokers %v (want %d), controller %d", ids, env.brokers, md.Controller.ID)
		}
		return fmt.Sprintf("brokers %v, controller %d, %d topics listed", ids, md.Controller.ID, len(md.Topics)), nil
	})
	messages := func(recs []compatRecord) []kafka.Message {
		var msgs []kafka.Message
		for _, rec := range recs {
			m := kafka.Message{Value: []byte(rec.value)}
			if rec.key != nil {
				m.Key = []byte(*rec.key)
			}
			msgs = append(msgs, m)
		}
		return msgs
	}
	r.check(capProduce, func() (string, error) {
		w := &kafka.Writer{Addr: kafka.TCP(env.bootstrap...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, Transport: transport}
		defer w.Close()
		produceStart = time.Now()
		if err := w.WriteMessages(ctx, messages(compatExpected())...); err != nil {
			return "", fmt.Errorf("WriteMessages: %w", err)
		}
		return fmt.Sprintf("%d records in one WriteMessages (acks=all, Murmur2Balancer)", compatRecords), nil
	})
	// readPartition reads partition p from offset from until its high
	// watermark, with a Reader that has Partition set (no group).
	readPartition := func(p int, from int64, until int64) ([]compatRecord, error) {
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: env.bootstrap, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		defer rd.Close()
		if err := rd.SetOffset(from); err != nil {
			return nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var got []compatRecord
		for from < until {
			m, err := rd.ReadMessage(rctx)
			if err != nil {
				return got, fmt.Errorf("partition %d at offset %d: %w", p, from, err)
			}
			rec := compatRecord{partition: int32(m.Partition), offset: m.Offset, value: string(m.Value)}
			if m.Key != nil {
				k := string(m.Key)
				rec.key = &k
			}
			got = append(got, rec)
			from = m.Offset + 1
		}
		return got, nil
	}
	endOffsets := func() ([]int64, []int64, error) {
		req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
		for p := range compatPartitions {
			req.Topics[topic] = append(req.Topics[topic], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
		}
		resp, err := client.ListOffsets(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		first, last := make([]int64, compatPartitions), make([]int64, compatPartitions)
		for _, po := range resp.Topics[topic] {
			if po.Error != nil {
				return nil, nil, fmt.Errorf("partition %d: %w", po.Partition, po.Error)
			}
			first[po.Partition], last[po.Partition] = po.FirstOffset, po.LastOffset
		}
		return first, last, nil
	}
	r.check(capConsume, func() (string, error) {
		// Each partition is read up to its high watermark from the fetch
		// responses (Message.HighWaterMark), not from ListOffsets.
		var got []compatRecord
		for p := range compatPartitions {
			rd := kafka.NewReader(kafka.ReaderConfig{Brokers: env.bootstrap, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
			err := func() error {
				defer rd.Close()
				if err := rd.SetOffset(kafka.FirstOffset); err != nil {
					return err
				}
				rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				for {
					m, err := rd.ReadMessage(rctx)
					if err != nil {
						return fmt.Errorf("partition %d after %d records: %w", p, len(got), err)
					}
					rec := compatRecord{partition: int32(m.Partition), offset: m.Offset, value: string(m.Value)}
					if m.Key != nil {
						k := string(m.Key)
						rec.key = &k
					}
					got = append(got, rec)
					if m.Offset+1 >= m.HighWaterMark {
						return nil
					}
				}
			}()
			if err != nil {
				return "", err
			}
		}
		var err error
		counts, err = compatCompare(got)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("read all %d back from offset 0 with Readers by partition, per partition %v", len(got), counts), nil
	})
	r.check(capListOffsets, func() (string, error) {
		earliest, latest, err := endOffsets()
		if err != nil {
			return "", fmt.Errorf("ListOffsets: %w", err)
		}
		before, after := compatTimes(produceStart)
		byBefore, byAfter := make([]int64, compatPartitions), make([]int64, compatPartitions)
		for p := range compatPartitions {
			conn, err := kafka.DialLeader(ctx, "tcp", env.bootstrap[0], topic, p)
			if err != nil {
				return "", fmt.Errorf("DialLeader %d: %w", p, err)
			}
			byBefore[p], err = conn.ReadOffset(before)
			if err == nil {
				byAfter[p], err = conn.ReadOffset(after)
			}
			conn.Close()
			if err != nil {
				return "", fmt.Errorf("partition %d: Conn.ReadOffset: %w", p, err)
			}
		}
		return compatCheckOffsets(earliest, latest, byBefore, byAfter, counts, -1)
	})
	r.check(capProduceAcks0, func() (string, error) {
		// The Writer's default RequiredAcks is none (acks=0): the broker
		// sends no response, so arrival is checked by reading them back.
		_, start, err := endOffsets()
		if err != nil {
			return "", fmt.Errorf("ListOffsets: %w", err)
		}
		var recs []compatRecord
		for i := range 5 {
			recs = append(recs, compatRecord{value: fmt.Sprintf("acks0-%d", i)})
		}
		w := &kafka.Writer{Addr: kafka.TCP(env.bootstrap...), Topic: topic, Transport: transport}
		err = w.WriteMessages(ctx, messages(recs)...)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("WriteMessages (acks=0): %w", err)
		}
		var end []int64
		err = await.Poll(10*time.Second, func() error {
			var err error
			_, end, err = endOffsets()
			var n int64
			for p := range end {
				n += end[p] - start[p]
			}
			if err == nil && n < int64(len(recs)) {
				err = fmt.Errorf("%d of %d records", n, len(recs))
			}
			return err
		})
		if err != nil {
			return "", fmt.Errorf("end offsets %v after 5 acks=0 records (before: %v): %v", end, start, err)
		}
		var got []string
		for p := range compatPartitions {
			part, err := readPartition(p, start[p], end[p])
			if err != nil {
				return "", err
			}
			for _, rec := range part {
				got = append(got, rec.value)
			}
		}
		slices.Sort(got)
		if want := []string{"acks0-0", "acks0-1", "acks0-2", "acks0-3", "acks0-4"}; !slices.Equal(got, want) {
			return "", fmt.Errorf("read back %v, want %v", got, want)
		}
		return fmt.Sprintf("5 records with the default acks=0 Writer arrived (end offsets %v → %v)", start, end), nil
	})
	r.check(capGroup, func() (string, error) {
		_, end, err := endOffsets()
		if err != nil {
			return "", fmt.Errorf("ListOffsets: %w", err)
		}
		return kafkaGoGroup(ctx, env, client, transport, end, messages, r)
	})
	if env.transactions {
		// kafka-go's Client has InitProducerID, AddPartitionsToTxn and EndTxn,
		// but its record batches always carry producer id -1: nothing it
		// produces can join a transaction.
		r.results = append(r.results, compatResult{Capability: capTransactions, NA: true,
			Detail: "no transactional producer in segmentio/kafka-go " + compatModVersion("github.com/segmentio/kafka-go")})
	}
	r.check(capDeleteTopic, func() (string, error) {
		resp, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
		if err == nil {
			err = resp.Errors[topic]
		}
		if err != nil {
			return "", fmt.Errorf("DeleteTopics: %w", err)
		}
		err = await.Poll(20*time.Second, func() error {
			md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
			if err != nil {
				return err
			}
			if slices.ContainsFunc(md.Topics, func(t kafka.Topic) bool { return t.Name == topic }) {
				return errors.New("still listed")
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("%s still listed after DeleteTopics: %v", topic, err)
		}
		return topic + " gone from metadata", nil
	})
}

// compatGroupReadTimeout bounds each of the group capability's two group
// consumers: joining the group (a new group's first join may wait for the
// coordinator's initial rebalance delay) and reading.
const compatGroupReadTimeout = 30 * time.Second

// franzGoGroup is franz-go's group capability: kgo.ConsumerGroup with
// autocommit off and CommitUncommittedOffsets, kadm.FetchOffsets for the
// committed offsets.
func franzGoGroup(ctx context.Context, env compatEnv, cl *kgo.Client, adm *kadm.Client, r *compatReport) (string, error) {
	topic, group := env.topic, compatGroupID(env)
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return "", fmt.Errorf("ListEndOffsets: %w", err)
	}
	end := make([]int64, compatPartitions)
	var total int64
	for p := range int32(compatPartitions) {
		o, _ := listed.Lookup(topic, p)
		end[p] = o.Offset
		total += o.Offset
	}
	// read runs one group consumer until done says so, commits what it
	// read and leaves the group.
	read := func(done func([]compatRecord) bool) ([]compatRecord, error) {
		opts := []kgo.Opt{kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
			kgo.WithLogger(kgo.BasicLogger(&r.log, kgo.LogLevelWarn, nil))}
		if env.consumerProtocol {
			opts = append(opts, kgo.ServerSideBalancer())
		}
		cons, err := franzClient(env, opts...)
		if err != nil {
			return nil, err
		}
		defer cons.Close() // leaves the group
		pctx, cancel := context.WithTimeout(ctx, compatGroupReadTimeout)
		defer cancel()
		var got []compatRecord
		for !done(got) {
			fetches := cons.PollFetches(pctx)
			if pctx.Err() != nil {
				return got, fmt.Errorf("group %s: read %d records before the deadline: %v", group, len(got), got)
			}
			var errs []error
			fetches.EachError(func(t string, p int32, err error) { errs = append(errs, fmt.Errorf("%s/%d: %w", t, p, err)) })
			if len(errs) > 0 {
				return got, errors.Join(errs...)
			}
			fetches.EachRecord(func(kr *kgo.Record) {
				rec := compatRecord{partition: kr.Partition, offset: kr.Offset, value: string(kr.Value)}
				if kr.Key != nil {
					k := string(kr.Key)
					rec.key = &k
				}
				got = append(got, rec)
			})
		}
		if err := cons.CommitUncommittedOffsets(pctx); err != nil {
			return got, fmt.Errorf("group %s: CommitUncommittedOffsets: %w", group, err)
		}
		return got, nil
	}
	first, err := read(func(got []compatRecord) bool { return int64(len(got)) >= total })
	if err != nil {
		return "", fmt.Errorf("first consumer: %w", err)
	}
	fetched, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = fetched.Error()
	}
	if err != nil {
		return "", fmt.Errorf("FetchOffsets %s: %w", group, err)
	}
	committed := make([]int64, compatPartitions)
	for p := range int32(compatPartitions) {
		committed[p] = -1
		if o, ok := fetched.Lookup(topic, p); ok {
			committed[p] = o.At
		}
	}
	var recs []*kgo.Record
	for _, rec := range compatGroupExtra() {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(*rec.key), Value: []byte(rec.value)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return "", fmt.Errorf("ProduceSync: %w", err)
	}
	second, err := read(func(got []compatRecord) bool { return len(got) >= len(recs) })
	if err != nil {
		return "", fmt.Errorf("second consumer: %w", err)
	}
	detail, err := compatCheckGroup(end, first, committed, second)
	if err != nil || !env.consumerProtocol {
		return detail, err
	}
	// franz-go falls back to the classic protocol where the broker does not
	// advertise ConsumerGroupHeartbeat: the group must be a consumer group.
	groupType, err := franzGroupType(ctx, cl, group)
	if err != nil {
		return "", err
	}
	if groupType != "consumer" {
		return "", fmt.Errorf("group %s is of type %q, want consumer (KIP-848)", group, groupType)
	}
	return detail + ", group type consumer", nil
}

// franzGroupType is group's type as ListGroups v5 reports it: classic,
// consumer or share.
func franzGroupType(ctx context.Context, cl *kgo.Client, group string) (string, error) {
	req := kmsg.NewPtrListGroupsRequest()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return "", fmt.Errorf("ListGroups: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return "", fmt.Errorf("ListGroups: %w", err)
	}
	for _, g := range resp.Groups {
		if g.Group == group {
			return g.GroupType, nil
		}
	}
	return "", fmt.Errorf("ListGroups does not list group %s", group)
}

// franzGoTxn is franz-go's transactions capability: a producer with
// kgo.TransactionalID, BeginTransaction, ProduceSync and EndTransaction
// (commit, abort, commit), then consumers of each isolation level
// (kgo.FetchIsolationLevel) from the start of every partition.
func franzGoTxn(ctx context.Context, env compatEnv, adm *kadm.Client, r *compatReport) (string, error) {
	topic := compatTxnTopic(env)
	created, err := adm.CreateTopic(ctx, compatPartitions, int16(env.rf), nil, topic)
	if err == nil {
		err = created.Err
	}
	if err != nil {
		return "", fmt.Errorf("CreateTopics %s: %w", topic, err)
	}
	defer func() {
		resp, err := adm.DeleteTopic(ctx, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			r.logf("delete %s: %v", topic, err)
		}
	}()
	prod, err := franzClient(env, kgo.TransactionalID(topic),
		kgo.WithLogger(kgo.BasicLogger(&r.log, kgo.LogLevelWarn, nil)))
	if err != nil {
		return "", err
	}
	defer prod.Close()
	for n := 1; n <= compatTxnCount; n++ {
		if err := prod.BeginTransaction(); err != nil {
			return "", fmt.Errorf("transaction %d: BeginTransaction: %w", n, err)
		}
		var recs []*kgo.Record
		for _, rec := range compatTxnRecords(n) {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(*rec.key), Value: []byte(rec.value)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			// Ends the transaction so the coordinator need not time it out.
			_ = prod.EndTransaction(ctx, kgo.TryAbort)
			return "", fmt.Errorf("transaction %d: ProduceSync: %w", n, err)
		}
		end, verb := kgo.TryCommit, "commit"
		if n == compatTxnAborted {
			end, verb = kgo.TryAbort, "abort"
		}
		if err := prod.EndTransaction(ctx, end); err != nil {
			return "", fmt.Errorf("transaction %d: EndTransaction (%s): %w", n, verb, err)
		}
	}
	read := func(level kgo.IsolationLevel, want int) ([]compatRecord, error) {
		offsets := map[int32]kgo.Offset{}
		for p := range int32(compatPartitions) {
			offsets[p] = kgo.NewOffset().AtStart()
		}
		cons, err := franzClient(env, kgo.FetchIsolationLevel(level),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
			kgo.WithLogger(kgo.BasicLogger(&r.log, kgo.LogLevelWarn, nil)))
		if err != nil {
			return nil, err
		}
		defer cons.Close()
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var got []compatRecord
		for len(got) < want {
			fetches := cons.PollFetches(pctx)
			if pctx.Err() != nil {
				return got, fmt.Errorf("read %d of %d records before the deadline: %v", len(got), want, got)
			}
			var errs []error
			fetches.EachError(func(t string, p int32, err error) { errs = append(errs, fmt.Errorf("%s/%d: %w", t, p, err)) })
			if len(errs) > 0 {
				return got, errors.Join(errs...)
			}
			fetches.EachRecord(func(kr *kgo.Record) {
				k := string(kr.Key)
				got = append(got, compatRecord{partition: kr.Partition, offset: kr.Offset, key: &k, value: string(kr.Value)})
			})
		}
		return got, nil
	}
	committed, err := read(kgo.ReadCommitted(), compatTxnTotal(false))
	if err != nil {
		return "", fmt.Errorf("read_committed: %w", err)
	}
	uncommitted, err := read(kgo.ReadUncommitted(), compatTxnTotal(true))
	if err != nil {
		return "", fmt.Errorf("read_uncommitted: %w", err)
	}
	return compatCheckTxn(committed, uncommitted)
}

// saramaGroupHandler hands every message of its claims to recs, marks it
// and commits it synchronously (autocommit is off).
type saramaGroupHandler struct {
	recs chan<- compatRecord
}

func (saramaGroupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaGroupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h saramaGroupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			rec := compatRecord{partition: m.Partition, offset: m.Offset, value: string(m.Value)}
			if m.Key != nil {
				k := string(m.Key)
				rec.key = &k
			}
			sess.MarkMessage(m, "")
			sess.Commit()
			select {
			case h.recs <- rec:
			case <-sess.Context().Done():
				return nil
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

// saramaGroup is sarama's group capability: ConsumerGroup with autocommit
// off, MarkMessage and Commit, ClusterAdmin.ListConsumerGroupOffsets for the
// committed offsets.
func saramaGroup(ctx context.Context, env compatEnv, base *sarama.Config, client sarama.Client, admin sarama.ClusterAdmin, r *compatReport) (string, error) {
	topic, group := env.topic, compatGroupID(env)
	// sarama logs what its consumer group does (joins, retries) to its
	// package-wide Logger, discarded by default: keep it with the client's log.
	var logs testenvtest.LockedBuffer
	testenvtest.SaramaLogTo(&logs)
	defer func() {
		testenvtest.SaramaLogTo(nil)
		r.log.WriteString(logs.String())
	}()
	end := make([]int64, compatPartitions)
	var total int64
	for p := range int32(compatPartitions) {
		o, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return "", fmt.Errorf("GetOffset(%d): %w", p, err)
		}
		end[p] = o
		total += o
	}
	cfg := *base
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Return.Errors = true
	read := func(done func([]compatRecord) bool) ([]compatRecord, error) {
		cg, err := sarama.NewConsumerGroup(env.bootstrap, group, &cfg)
		if err != nil {
			return nil, fmt.Errorf("NewConsumerGroup: %w", err)
		}
		defer cg.Close() // leaves the group
		rctx, cancel := context.WithTimeout(ctx, compatGroupReadTimeout)
		defer cancel()
		recs := make(chan compatRecord)
		consumeErr := make(chan error, 1)
		go func() {
			for rctx.Err() == nil {
				if err := cg.Consume(rctx, []string{topic}, saramaGroupHandler{recs: recs}); err != nil {
					consumeErr <- err
					return
				}
			}
			consumeErr <- nil
		}()
		var got []compatRecord
		var failure error
		consumeDone := false
		for failure == nil && !done(got) {
			select {
			case rec := <-recs:
				got = append(got, rec)
			case err := <-cg.Errors():
				failure = fmt.Errorf("group %s: %w", group, err)
			case err := <-consumeErr:
				consumeDone = true
				failure = fmt.Errorf("group %s: Consume after %d records: %w", group, len(got), err)
			case <-rctx.Done():
				failure = fmt.Errorf("group %s: read %d records before the deadline: %v", group, len(got), got)
			}
		}
		cancel()
		if !consumeDone {
			// Consume may end with the context's error once it is cancelled.
			if err := <-consumeErr; err != nil && failure == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				failure = fmt.Errorf("group %s: Consume: %w", group, err)
			}
		}
		return got, failure
	}
	first, err := read(func(got []compatRecord) bool { return int64(len(got)) >= total })
	if err != nil {
		return "", fmt.Errorf("first consumer: %w", err)
	}
	parts := []int32{0, 1, 2}
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		return "", fmt.Errorf("ListConsumerGroupOffsets: %w", err)
	}
	if !errors.Is(resp.Err, sarama.ErrNoError) {
		return "", fmt.Errorf("ListConsumerGroupOffsets: %w", resp.Err)
	}
	committed := make([]int64, compatPartitions)
	for _, p := range parts {
		committed[p] = -1
		if b := resp.GetBlock(topic, p); b != nil {
			if !errors.Is(b.Err, sarama.ErrNoError) {
				return "", fmt.Errorf("ListConsumerGroupOffsets partition %d: %w", p, b.Err)
			}
			committed[p] = b.Offset
		}
	}
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return "", err
	}
	for _, rec := range compatGroupExtra() {
		_, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(*rec.key), Value: sarama.StringEncoder(rec.value)})
		if err != nil {
			producer.Close()
			return "", fmt.Errorf("SendMessage %s: %w", rec.value, err)
		}
	}
	producer.Close()
	second, err := read(func(got []compatRecord) bool { return len(got) >= len(compatGroupExtra()) })
	if err != nil {
		return "", fmt.Errorf("second consumer: %w", err)
	}
	return compatCheckGroup(end, first, committed, second)
}

// saramaTxn is sarama's transactions capability: a SyncProducer with
// Producer.Transaction.ID (so Idempotent, acks=all and one request in flight,
// which sarama requires), BeginTxn, SendMessages and CommitTxn or AbortTxn,
// then ConsumePartition with each Consumer.IsolationLevel.
func saramaTxn(ctx context.Context, env compatEnv, base *sarama.Config, admin sarama.ClusterAdmin, r *compatReport) (string, error) {
	// sarama's transaction manager logs its retries (CONCURRENT_TRANSACTIONS
	// while markers are written, coordinator moves) to the package Logger.
	var logs testenvtest.LockedBuffer
	testenvtest.SaramaLogTo(&logs)
	defer func() {
		testenvtest.SaramaLogTo(nil)
		r.log.WriteString(logs.String())
	}()
	topic := compatTxnTopic(env)
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: compatPartitions, ReplicationFactor: int16(env.rf)}, false); err != nil {
		return "", fmt.Errorf("CreateTopic %s: %w", topic, err)
	}
	defer func() {
		if err := admin.DeleteTopic(topic); err != nil {
			r.logf("delete %s: %v", topic, err)
		}
	}()
	cfg := *base
	cfg.Producer.Transaction.ID = topic
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	producer, err := sarama.NewSyncProducer(env.bootstrap, &cfg)
	if err != nil {
		return "", fmt.Errorf("NewSyncProducer (transactional): %w", err)
	}
	defer producer.Close()
	for n := 1; n <= compatTxnCount; n++ {
		if err := producer.BeginTxn(); err != nil {
			return "", fmt.Errorf("transaction %d: BeginTxn: %w", n, err)
		}
		var msgs []*sarama.ProducerMessage
		for _, rec := range compatTxnRecords(n) {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(*rec.key), Value: sarama.StringEncoder(rec.value)})
		}
		if err := producer.SendMessages(msgs); err != nil {
			// Ends the transaction so the coordinator need not time it out.
			_ = producer.AbortTxn()
			return "", fmt.Errorf("transaction %d: SendMessages: %w", n, err)
		}
		end, verb := producer.CommitTxn, "CommitTxn"
		if n == compatTxnAborted {
			end, verb = producer.AbortTxn, "AbortTxn"
		}
		if err := end(); err != nil {
			return "", fmt.Errorf("transaction %d: %s: %w", n, verb, err)
		}
	}
	read := func(level sarama.IsolationLevel, withAborted bool) ([]compatRecord, error) {
		ccfg := *base
		ccfg.Consumer.IsolationLevel = level
		consumer, err := sarama.NewConsumer(env.bootstrap, &ccfg)
		if err != nil {
			return nil, fmt.Errorf("NewConsumer: %w", err)
		}
		defer consumer.Close()
		var got []compatRecord
		for p, want := range compatTxnWant(withAborted) {
			pc, err := consumer.ConsumePartition(topic, int32(p), sarama.OffsetOldest)
			if err != nil {
				return got, fmt.Errorf("ConsumePartition %d: %w", p, err)
			}
			err = func() error {
				defer pc.Close()
				timeout := time.After(20 * time.Second)
				for n := 0; n < len(want); n++ {
					select {
					case m := <-pc.Messages():
						k := string(m.Key)
						got = append(got, compatRecord{partition: m.Partition, offset: m.Offset, key: &k, value: string(m.Value)})
					case cerr := <-pc.Errors():
						return fmt.Errorf("partition %d: %w", p, cerr)
					case <-timeout:
						return fmt.Errorf("partition %d: %d of %d records after 20s", p, n, len(want))
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return nil
			}()
			if err != nil {
				return got, err
			}
		}
		return got, nil
	}
	committed, err := read(sarama.ReadCommitted, false)
	if err != nil {
		return "", fmt.Errorf("read_committed: %w", err)
	}
	uncommitted, err := read(sarama.ReadUncommitted, true)
	if err != nil {
		return "", fmt.Errorf("read_uncommitted: %w", err)
	}
	return compatCheckTxn(committed, uncommitted)
}

// kafkaGoGroup is kafka-go's group capability: a Reader with GroupID,
// FetchMessage and CommitMessages (synchronous commits), Client.OffsetFetch
// for the committed offsets.
func kafkaGoGroup(ctx context.Context, env compatEnv, client *kafka.Client, transport *kafka.Transport, end []int64,
	messages func([]compatRecord) []kafka.Message, r *compatReport) (string, error) {
	topic, group := env.topic, compatGroupID(env)
	var total int64
	for _, o := range end {
		total += o
	}
	read := func(done func([]compatRecord) bool) ([]compatRecord, error) {
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: env.bootstrap, GroupID: group, Topic: topic,
			StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond,
			ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) { r.logf("kafka-go reader: "+msg, args...) })})
		defer rd.Close() // leaves the group
		rctx, cancel := context.WithTimeout(ctx, compatGroupReadTimeout)
		defer cancel()
		var got []compatRecord
		for !done(got) {
			m, err := rd.FetchMessage(rctx)
			if err != nil {
				return got, fmt.Errorf("group %s: FetchMessage after %d records: %w", group, len(got), err)
			}
			rec := compatRecord{partition: int32(m.Partition), offset: m.Offset, value: string(m.Value)}
			if m.Key != nil {
				k := string(m.Key)
				rec.key = &k
			}
			got = append(got, rec)
			if err := rd.CommitMessages(rctx, m); err != nil {
				return got, fmt.Errorf("group %s: CommitMessages: %w", group, err)
			}
		}
		return got, nil
	}
	first, err := read(func(got []compatRecord) bool { return int64(len(got)) >= total })
	if err != nil {
		return "", fmt.Errorf("first consumer: %w", err)
	}
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2}}})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return "", fmt.Errorf("OffsetFetch: %w", err)
	}
	committed := []int64{-1, -1, -1}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return "", fmt.Errorf("OffsetFetch partition %d: %w", p.Partition, p.Error)
		}
		if p.Partition >= 0 && p.Partition < compatPartitions {
			committed[p.Partition] = p.CommittedOffset
		}
	}
	w := &kafka.Writer{Addr: kafka.TCP(env.bootstrap...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, Transport: transport}
	err = w.WriteMessages(ctx, messages(compatGroupExtra())...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("WriteMessages: %w", err)
	}
	second, err := read(func(got []compatRecord) bool { return len(got) >= len(compatGroupExtra()) })
	if err != nil {
		return "", fmt.Errorf("second consumer: %w", err)
	}
	return compatCheckGroup(end, first, committed, second)
}
