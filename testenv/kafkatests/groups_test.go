package kafkatests_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// Consumer groups through the Kafka listener, with real clients against a
// real 3-broker cluster: kafka-python members sharing partitions and one of
// them crashing and coming back (the acceptance scenario), franz-go members
// leaving and joining while a producer writes, and a group carrying on after
// its coordinator dies.

// groupsCluster starts a 3-broker cluster and returns it with its Kafka
// addresses and an admin client bootstrapped from all of them.
func groupsCluster(t *testing.T) (*testenv.Cluster, []string, *kadm.Client) {
	t.Helper()
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	var bootstrap []string
	for _, b := range c.Brokers() {
		bootstrap = append(bootstrap, b.KafkaAddr())
	}
	compatWaitListening(t, bootstrap)
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return c, bootstrap, kadm.NewClient(cl)
}

// groupsCreateTopic creates topic and waits until every partition has a
// leader in the metadata.
func groupsCreateTopic(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, partitions int32, rf int16) {
	t.Helper()
	resp, err := adm.CreateTopic(ctx, partitions, rf, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	err = await.Poll(20*time.Second, func() error {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		td := md.Topics[topic]
		if td.Err != nil || len(td.Partitions) != int(partitions) {
			return fmt.Errorf("%s in metadata: %+v", topic, td)
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return fmt.Errorf("%s partition %d: leader %d, %v", topic, p.Partition, p.Leader, p.Err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// groupsEndOffsets is the end offset of every partition of topic.
func groupsEndOffsets(ctx context.Context, adm *kadm.Client, topic string, partitions int32) ([]int64, error) {
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("ListEndOffsets: %w", err)
	}
	end := make([]int64, partitions)
	for p := range partitions {
		o, ok := listed.Lookup(topic, p)
		if !ok {
			return nil, fmt.Errorf("ListEndOffsets: no partition %d", p)
		}
		end[p] = o.Offset
	}
	return end, nil
}

// groupsCommitted is the group's committed offset of every partition of
// topic, -1 where there is none.
func groupsCommitted(ctx context.Context, adm *kadm.Client, group, topic string, partitions int32) ([]int64, error) {
	fetched, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = fetched.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("FetchOffsets %s: %w", group, err)
	}
	committed := make([]int64, partitions)
	for p := range partitions {
		committed[p] = -1
		if o, ok := fetched.Lookup(topic, p); ok {
			committed[p] = o.At
		}
	}
	return committed, nil
}

// pyGroupEvent is one JSON line of compat/group_consumer.py.
type pyGroupEvent struct {
	Event      string           `json:"event"`
	Name       string           `json:"name"`
	Partitions []int32          `json:"partitions"`
	Committed  map[string]int64 `json:"committed"`
	Partition  int32            `json:"partition"`
	Offset     int64            `json:"offset"`
	Key        *string          `json:"key"`
	Error      string           `json:"error"`
}

// pyMember is a running compat/group_consumer.py.
type pyMember struct {
	name     string
	cmd      *exec.Cmd
	stderr   *testenvtest.LockedBuffer
	done     chan struct{} // closed once its stdout is read to the end
	killOnce sync.Once
}

// startPyMember starts compat/group_consumer.py; its events go to events
// (until quit is closed). t.Cleanup kills it.
func startPyMember(t *testing.T, events chan<- pyGroupEvent, quit <-chan struct{}, bootstrap []string, topic, group, name, mode string, delay time.Duration) *pyMember {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "compat/group_consumer.py", strings.Join(bootstrap, ","), topic, group, name, mode,
		strconv.FormatFloat(delay.Seconds(), 'f', 3, 64), "6000")
	m := &pyMember{name: name, cmd: cmd, stderr: &testenvtest.LockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = m.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev pyGroupEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Event == "" {
				fmt.Fprintf(m.stderr, "stdout: %s\n", sc.Bytes())
				continue
			}
			select {
			case events <- ev:
			case <-quit:
				return
			}
		}
	}()
	t.Cleanup(func() { m.kill() })
	return m
}

// kill ends the process with SIGKILL (a crash) and waits for it and for the
// end of its output.
func (m *pyMember) kill() {
	m.killOnce.Do(func() {
		_ = m.cmd.Process.Signal(syscall.SIGKILL)
		<-m.done // Wait closes the pipe: read everything first
		_ = m.cmd.Wait()
	})
}

// seedScenario is the state of TestKafkaPythonGroupSeedScenario, built from
// the members' events.
type seedScenario struct {
	events    chan pyGroupEvent
	assigned  map[string][]int32         // member → current assignment
	processed map[int32]map[int64]int    // partition → offset → times processed
	commits   map[string]map[int32]int64 // member → partition → last offset it committed
	records   map[string]int             // member → records processed
	ncommits  map[string]int             // member → commits
	// pending: member → partition → the offset its first record of that
	// partition must have (the committed offset it saw on assignment);
	// checked only for the members in strict.
	pending map[string]map[int32]int64
	strict  map[string]bool
	// afterKill: partition → the offset of the next record anyone
	// processes of it after the kill (the crashed member's last commit).
	afterKill map[int32]int64
	failures  []string
	log       []string
}

func (s *seedScenario) handle(ev pyGroupEvent) {
	switch ev.Event {
	case "assigned":
		s.assigned[ev.Name] = ev.Partitions
		s.log = append(s.log, fmt.Sprintf("%s assigned %v (committed %v)", ev.Name, ev.Partitions, ev.Committed))
		if s.strict[ev.Name] {
			s.pending[ev.Name] = map[int32]int64{}
			for _, p := range ev.Partitions {
				c, ok := ev.Committed[strconv.Itoa(int(p))]
				if !ok || c < 0 {
					c = 0 // auto_offset_reset=earliest; nothing is ever deleted
				}
				s.pending[ev.Name][p] = c
			}
		}
	case "revoked":
		s.assigned[ev.Name] = nil
		s.log = append(s.log, fmt.Sprintf("%s revoked %v", ev.Name, ev.Partitions))
	case "record":
		if s.processed[ev.Partition] == nil {
			s.processed[ev.Partition] = map[int64]int{}
		}
		s.processed[ev.Partition][ev.Offset]++
		s.records[ev.Name]++
		if want, ok := s.pending[ev.Name][ev.Partition]; ok {
			delete(s.pending[ev.Name], ev.Partition)
			if ev.Offset != want {
				s.failures = append(s.failures, fmt.Sprintf("%s's first record of partition %d after its assignment is offset %d, the committed offset it was assigned with is %d",
					ev.Name, ev.Partition, ev.Offset, want))
			} else {
				s.log = append(s.log, fmt.Sprintf("%s's first record of partition %d is offset %d, the committed offset", ev.Name, ev.Partition, ev.Offset))
			}
		}
		if want, ok := s.afterKill[ev.Partition]; ok {
			delete(s.afterKill, ev.Partition)
			if ev.Offset != want {
				s.failures = append(s.failures, fmt.Sprintf("after the kill, the first record of partition %d processed (by %s) is offset %d; the killed member's last commit was %d",
					ev.Partition, ev.Name, ev.Offset, want))
			} else {
				s.log = append(s.log, fmt.Sprintf("%s continued partition %d at offset %d, the killed member's last commit", ev.Name, ev.Partition, ev.Offset))
			}
		}
	case "committed":
		if s.commits[ev.Name] == nil {
			s.commits[ev.Name] = map[int32]int64{}
		}
		s.commits[ev.Name][ev.Partition] = ev.Offset
		s.ncommits[ev.Name]++
	case "closed":
		// Members are only ever killed: a member closing has failed.
		s.failures = append(s.failures, fmt.Sprintf("%s exited (see its stderr)", ev.Name))
	case "commit-failed":
		s.log = append(s.log, fmt.Sprintf("%s: commit of partition %d offset %d failed: %s", ev.Name, ev.Partition, ev.Offset, ev.Error))
	default:
		s.log = append(s.log, fmt.Sprintf("%s: %s", ev.Name, ev.Event))
	}
}

// waitFor handles events until cond holds; false after d.
func (s *seedScenario) waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if len(s.failures) > 0 {
			return false
		}
		select {
		case ev := <-s.events:
			s.handle(ev)
		case <-tick.C:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// drain handles the events already queued.
func (s *seedScenario) drain() {
	for {
		select {
		case ev := <-s.events:
			s.handle(ev)
		default:
			return
		}
	}
}

// The acceptance scenario: two kafka-python consumers of
// analytics-consumer-group share a 3-partition topic; the one that commits
// by hand after every record is killed mid-stream and restarted, and carries
// on exactly after its last commit; every record is processed; the lag ends
// at zero.
func TestKafkaPythonGroupSeedScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("runs kafka-python consumers against a 3-broker cluster")
	}
	compatInstall(t)
	const (
		topic      = "analytics-events"
		group      = "analytics-consumer-group"
		partitions = 3
		records    = 30
		// delay is each record's processing time, so that the stream is
		// still going when the member is killed.
		delay = 300 * time.Millisecond
		// killAfter is how many records the manual-commit member
		// processes once the partitions are split before it is killed.
		killAfter = 2
	)
	c, bootstrap, adm := groupsCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	groupsCreateTopic(ctx, t, adm, topic, partitions, 3)

	// Uncompressed: Debian's kafka-python has no snappy (kgo's default).
	prod, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var recs []*kgo.Record
	for i := range records {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "user-%d", i), Value: fmt.Appendf(nil, "event-%d", i)})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	end, err := groupsEndOffsets(ctx, adm, topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("produced %d keyed records, end offsets %v", records, end)

	s := &seedScenario{events: make(chan pyGroupEvent, 10000), assigned: map[string][]int32{},
		processed: map[int32]map[int64]int{}, commits: map[string]map[int32]int64{}, records: map[string]int{}, ncommits: map[string]int{},
		pending: map[string]map[int32]int64{}, strict: map[string]bool{}, afterKill: map[int32]int64{}}
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) })
	const manualName, autoName, restartedName = "consumer-manual", "consumer-auto", "consumer-manual-restarted"
	members := map[string]*pyMember{}
	members[manualName] = startPyMember(t, s.events, quit, bootstrap, topic, group, manualName, "manual", delay)
	members[autoName] = startPyMember(t, s.events, quit, bootstrap, topic, group, autoName, "auto", delay)
	fail := func(format string, args ...any) {
		t.Helper()
		s.drain()
		t.Logf("events:\n%s", strings.Join(s.log, "\n"))
		if len(s.failures) > 0 {
			t.Errorf("%s", strings.Join(s.failures, "\n"))
		}
		for name, m := range members {
			t.Logf("%s's stderr (last 30 lines):\n%s", name, compatTail(m.stderr.String(), 30))
		}
		t.Fatalf(format, args...)
	}
	checkFailures := func() {
		t.Helper()
		if len(s.failures) > 0 {
			fail("the scenario failed")
		}
	}

	// The two members split the 3 partitions.
	split := func() bool {
		a, b := s.assigned[manualName], s.assigned[autoName]
		all := append(slices.Clone(a), b...)
		slices.Sort(all)
		return len(a) > 0 && len(b) > 0 && slices.Equal(all, []int32{0, 1, 2})
	}
	start := time.Now()
	if !s.waitFor(ctx, 30*time.Second, split) {
		fail("the two members did not split the partitions within 30s: manual %v, auto %v", s.assigned[manualName], s.assigned[autoName])
	}
	t.Logf("split after %v: %s has %v, %s has %v", time.Since(start).Round(time.Millisecond),
		manualName, s.assigned[manualName], autoName, s.assigned[autoName])

	// Kill the manual-commit member right after its killAfter-th commit
	// since the split: it is then processing (sleeping over) the next
	// record, whose commit it never makes.
	base := s.ncommits[manualName]
	if !s.waitFor(ctx, 20*time.Second, func() bool { return s.ncommits[manualName] >= base+killAfter }) {
		fail("%s committed %d records after the split within 20s, want %d", manualName, s.ncommits[manualName]-base, killAfter)
	}
	members[manualName].kill()
	s.drain() // everything it printed before dying
	killedParts := slices.Clone(s.assigned[manualName])
	lastCommits := maps.Clone(s.commits[manualName])
	committed, err := groupsCommitted(ctx, adm, group, topic, partitions)
	if err != nil {
		fail("after the kill: %v", err)
	}
	t.Logf("killed %s (SIGKILL) after %d records, %d commits (%d since the split); it held %v, its last commits %v; the group's committed offsets %v",
		manualName, s.records[manualName], s.ncommits[manualName], s.ncommits[manualName]-base, killedParts, lastCommits, committed)
	for _, p := range killedParts {
		want, ok := lastCommits[p]
		if !ok {
			want = committed[p] // it committed nothing there: whatever was committed before stands
		}
		if committed[p] != want {
			fail("partition %d: the group's committed offset is %d right after the kill, the killed member's last commit was %d", p, committed[p], want)
		}
		if want < end[p] {
			s.afterKill[p] = want
		}
	}
	if len(s.afterKill) == 0 {
		fail("%s had processed all of its partitions %v before the kill: nothing to carry on (end offsets %v, commits %v)", manualName, killedParts, end, lastCommits)
	}

	// Restart it; whoever gets its partitions continues at its last commit,
	// and the restarted member starts every partition it gets at the
	// committed offset.
	s.strict[restartedName] = true
	members[restartedName] = startPyMember(t, s.events, quit, bootstrap, topic, group, restartedName, "manual", delay)
	restart := time.Now()
	everything := func() bool {
		for p := range int32(partitions) {
			for o := range end[p] {
				if s.processed[p][o] == 0 {
					return false
				}
			}
		}
		return true
	}
	if !s.waitFor(ctx, 45*time.Second, everything) {
		var missing []string
		for p := range int32(partitions) {
			for o := range end[p] {
				if s.processed[p][o] == 0 {
					missing = append(missing, fmt.Sprintf("%d@%d", p, o))
				}
			}
		}
		fail("within 45s of the restart, records never processed: %v (assignments %v)", missing, s.assigned)
	}
	checkFailures()
	if len(s.afterKill) > 0 {
		fail("after the kill nobody processed partitions %v", s.afterKill)
	}
	t.Logf("every record processed %v after the restart; assignments %v; records per member %v", time.Since(restart).Round(time.Millisecond), s.assigned, s.records)
	if len(s.assigned[restartedName]) == 0 {
		t.Logf("note: the restarted member ended with no partition")
	}

	// The lag drops to zero: the committed offsets reach the end offsets.
	var lastCommitted []int64
	lagZero := func() bool {
		s.drain()
		committed, err := groupsCommitted(ctx, adm, group, topic, partitions)
		if err != nil {
			return false
		}
		lastCommitted = committed
		return slices.Equal(committed, end)
	}
	if !s.waitFor(ctx, 20*time.Second, lagZero) {
		fail("committed offsets %v, end offsets %v: the lag never dropped to zero", lastCommitted, end)
	}
	checkFailures()
	dups := 0
	for _, offs := range s.processed {
		for _, n := range offs {
			dups += n - 1
		}
	}
	t.Logf("lag zero: committed %v = end offsets %v; %d records processed twice; events:\n%s", lastCommitted, end, dups, strings.Join(s.log, "\n"))

	groupsDescribeLag(ctx, t, c.Brokers()[0].GRPCAddr(), group)
}

