package metastore

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func createTestTopic(t *testing.T, s *Store, name string, partitions int, configs map[string]string) Topic {
	t.Helper()
	assignments := make([][]int32, partitions)
	for p := range assignments {
		assignments[p] = []int32{int32(p % 3), int32((p + 1) % 3)}
	}
	tp, err := s.CreateTopic(testContext(t), Topic{Name: name, Configs: configs}, assignments)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestCreateGetListDeleteTopic(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)

	created, err := s.CreateTopic(ctx, Topic{
		Name:    "orders",
		Configs: map[string]string{"retention.ms": "1000"},
	}, [][]int32{{1, 2, 3}, {2, 3, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if created.Partitions != 2 || created.ReplicationFactor != 3 {
		t.Errorf("partitions/rf = %d/%d, want 2/3", created.Partitions, created.ReplicationFactor)
	}
	if _, err := parseUUID(created.ID); err != nil {
		t.Errorf("id: %v", err)
	}
	if created.Revision == 0 || created.CreatedAt.IsZero() {
		t.Errorf("revision %d, created at %v: want both set", created.Revision, created.CreatedAt)
	}

	got, err := s.GetTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != created.ID || got.Revision != created.Revision || !got.CreatedAt.Equal(created.CreatedAt) ||
		!maps.Equal(got.Configs, created.Configs) || got.Partitions != 2 || got.ReplicationFactor != 3 {
		t.Errorf("GetTopic = %+v, want %+v", got, created)
	}

	states, err := s.PartitionStates(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	want := []PartitionState{
		{Topic: "orders", Partition: 0, Leader: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Revision: created.Revision},
		{Topic: "orders", Partition: 1, Leader: 2, Replicas: []int32{2, 3, 1}, ISR: []int32{2, 3, 1}, Revision: created.Revision},
	}
	if !equalStates(states, want) {
		t.Errorf("PartitionStates = %+v, want %+v", states, want)
	}

	createTestTopic(t, s, "audit", 1, nil)
	createTestTopic(t, s, "zeta", 1, nil)
	list, rev, err := s.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tp := range list {
		names = append(names, tp.Name)
	}
	if !slices.Equal(names, []string{"audit", "orders", "zeta"}) {
		t.Errorf("ListTopics names = %v", names)
	}
	if rev < list[2].Revision {
		t.Errorf("list revision %d older than a listed topic (%d)", rev, list[2].Revision)
	}

	if err := s.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTopic(ctx, "orders"); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("GetTopic after delete: %v, want ErrTopicNotFound", err)
	}
	if _, err := s.PartitionStates(ctx, "orders"); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("PartitionStates after delete: %v, want ErrTopicNotFound", err)
	}
	// The partition keys went with the topic.
	resp, err := s.client.Get(ctx, s.partitionsPrefix("orders"), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Errorf("%d partition keys left after delete", len(resp.Kvs))
	}

	// The name can be reused, with a new id.
	again := createTestTopic(t, s, "orders", 1, nil)
	if again.ID == created.ID {
		t.Error("recreated topic kept the old id")
	}
}

func TestCreateTopicExists(t *testing.T) {
	s := newTestStore(t)
	first := createTestTopic(t, s, "t", 3, nil)
	_, err := s.CreateTopic(testContext(t), Topic{Name: "t"}, [][]int32{{9}})
	if !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second CreateTopic: %v, want ErrTopicExists", err)
	}
	if !strings.Contains(err.Error(), `"t"`) {
		t.Errorf("error %q does not name the topic", err)
	}
	// Nothing of the failed create landed.
	states, err := s.PartitionStates(testContext(t), "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 3 || states[0].Leader != 0 || states[0].Revision != first.Revision {
		t.Errorf("states after failed create: %+v", states)
	}
}

func TestCreateTopicKeepsSuppliedIDAndTime(t *testing.T) {
	s := newTestStore(t)
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	tp, err := s.CreateTopic(testContext(t), Topic{Name: "restored", ID: id, CreatedAt: created}, [][]int32{{1}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTopic(testContext(t), "restored")
	if err != nil {
		t.Fatal(err)
	}
	if tp.ID != id || got.ID != id || !got.CreatedAt.Equal(created) {
		t.Errorf("got id %s created %v, want %s %v", got.ID, got.CreatedAt, id, created)
	}
}

func TestCreateTopicRejectsBadInput(t *testing.T) {
	s := newTestStore(t)
	tests := []struct {
		name        string
		topic       Topic
		assignments [][]int32
		wantErr     string
	}{
		{"empty name", Topic{}, [][]int32{{1}}, "empty topic name"},
		{"slash in name", Topic{Name: "a/b"}, [][]int32{{1}}, "'/'"},
		{"no partitions", Topic{Name: "x"}, nil, "no partitions"},
		{"partition count mismatch", Topic{Name: "x", Partitions: 3}, [][]int32{{1}}, "3 partitions but 1 assignments"},
		{"uneven replicas", Topic{Name: "x"}, [][]int32{{1, 2}, {1}}, "partition 1 has 1 replicas"},
		{"rf mismatch", Topic{Name: "x", ReplicationFactor: 3}, [][]int32{{1, 2}}, "replication factor is 3"},
		{"empty replica list", Topic{Name: "x"}, [][]int32{{}}, "no replicas"},
		{"duplicate replica", Topic{Name: "x"}, [][]int32{{1, 1}}, "twice"},
		{"bad id", Topic{Name: "x", ID: "nope"}, [][]int32{{1}}, "not a UUID"},
		{"zero id", Topic{Name: "x", ID: "00000000-0000-0000-0000-000000000000"}, [][]int32{{1}}, "zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CreateTopic(testContext(t), tt.topic, tt.assignments)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	if list, _, err := s.ListTopics(testContext(t)); err != nil || len(list) != 0 {
		t.Errorf("ListTopics = %v, %v; want nothing created", list, err)
	}
}

func TestTopicNotFound(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	if _, err := s.GetTopic(ctx, "missing"); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("GetTopic: %v", err)
	}
	if err := s.DeleteTopic(ctx, "missing"); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("DeleteTopic: %v", err)
	}
	if _, err := s.AlterTopicConfigs(ctx, "missing", map[string]string{"a": "b"}, nil, nil); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("AlterTopicConfigs: %v", err)
	}
	if _, err := s.PartitionStates(ctx, "missing"); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("PartitionStates: %v", err)
	}
}

