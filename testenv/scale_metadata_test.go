package testenv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// The scale benchmarks time their waits (creation, ISR shrink, catch-up) by
// polling partitionsNow, so a read must show what the cluster holds at that
// moment: a read served from the client's metadata cache timed the cache's
// age instead, a flat 5 s catch-up whatever the partition count. One broker
// is enough: a change it answered is in its own Metadata at once, so the
// very next read must show it.
func TestPartitionsNowShowsAChangeAtTheNextRead(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl, adm, _ := testenvtest.KafkaClient(t, c)
	const topic = "grows"
	resp, err := adm.CreateTopic(ctx, 1, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	// A read that sees the topic, as a benchmark's poll before the change.
	await.NoError(t, await.DefaultTimeout, "the new topic in Metadata", func() error {
		parts, err := partitionsNow(ctx, cl, []string{topic})
		if err == nil && len(parts) != 1 {
			err = fmt.Errorf("%s lists %d partitions, created with 1", topic, len(parts))
		}
		return err
	})
	// Through another client: franz-go drops its cached entry of a topic it
	// adds partitions to itself, while in the benchmarks the change (an ISR
	// shrinking or growing) is the cluster's own.
	_, other, _ := testenvtest.KafkaClient(t, c)
	added, err := other.CreatePartitions(ctx, 2, topic)
	if err == nil {
		err = added[topic].Err
	}
	if err != nil {
		t.Fatalf("add 2 partitions to %s: %v", topic, err)
	}
	parts, err := partitionsNow(ctx, cl, []string{topic})
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("the read after adding 2 partitions to %s lists %d, want 3: an earlier answer was reused", topic, len(parts))
	}
}