// groupsDescribeLag checks with `strata groups describe` that the group's
// lag is zero on every partition; it is skipped (logged) while the command
// does not exist.
func groupsDescribeLag(ctx context.Context, t *testing.T, grpcAddr, group string) {
	t.Helper()
	bin := testenv.Binary(t)
	help, _ := exec.CommandContext(ctx, bin, "groups", "--help").CombinedOutput()
	if strings.Contains(string(help), `unknown command "groups"`) || !strings.Contains(string(help), "describe") {
		t.Logf("strata groups describe does not exist yet: lag sub-check skipped (%s)", compatTail(strings.TrimSpace(string(help)), 1))
		return
	}
	var out []byte
	var err error
	var rows [][]string
	lagCol := -1
	// The lag may show a moment later than the committed offsets.
	for range 10 {
		out, err = exec.CommandContext(ctx, bin, "groups", "describe", group, "--bootstrap-server", grpcAddr).CombinedOutput()
		if err != nil {
			t.Errorf("strata groups describe %s: %v\n%s", group, err, out)
			return
		}
		lagCol, rows = -1, nil
		for line := range strings.Lines(string(out)) {
			f := strings.Fields(line)
			if lagCol < 0 {
				for i, h := range f {
					if strings.EqualFold(h, "LAG") {
						lagCol = i
					}
				}
				continue
			}
			if len(f) > lagCol {
				rows = append(rows, f)
			}
		}
		ok := lagCol >= 0 && len(rows) > 0
		for _, r := range rows {
			ok = ok && r[lagCol] == "0"
		}
		if ok {
			t.Logf("strata groups describe %s: lag 0 on all %d rows:\n%s", group, len(rows), out)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	if lagCol < 0 {
		t.Errorf("strata groups describe %s: no LAG column in its output:\n%s", group, out)
		return
	}
	t.Errorf("strata groups describe %s: the lag is not zero on every partition:\n%s", group, out)
}

// goGroupTracker is what franz-go members of a group processed, shared by
// all of them.
type goGroupTracker struct {
	mu        sync.Mutex
	processed map[string]int // record value → times processed
	errs      []string       // distinct errors of the members, in order
	errCount  map[string]int
}

func (tr *goGroupTracker) process(r *kgo.Record) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.processed[string(r.Value)]++
}

func (tr *goGroupTracker) errorf(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if tr.errCount == nil {
		tr.errCount = map[string]int{}
	}
	if tr.errCount[msg] == 0 {
		tr.errs = append(tr.errs, msg)
	}
	tr.errCount[msg]++
}

// errors lists the members' distinct errors with their counts.
func (tr *goGroupTracker) errors() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var b strings.Builder
	for _, msg := range tr.errs {
		fmt.Fprintf(&b, "\n  %dx %s", tr.errCount[msg], msg)
	}
	return b.String()
}

