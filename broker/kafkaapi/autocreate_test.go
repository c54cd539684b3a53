package kafkaapi_test

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metadataNaming sends a Metadata request (version v, allowing
// auto-creation) naming topics t-00 .. t-<n-1> and returns each one's error.
func metadataNaming(t *testing.T, addr string, v int16, n int) map[string]int16 {
	t.Helper()
	cl := newClient(t, addr)
	req := kmsg.NewPtrMetadataRequest()
	req.Version = v
	req.AllowAutoTopicCreation = true
	for i := range n {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(fmt.Sprintf("t-%02d", i))
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctxFor(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int16{}
	for _, rt := range resp.Topics {
		out[*rt.Topic] = rt.ErrorCode
	}
	return out
}

func listedTopics(t *testing.T, addr string) map[string]bool {
	t.Helper()
	topics, err := kadm.NewClient(newClient(t, addr)).ListTopics(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for name := range topics {
		out[name] = true
	}
	return out
}

// A broker creates no topic a Metadata request names unless
// auto.create.topics.enable is set, whatever the request's version.
func TestMetadataDoesNotAutoCreateByDefault(t *testing.T) {
	addr, _ := startBroker(t, nil)
	for _, v := range []int16{1, 12} {
		for name, code := range metadataNaming(t, addr, v, 5) {
			if code != kerr.UnknownTopicOrPartition.Code {
				t.Errorf("v%d: %s answered %d, want UNKNOWN_TOPIC_OR_PARTITION", v, name, code)
			}
		}
	}
	if got := listedTopics(t, addr); len(got) != 0 {
		t.Fatalf("topics created: %v", got)
	}
}

// With auto-creation on, one request creates at most
// auto.create.topics.max.per.request of the topics it names, the first
// ones; the next request creates the next ones.
func TestMetadataAutoCreatesAtMostTheLimitPerRequest(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"auto.create.topics.enable": "true", "auto.create.topics.max.per.request": "3"})
	for round, want := range []int{3, 6} {
		codes := metadataNaming(t, addr, 12, 10)
		listed := listedTopics(t, addr)
		if len(listed) != want {
			t.Fatalf("request %d: %d topics exist, want %d: %v", round+1, len(listed), want, listed)
		}
		for i := range 10 {
			name := fmt.Sprintf("t-%02d", i)
			switch code := codes[name]; {
			case i < want && (!listed[name] || code != 0):
				t.Errorf("request %d: %s (created %v) answered %d, want created and answered", round+1, name, listed[name], code)
			case i >= want && (listed[name] || code != kerr.UnknownTopicOrPartition.Code):
				t.Errorf("request %d: %s (created %v) answered %d, want left for later as UNKNOWN_TOPIC_OR_PARTITION", round+1, name, listed[name], code)
			}
		}
	}
}