// A topic name that is a prefix of another must not see the other's
// partitions.
func TestPartitionStatesOfPrefixNamedTopics(t *testing.T) {
	s := newTestStore(t)
	createTestTopic(t, s, "a", 1, nil)
	createTestTopic(t, s, "a.b", 4, nil)
	states, err := s.PartitionStates(testContext(t), "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 {
		t.Errorf("topic a has %d partition states, want 1", len(states))
	}
	if err := s.DeleteTopic(testContext(t), "a"); err != nil {
		t.Fatal(err)
	}
	if states, err := s.PartitionStates(testContext(t), "a.b"); err != nil || len(states) != 4 {
		t.Errorf("a.b after deleting a: %d states, %v", len(states), err)
	}
}

func TestAlterTopicConfigs(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	created := createTestTopic(t, s, "t", 1, map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"})

	errInvalid := errors.New("invalid segment.bytes")
	var validated map[string]string
	validate := func(m map[string]string) error {
		validated = m
		if m["segment.bytes"] == "1" {
			return errInvalid
		}
		return nil
	}

	// Validation failure: returned as is, nothing written.
	_, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"segment.bytes": "1"}, nil, validate)
	if err != errInvalid {
		t.Fatalf("err = %v, want the validator's error as is", err)
	}
	if got, _ := s.GetTopic(ctx, "t"); got.Revision != created.Revision {
		t.Error("failed validation still wrote the topic")
	}

	// Success: set one, delete one, keep the rest.
	updated, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"segment.bytes": "2048"}, []string{"cleanup.policy"}, validate)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"retention.ms": "1000", "segment.bytes": "2048"}
	if !maps.Equal(validated, want) {
		t.Errorf("validate saw %v, want %v", validated, want)
	}
	if !maps.Equal(updated.Configs, want) || updated.Revision <= created.Revision {
		t.Errorf("AlterTopicConfigs = %+v", updated)
	}
	got, err := s.GetTopic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got.Configs, want) || got.Revision != updated.Revision || got.ID != created.ID {
		t.Errorf("GetTopic after alter = %+v, want configs %v at revision %d", got, want, updated.Revision)
	}

	// Deleting an absent key and setting the same value changes nothing.
	same, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"retention.ms": "1000"}, []string{"absent"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if same.Revision != updated.Revision {
		t.Error("a no-op alter wrote the topic")
	}

	if _, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"a": "1"}, []string{"a"}, nil); err == nil {
		t.Error("setting and deleting the same key: no error")
	}
}

func TestAlterTopicConfigsRetriesWhenTopicChanges(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	createTestTopic(t, s, "t", 1, nil)

	calls := 0
	validate := func(map[string]string) error {
		calls++
		if calls == 1 {
			// Another writer gets in between the read and the write.
			if _, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"other": "x"}, nil, nil); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	got, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"mine": "y"}, nil, validate)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("validate called %d times, want 2 (one retry)", calls)
	}
	if want := map[string]string{"other": "x", "mine": "y"}; !maps.Equal(got.Configs, want) {
		t.Errorf("configs = %v, want %v (both writes)", got.Configs, want)
	}
}

func TestAlterTopicConfigsGivesUpWithErrConflict(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	createTestTopic(t, s, "t", 1, nil)
	n := 0
	validate := func(map[string]string) error {
		n++
		_, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"n": string(rune('a' + n))}, nil, nil)
		return err
	}
	_, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"mine": "y"}, nil, validate)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if n != alterAttempts {
		t.Errorf("%d attempts, want %d", n, alterAttempts)
	}
}

func TestNewTopicIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := NewTopicID()
		if err != nil {
			t.Fatal(err)
		}
		b, err := parseUUID(id)
		if err != nil {
			t.Fatal(err)
		}
		if b[0]>>2 == 62 {
			t.Fatalf("id %s would start with '-' in Kafka's base64 form", id)
		}
		if b[6]>>4 != 4 {
			t.Fatalf("id %s is not version 4", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

func TestUndecodableTopicIsSkippedInList(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	createTestTopic(t, s, "good", 1, nil)
	if _, err := s.client.Put(ctx, s.topicKey("bad"), "{not json"); err != nil {
		t.Fatal(err)
	}
	list, _, err := s.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "good" {
		t.Errorf("ListTopics = %+v, want only good", list)
	}
	if _, err := s.GetTopic(ctx, "bad"); err == nil || errors.Is(err, ErrTopicNotFound) {
		t.Errorf("GetTopic(bad) = %v, want a decode error", err)
	}
}

func equalStates(a, b []PartitionState) bool {
	return slices.EqualFunc(a, b, func(x, y PartitionState) bool {
		return x.Topic == y.Topic && x.Partition == y.Partition && x.Leader == y.Leader &&
			x.LeaderEpoch == y.LeaderEpoch && slices.Equal(x.Replicas, y.Replicas) &&
			slices.Equal(x.ISR, y.ISR) && x.Revision == y.Revision
	})
}