// missing is the values of want not processed yet.
func (tr *goGroupTracker) missing(want []string) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []string
	for _, v := range want {
		if tr.processed[v] == 0 {
			out = append(out, v)
		}
	}
	return out
}

// goMember is one franz-go member of a group: kgo.ConsumerGroup with
// autocommit off and BlockRebalanceOnPoll; its loop processes every polled
// record, commits them (CommitRecords) and only then allows a rebalance.
type goMember struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	stopOnce sync.Once
	mu       sync.Mutex
	assigned map[int32]bool
}

func (m *goMember) partitions() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.assigned))
}

func startGoMember(t *testing.T, bootstrap []string, topic, group, name string, tr *goGroupTracker) *goMember {
	t.Helper()
	m := &goMember{name: name, done: make(chan struct{}), assigned: map[int32]bool{}}
	update := func(parts map[string][]int32, add bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, p := range parts[topic] {
			if add {
				m.assigned[p] = true
			} else {
				delete(m.assigned, p)
			}
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.ClientID(name),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) { update(parts, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) { update(parts, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) { update(parts, false) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		// Records whose commit failed (the coordinator died under it) are
		// committed again with the next ones, or on the next round without
		// new records: a consumer that only commits what a poll returned
		// would otherwise leave a partition's last commit behind for good.
		var uncommitted []*kgo.Record
		for {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			fs := cl.PollFetches(pctx)
			pcancel()
			if ctx.Err() != nil {
				return
			}
			fs.EachError(func(topic string, p int32, err error) {
				if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, kgo.ErrClientClosed) {
					tr.errorf("%s: fetch %s/%d: %v", name, topic, p, err)
				}
			})
			recs := fs.Records()
			for _, r := range recs {
				tr.process(r)
			}
			uncommitted = append(uncommitted, recs...)
			if len(uncommitted) > 0 {
				if err := cl.CommitRecords(ctx, uncommitted...); err != nil && ctx.Err() == nil {
					tr.errorf("%s: CommitRecords: %v", name, err)
				} else {
					uncommitted = uncommitted[:0]
				}
			}
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(m.stop)
	return m
}

// stop ends the member's loop and leaves the group; a second call does
// nothing.
func (m *goMember) stop() {
	m.stopOnce.Do(func() {
		m.cancel()
		<-m.done
		m.cl.CloseAllowingRebalance()
	})
}

// offsetsWatch polls a group's committed offsets and records any that move
// backwards.
type offsetsWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	max       []int64
	backwards []string
	polls     int
}

func watchCommitted(adm *kadm.Client, group, topic string, partitions int32) *offsetsWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &offsetsWatch{cancel: cancel, done: make(chan struct{}), max: slices.Repeat([]int64{-1}, int(partitions))}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			committed, err := groupsCommitted(rctx, adm, group, topic, partitions)
			rcancel()
			if err == nil {
				w.mu.Lock()
				w.polls++
				for p, o := range committed {
					if o < w.max[p] {
						w.backwards = append(w.backwards, fmt.Sprintf("partition %d: %d after %d", p, o, w.max[p]))
					}
					w.max[p] = max(w.max[p], o)
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *offsetsWatch) stop() {
	w.cancel()
	<-w.done
}

// franz-go members of a group on a 4-partition topic: 4 of them get one
// partition each; members then leave and join while a producer writes; every
// record is processed, and the committed offsets never move backwards and
// end at the log end.
func TestGroupMembersJoinAndLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	const (
		topic      = "group-churn"
		group      = "group-churn-consumers"
		partitions = 4
	)
	_, bootstrap, adm := groupsCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	groupsCreateTopic(ctx, t, adm, topic, partitions, 3)

	tr := &goGroupTracker{processed: map[string]int{}}
	prod, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var pmu sync.Mutex
	var acked []string
	var produceErrs []error
	seq := 0
	produce := func(n int) {
		for range n {
			v := fmt.Sprintf("churn-%d", seq)
			seq++
			prod.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
				pmu.Lock()
				defer pmu.Unlock()
				if err != nil {
					produceErrs = append(produceErrs, err)
					return
				}
				acked = append(acked, string(r.Value))
			})
		}
	}
	produce(200)
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	var members []*goMember
	var live []*goMember
	fail := func(format string, args ...any) {
		t.Helper()
		for _, m := range members {
			t.Logf("%s holds %v", m.name, m.partitions())
		}
		t.Logf("member errors:%s", tr.errors())
		t.Fatalf(format, args...)
	}
	join := func() {
		m := startGoMember(t, bootstrap, topic, group, fmt.Sprintf("member-%d", len(members)), tr)
		members = append(members, m)
		live = append(live, m)
	}
	leave := func(i int) {
		m := live[i]
		m.stop()
		live = slices.Delete(live, i, i+1)
		t.Logf("%s left", m.name)
	}
	// onePartitionEach: every live member holds exactly one partition, all
	// of them together.
	onePartitionEach := func() bool {
		var all []int32
		for _, m := range live {
			p := m.partitions()
			if len(p) != 1 {
				return false
			}
			all = append(all, p...)
		}
		slices.Sort(all)
		return len(live) == partitions && slices.Equal(all, []int32{0, 1, 2, 3})
	}
	describe := func() string {
		var b []string
		for _, m := range live {
			b = append(b, fmt.Sprintf("%s: %v", m.name, m.partitions()))
		}
		return strings.Join(b, ", ")
	}

	for range partitions {
		join()
	}
	start := time.Now()
	if err := await.Poll(30*time.Second, func() error {
		if !onePartitionEach() {
			return errors.New("not one partition each")
		}
		return nil
	}); err != nil {
		fail("4 members on 4 partitions: not one partition each within 30s: %s", describe())
	}
	t.Logf("one partition each after %v: %s", time.Since(start).Round(time.Millisecond), describe())

	watch := watchCommitted(adm, group, topic, partitions)
	defer watch.stop()

	// Churn while a producer writes.
	stopProducing := make(chan struct{})
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		for {
			select {
			case <-stopProducing:
				return
			case <-time.After(10 * time.Millisecond):
				produce(5)
			}
		}
	}()
	pause := func() { time.Sleep(1500 * time.Millisecond) } // let each churn step play out under load
	pause()
	leave(0)
	pause()
	join()
	pause()
	leave(1)
	join()
	pause()
	leave(0)
	pause()
	join()
	pause()
	close(stopProducing)
	<-producerDone
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pmu.Lock()
	want := slices.Clone(acked)
	perrs := slices.Clone(produceErrs)
	pmu.Unlock()
	if len(perrs) > 0 {
		t.Fatalf("%d records failed to produce, first: %v", len(perrs), perrs[0])
	}
	end, err := groupsEndOffsets(ctx, adm, topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("produced %d records during the churn (%d in all), end offsets %v", len(want)-200, len(want), end)

	// Everything processed, committed offsets at the log end, and again
	// one partition per member.
	var missing []string
	var committed []int64
	settle := time.Now()
	err = await.Poll(30*time.Second, func() error {
		missing = tr.missing(want)
		got, err := groupsCommitted(ctx, adm, group, topic, partitions)
		if err != nil {
			return err
		}
		committed = got
		if len(missing) > 0 || !slices.Equal(committed, end) || !onePartitionEach() {
			return errors.New("not settled")
		}
		return nil
	})
	if err != nil {
		fail("30s after the churn: %d records never processed (first %v), committed %v, end offsets %v, assignment %s: %v",
			len(missing), missing[:min(len(missing), 10)], committed, end, describe(), err)
	}
	watch.stop()
	watch.mu.Lock()
	backwards, polls := watch.backwards, watch.polls
	watch.mu.Unlock()
	if len(backwards) > 0 {
		fail("committed offsets moved backwards (%d polls): %v", polls, backwards)
	}
	if polls < 10 {
		fail("the committed offsets were polled only %d times", polls)
	}
	dups := 0
	tr.mu.Lock()
	for _, n := range tr.processed {
		dups += n - 1
	}
	tr.mu.Unlock()
	if errs := tr.errors(); errs != "" {
		t.Logf("member errors (not fatal):%s", errs)
	}
	t.Logf("settled after %v: all %d records processed (%d twice), committed %v = end offsets, %d polls of the committed offsets never saw one move backwards; %s",
		time.Since(settle).Round(time.Millisecond), len(want), dups, committed, polls, describe())
}

// A group carries on after its coordinator dies: its consumer goes on
// consuming records produced after the kill and its commits go on advancing.
func TestGroupSurvivesCoordinatorDeath(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	const (
		topic      = "group-coordinator-death"
		group      = "group-coordinator-death-consumers"
		partitions = 3
		batch      = 30
	)
	c, bootstrap, adm := groupsCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	groupsCreateTopic(ctx, t, adm, topic, partitions, 3)

	// Records are placed by hand, a third on each partition: a round
	// robin spreads over the partitions whose leader the producer knows,
	// and a broker whose view lags the new topic's leaders leaves one out,
	// which the test would take for a partition the member never committed.
	prod, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produce := func(prefix string) []string {
		var recs []*kgo.Record
		var vals []string
		for i := range batch {
			v := fmt.Sprintf("%s-%d", prefix, i)
			vals = append(vals, v)
			recs = append(recs, &kgo.Record{Value: []byte(v), Partition: int32(i % partitions)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", prefix, err)
		}
		return vals
	}
	tr := &goGroupTracker{processed: map[string]int{}}
	m := startGoMember(t, bootstrap, topic, group, "member-0", tr)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Logf("member holds %v", m.partitions())
		t.Logf("member errors:%s", tr.errors())
		t.Fatalf(format, args...)
	}
	// caughtUp waits until want is processed and the committed offsets are
	// at the end offsets.
	caughtUp := func(want []string, d time.Duration) (committed []int64, err error) {
		var end []int64
		var missing []string
		err = await.Poll(d, func() error {
			missing = tr.missing(want)
			if len(missing) > 0 {
				return fmt.Errorf("%d records not processed yet", len(missing))
			}
			var err error
			if end, err = groupsEndOffsets(ctx, adm, topic, partitions); err != nil {
				return err
			}
			if committed, err = groupsCommitted(ctx, adm, group, topic, partitions); err != nil {
				return err
			}
			if !slices.Equal(committed, end) {
				return fmt.Errorf("committed %v, end offsets %v", committed, end)
			}
			return nil
		})
		return committed, err
	}

	before := produce("before")
	committedBefore, err := caughtUp(before, 30*time.Second)
	if err != nil {
		fail("before the kill: %v", err)
	}
	found := adm.FindGroupCoordinators(ctx, group)[group]
	if found.Err != nil {
		fail("FindCoordinator %s: %v", group, found.Err)
	}
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		fail("DescribeGroups: %v", err)
	}
	dg := described[group]
	t.Logf("group %s: coordinator %d (FindCoordinator), %d (DescribeGroups), state %s, %d members; committed %v",
		group, found.NodeID, dg.Coordinator.NodeID, dg.State, len(dg.Members), committedBefore)
	victim := c.Broker(found.NodeID)
	if victim == nil {
		fail("FindCoordinator names broker %d, not one of the cluster's", found.NodeID)
	}
	victim.Kill()
	killed := time.Now()
	t.Logf("killed broker %d, the group's coordinator", victim.ID())

	after := produce("after")
	committedAfter, err := caughtUp(after, 30*time.Second)
	if err != nil {
		fail("%v after killing the coordinator (broker %d): %v", time.Since(killed).Round(time.Millisecond), victim.ID(), err)
	}
	for p := range partitions {
		if committedAfter[p] <= committedBefore[p] {
			fail("partition %d: committed offset %d after the kill, %d before", p, committedAfter[p], committedBefore[p])
		}
	}
	t.Logf("%v after the kill: the %d records produced after it are processed, committed %v → %v",
		time.Since(killed).Round(time.Millisecond), batch, committedBefore, committedAfter)
	if found := adm.FindGroupCoordinators(ctx, group)[group]; found.Err != nil || found.NodeID == victim.ID() {
		fail("FindCoordinator after the kill: broker %d, %v; want a live broker", found.NodeID, found.Err)
	} else {
		t.Logf("the new coordinator is broker %d", found.NodeID)
	}
}
