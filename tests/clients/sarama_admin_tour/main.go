// A tour of every ClusterAdmin method of sarama 1.22 (Debian's
// golang-github-shopify-sarama-dev) against one broker, checking each
// answer against what Kafka (2.1, no authorizer) would give.
//
//	sarama-admin-tour [BOOTSTRAP]
//
// It first sets the stage with sarama's own clients: a 3-partition topic
// (CreateTopic), 30 messages through the SyncProducer (10 a partition), a
// consumer group ("tour-group") that reads them all, commits and closes,
// and a second group ("tour-live") that reads them and stays a member until
// the end. Then every method runs in its own function, with Kafka 2.1's
// request versions (config.Version = V2_1_0_0); the methods whose request
// versions follow config.Version run again as V1_0_0_0, V0_11_0_0 and
// V0_10_2_0 (keys "<method>@<version>").
//
// sarama 1.22 drops the per-item error codes of some answers (CreateACL,
// ListAcls, DeleteACL, DeleteRecords, DescribeConfig/AlterConfig when the
// error message is empty); for those the same request also goes through
// sarama's Broker directly and the codes are checked. sarama 1.22 has no
// DeleteConsumerGroup: the tour sends what later sarama does (DeleteGroups
// v0 to the group's coordinator) through the Broker.
//
// It prints one JSON line,
// {"<method>": {"ok": true, "result": ...} | {"ok": false, "error": "...", "result": ...}},
// and exits 0 (1 if a method failed). Every wait is bounded.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

const (
	dataTopic  = "tour-data"
	closedGrp  = "tour-group"
	liveGrp    = "tour-live"
	perPart    = 10
	partitions = 3
	callLimit  = 45 * time.Second
	tourLimit  = 300 * time.Second
)

var bootstrap = "127.0.0.1:39692"

// kafkaBroker is Kafka's BROKER config resource type (4); sarama 1.22 calls
// 4 ClusterResource and gives BrokerResource 5.
const kafkaBroker = sarama.ConfigResourceType(4)

// ---------------------------------------------------------------- results

type outcome struct {
	OK     bool        `json:"ok"`
	Result interface{} `json:"result,omitempty"`
	Error  string      `json:"error,omitempty"`
}

var (
	resultsMu sync.Mutex
	results   = map[string]outcome{}
	printOnce sync.Once
)

func record(name string, o outcome) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	results[name] = o
}

func emit() int {
	code := 0
	printOnce.Do(func() {
		resultsMu.Lock()
		defer resultsMu.Unlock()
		for _, o := range results {
			if !o.OK {
				code = 1
			}
		}
		out, err := json.Marshal(results)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sarama-admin-tour:", err)
			code = 1
			return
		}
		fmt.Println(string(out))
	})
	return code
}

// checks collects the cases of one method: each what came back, what Kafka
// would answer, and whether they match.
type checks struct {
	items []map[string]interface{}
	fails []string
}

func (c *checks) add(name string, got interface{}, ok bool, want string) {
	c.items = append(c.items, map[string]interface{}{"case": name, "got": got, "want": want, "ok": ok})
	if !ok {
		g, _ := json.Marshal(got)
		c.fails = append(c.fails, fmt.Sprintf("%s: got %s, want %s", name, g, want))
	}
}

// note records something without judging it.
func (c *checks) note(name string, got interface{}) {
	c.items = append(c.items, map[string]interface{}{"case": name, "got": got, "note": true})
}

func (c *checks) outcome() (interface{}, error) {
	if len(c.fails) > 0 {
		return c.items, fmt.Errorf("%s", strings.Join(c.fails, "; "))
	}
	return c.items, nil
}

// run calls fn in its own goroutine, bounded by callLimit, and records it.
func run(name string, fn func() (interface{}, error)) {
	type ret struct {
		v   interface{}
		err error
	}
	done := make(chan ret, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- ret{nil, fmt.Errorf("panic: %v", r)}
			}
		}()
		v, err := fn()
		done <- ret{v, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			record(name, outcome{OK: false, Error: r.err.Error(), Result: r.v})
		} else {
			record(name, outcome{OK: true, Result: r.v})
		}
	case <-time.After(callLimit):
		record(name, outcome{OK: false, Error: fmt.Sprintf("no answer within %v", callLimit)})
	}
}

// ---------------------------------------------------------------- errors

var codeNames = map[sarama.KError]string{
	0: "NONE", 1: "OFFSET_OUT_OF_RANGE", 3: "UNKNOWN_TOPIC_OR_PARTITION",
	5: "LEADER_NOT_AVAILABLE", 15: "COORDINATOR_NOT_AVAILABLE", 16: "NOT_COORDINATOR",
	17: "INVALID_TOPIC_EXCEPTION", 35: "UNSUPPORTED_VERSION", 36: "TOPIC_ALREADY_EXISTS",
	37: "INVALID_PARTITIONS", 38: "INVALID_REPLICATION_FACTOR", 39: "INVALID_REPLICA_ASSIGNMENT",
	40: "INVALID_CONFIG", 41: "NOT_CONTROLLER", 42: "INVALID_REQUEST", 44: "POLICY_VIOLATION",
	54: "SECURITY_DISABLED", 68: "NON_EMPTY_GROUP", 69: "GROUP_ID_NOT_FOUND",
}

func codeName(k sarama.KError) string {
	if n, ok := codeNames[k]; ok {
		return n
	}
	return fmt.Sprintf("code %d (%s)", int16(k), k.Error())
}

// errCode is the Kafka error code inside err: NONE for nil, -1 when err is
// not a Kafka error code (a transport or client-side error).
func errCode(err error) sarama.KError {
	switch e := err.(type) {
	case nil:
		return sarama.ErrNoError
	case sarama.KError:
		return e
	case *sarama.TopicError:
		return e.Err
	case *sarama.TopicPartitionError:
		return e.Err
	}
	return -1
}

func errText(err error) string {
	if err == nil {
		return "nil"
	}
	var msg *string
	switch e := err.(type) {
	case sarama.KError:
		return codeName(e)
	case *sarama.TopicError:
		msg = e.ErrMsg
	case *sarama.TopicPartitionError:
		msg = e.ErrMsg
	default:
		return "client error: " + err.Error()
	}
	m := "<null>"
	if msg != nil {
		m = *msg
	}
	return fmt.Sprintf("%s, message %q", codeName(errCode(err)), m)
}

func expectCode(c *checks, name string, err error, want sarama.KError) {
	c.add(name, errText(err), errCode(err) == want, codeName(want))
}

func strp(s string) *string { return &s }

// ---------------------------------------------------------------- setup

func newConfig(v sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = "sluice-sarama-admin-tour"
	c.Metadata.Retry.Max = 20
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 20 * time.Second
	c.Net.WriteTimeout = 5 * time.Second
	c.Admin.Timeout = 5 * time.Second
	return c
}

type tour struct {
	conf   *sarama.Config
	admin  sarama.ClusterAdmin
	client sarama.Client // for raw requests through sarama's Broker
	live   *group        // tour-live, a member until the end
}

func (t *tour) controller() (*sarama.Broker, error) {
	return t.client.Controller()
}

// waitPartitions polls DescribeTopics until topic has n partitions (n = 0:
// until it is unknown).
func waitPartitions(ca sarama.ClusterAdmin, topic string, n int, limit time.Duration) (string, error) {
	stop := time.Now().Add(limit)
	last := ""
	for {
		meta, err := ca.DescribeTopics([]string{topic})
		if err == nil && len(meta) == 1 {
			last = fmt.Sprintf("%s, %d partitions", codeName(meta[0].Err), len(meta[0].Partitions))
			if n == 0 && meta[0].Err == sarama.ErrUnknownTopicOrPartition {
				return last, nil
			}
			if n > 0 && meta[0].Err == sarama.ErrNoError && len(meta[0].Partitions) == n {
				return last, nil
			}
		} else if err != nil {
			last = errText(err)
		}
		if time.Now().After(stop) {
			return last, fmt.Errorf("%s: not %d partitions within %v (last: %s)", topic, n, limit, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// group is one sarama ConsumerGroup member consuming dataTopic, marking
// every message.
type group struct {
	cg       sarama.ConsumerGroup
	cancel   context.CancelFunc
	finished chan struct{}
	h        *handler
	errs     []string
	errMu    sync.Mutex
}

type handler struct {
	mu      sync.Mutex
	seen    map[string]bool
	want    int
	done    chan struct{}
	closed  bool
	member  string
	setups  int
	claimed map[string][]int32
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.member = s.MemberID()
	h.setups++
	h.claimed = s.Claims()
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.mu.Lock()
		h.seen[fmt.Sprintf("%d/%d", m.Partition, m.Offset)] = true
		if !h.closed && len(h.seen) >= h.want {
			h.closed = true
			close(h.done)
		}
		h.mu.Unlock()
		s.MarkMessage(m, "tour")
	}
	return nil
}

func startGroup(id string, want int) (*group, error) {
	c := newConfig(sarama.V2_1_0_0)
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
	c.Consumer.Return.Errors = true
	cg, err := sarama.NewConsumerGroup([]string{bootstrap}, id, c)
	if err != nil {
		return nil, fmt.Errorf("NewConsumerGroup %s: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &group{cg: cg, cancel: cancel, finished: make(chan struct{}),
		h: &handler{seen: map[string]bool{}, want: want, done: make(chan struct{})}}
	go func() {
		for e := range cg.Errors() {
			g.errMu.Lock()
			g.errs = append(g.errs, e.Error())
			g.errMu.Unlock()
		}
	}()
	go func() {
		defer close(g.finished)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{dataTopic}, g.h); err != nil {
				g.errMu.Lock()
				g.errs = append(g.errs, "Consume: "+err.Error())
				g.errMu.Unlock()
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	return g, nil
}

func (g *group) waitAll(limit time.Duration) error {
	select {
	case <-g.h.done:
		return nil
	case <-time.After(limit):
		g.h.mu.Lock()
		n := len(g.h.seen)
		g.h.mu.Unlock()
		g.errMu.Lock()
		defer g.errMu.Unlock()
		return fmt.Errorf("consumed %d of %d within %v (errors: %v)", n, g.h.want, limit, g.errs)
	}
}

// stop ends the session (committing the marked offsets) and closes the
// member (LeaveGroup).
func (g *group) stop(limit time.Duration) error {
	g.cancel()
	select {
	case <-g.finished:
	case <-time.After(limit):
		return fmt.Errorf("session did not end within %v", limit)
	}
	closed := make(chan error, 1)
	go func() { closed <- g.cg.Close() }()
	select {
	case err := <-closed:
		return err
	case <-time.After(limit):
		return fmt.Errorf("Close did not return within %v", limit)
	}
}

func (t *tour) stage() (interface{}, error) {
	out := map[string]interface{}{}
	retention := "3600000"
	err := t.admin.CreateTopic(dataTopic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention}}, false)
	if err != nil {
		return out, fmt.Errorf("CreateTopic %s: %s", dataTopic, errText(err))
	}
	if _, err := waitPartitions(t.admin, dataTopic, partitions, 10*time.Second); err != nil {
		return out, err
	}

	pc := newConfig(sarama.V2_1_0_0)
	pc.Producer.Return.Successes = true
	pc.Producer.RequiredAcks = sarama.WaitForAll
	pc.Producer.Partitioner = sarama.NewManualPartitioner
	pc.Producer.Retry.Max = 10
	producer, err := sarama.NewSyncProducer([]string{bootstrap}, pc)
	if err != nil {
		return out, fmt.Errorf("NewSyncProducer: %v", err)
	}
	offsets := map[int32][]int64{}
	for i := 0; i < partitions*perPart; i++ {
		p, off, err := producer.SendMessage(&sarama.ProducerMessage{
			Topic:     dataTopic,
			Partition: int32(i % partitions),
			Key:       sarama.StringEncoder(fmt.Sprintf("k-%d", i)),
			Value:     sarama.StringEncoder(fmt.Sprintf("v-%03d", i)),
		})
		if err != nil {
			producer.Close()
			return out, fmt.Errorf("SendMessage %d: %v", i, err)
		}
		offsets[p] = append(offsets[p], off)
	}
	if err := producer.Close(); err != nil {
		return out, fmt.Errorf("producer Close: %v", err)
	}
	out["produced_offsets"] = offsets

	g, err := startGroup(closedGrp, partitions*perPart)
	if err != nil {
		return out, err
	}
	if err := g.waitAll(30 * time.Second); err != nil {
		g.stop(10 * time.Second)
		return out, fmt.Errorf("%s: %v", closedGrp, err)
	}
	if err := g.stop(15 * time.Second); err != nil {
		return out, fmt.Errorf("%s close: %v", closedGrp, err)
	}
	out[closedGrp] = map[string]interface{}{"consumed": len(g.h.seen), "sessions": g.h.setups, "errors": g.errs}

	live, err := startGroup(liveGrp, partitions*perPart)
	if err != nil {
		return out, err
	}
	t.live = live
	if err := live.waitAll(30 * time.Second); err != nil {
		return out, fmt.Errorf("%s: %v", liveGrp, err)
	}
	// Let the marked offsets of the live member be committed (every 100 ms).
	time.Sleep(1 * time.Second)
	live.h.mu.Lock()
	out[liveGrp] = map[string]interface{}{"consumed": len(live.h.seen), "member": live.h.member, "claims": live.h.claimed}
	live.h.mu.Unlock()
	return out, nil
}

// ---------------------------------------------------------------- the tour

// CreateTopic: CreateTopics v2 (v1 as 0.11, v0 as 0.10.x).
func (t *tour) CreateTopic() (interface{}, error) {
	c := &checks{}
	ca := t.admin
	cfg := "1"
	err := ca.CreateTopic("tour-created", &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"min.insync.replicas": &cfg}}, false)
	expectCode(c, "new topic tour-created, 2 partitions, RF 1, min.insync.replicas=1", err, sarama.ErrNoError)
	last, werr := waitPartitions(ca, "tour-created", 2, 10*time.Second)
	c.add("tour-created then described", last, werr == nil, "NONE, 2 partitions")

	err = ca.CreateTopic(dataTopic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
	expectCode(c, "existing topic tour-data", err, sarama.ErrTopicAlreadyExists)

	err = ca.CreateTopic("tour-validate", &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, true)
	expectCode(c, "validateOnly tour-validate", err, sarama.ErrNoError)
	time.Sleep(300 * time.Millisecond)
	meta, derr := ca.DescribeTopics([]string{"tour-validate"})
	got := errText(derr)
	if derr == nil && len(meta) == 1 {
		got = fmt.Sprintf("%s, %d partitions", codeName(meta[0].Err), len(meta[0].Partitions))
	}
	c.add("tour-validate not created", got, derr == nil && len(meta) == 1 && meta[0].Err == sarama.ErrUnknownTopicOrPartition,
		"UNKNOWN_TOPIC_OR_PARTITION, 0 partitions")

	err = ca.CreateTopic("tour-rf3", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 3}, false)
	expectCode(c, "replication factor 3 on one broker", err, sarama.ErrInvalidReplicationFactor)

	err = ca.CreateTopic("tour-zero", &sarama.TopicDetail{NumPartitions: 0, ReplicationFactor: 1}, false)
	expectCode(c, "0 partitions", err, sarama.ErrInvalidPartitions)

	err = ca.CreateTopic("bad name!", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
	expectCode(c, "invalid name \"bad name!\"", err, sarama.ErrInvalidTopic)

	err = ca.CreateTopic("tour-assigned", &sarama.TopicDetail{NumPartitions: -1, ReplicationFactor: -1,
		ReplicaAssignment: map[int32][]int32{0: {0}, 1: {0}}}, false)
	expectCode(c, "replica assignment {0:[0],1:[0]}", err, sarama.ErrNoError)
	last, werr = waitPartitions(ca, "tour-assigned", 2, 10*time.Second)
	c.add("tour-assigned then described", last, werr == nil, "NONE, 2 partitions")

	err = ca.CreateTopic("tour-badassign", &sarama.TopicDetail{NumPartitions: -1, ReplicationFactor: -1,
		ReplicaAssignment: map[int32][]int32{0: {7}}}, false)
	expectCode(c, "replica assignment to unknown broker 7", err, sarama.ErrInvalidReplicaAssignment)

	bad := "not-a-number"
	err = ca.CreateTopic("tour-badconfig", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &bad}}, false)
	expectCode(c, "retention.ms=not-a-number", err, sarama.ErrInvalidConfig)
	return c.outcome()
}

// ListTopics: Metadata v0 (all topics) + DescribeConfigs v0 of them all.
func (t *tour) ListTopics() (interface{}, error) {
	c := &checks{}
	topics, err := t.admin.ListTopics()
	if err != nil {
		return nil, fmt.Errorf("ListTopics: %s", errText(err))
	}
	names := []string{}
	for n := range topics {
		names = append(names, n)
	}
	sort.Strings(names)
	c.note("topics", names)
	d, ok := topics[dataTopic]
	if !ok {
		c.add("tour-data listed", names, false, "tour-data among them")
	} else {
		cfg := map[string]string{}
		for k, v := range d.ConfigEntries {
			if v != nil {
				cfg[k] = *v
			}
		}
		got := map[string]interface{}{"partitions": d.NumPartitions, "rf": d.ReplicationFactor,
			"assignment": d.ReplicaAssignment, "non_default_configs": cfg}
		good := d.NumPartitions == 3 && d.ReplicationFactor == 1 && len(d.ReplicaAssignment) == 3 &&
			len(cfg) == 1 && cfg["retention.ms"] == "3600000"
		for p := int32(0); p < 3; p++ {
			r := d.ReplicaAssignment[p]
			good = good && len(r) == 1 && r[0] == 0
		}
		c.add("tour-data detail", got, good,
			`3 partitions, RF 1, assignment {0:[0],1:[0],2:[0]}, non-default configs {retention.ms: 3600000}`)
	}
	if cd, ok := topics["tour-created"]; ok {
		cfg := map[string]string{}
		for k, v := range cd.ConfigEntries {
			if v != nil {
				cfg[k] = *v
			}
		}
		c.add("tour-created non-default configs", cfg, len(cfg) == 1 && cfg["min.insync.replicas"] == "1",
			"{min.insync.replicas: 1}")
	}
	_, validate := topics["tour-validate"]
	c.add("tour-validate absent", validate, !validate, "false")
	return c.outcome()
}

// DescribeTopics: Metadata v5 (v4 as 0.11, v0 as 0.10.x), no auto-creation.
func (t *tour) DescribeTopics() (interface{}, error) {
	c := &checks{}
	meta, err := t.admin.DescribeTopics([]string{dataTopic, "tour-missing"})
	if err != nil {
		return nil, fmt.Errorf("DescribeTopics: %s", errText(err))
	}
	for _, m := range meta {
		parts := []map[string]interface{}{}
		good := m.Err == sarama.ErrNoError && !m.IsInternal && len(m.Partitions) == 3
		for _, p := range m.Partitions {
			parts = append(parts, map[string]interface{}{"id": p.ID, "err": codeName(p.Err), "leader": p.Leader,
				"replicas": p.Replicas, "isr": p.Isr, "offline": p.OfflineReplicas})
			good = good && p.Err == sarama.ErrNoError && p.Leader == 0 && len(p.Replicas) == 1 && p.Replicas[0] == 0 &&
				len(p.Isr) == 1 && p.Isr[0] == 0 && len(p.OfflineReplicas) == 0
		}
		got := map[string]interface{}{"err": codeName(m.Err), "internal": m.IsInternal, "partitions": parts}
		switch m.Name {
		case dataTopic:
			c.add("tour-data", got, good, "NONE, not internal, partitions 0-2 leader 0 replicas [0] isr [0] offline []")
		case "tour-missing":
			c.add("tour-missing", got, m.Err == sarama.ErrUnknownTopicOrPartition && len(m.Partitions) == 0,
				"UNKNOWN_TOPIC_OR_PARTITION, no partitions")
		default:
			c.add("unexpected topic "+m.Name, got, false, "only the two asked for")
		}
	}
	c.add("topics answered", len(meta), len(meta) == 2, "2")
	time.Sleep(500 * time.Millisecond)
	meta, err = t.admin.DescribeTopics([]string{"tour-missing"})
	got := errText(err)
	if err == nil && len(meta) == 1 {
		got = codeName(meta[0].Err)
	}
	c.add("tour-missing still unknown (not auto-created)", got, got == "UNKNOWN_TOPIC_OR_PARTITION", "UNKNOWN_TOPIC_OR_PARTITION")
	return c.outcome()
}

// DescribeConfig: DescribeConfigs v0.
func (t *tour) DescribeConfig() (interface{}, error) {
	c := &checks{}
	ca := t.admin
	entries, err := ca.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: dataTopic})
	if err != nil {
		c.add("topic tour-data", errText(err), false, "entries")
	} else {
		names := []string{}
		byName := map[string]sarama.ConfigEntry{}
		for _, e := range entries {
			names = append(names, e.Name)
			byName[e.Name] = e
		}
		sort.Strings(names)
		c.note("topic tour-data entry names", names)
		r := byName["retention.ms"]
		c.add("tour-data retention.ms", r, r.Value == "3600000" && !r.Default && !r.ReadOnly && !r.Sensitive,
			"value 3600000, Default false, ReadOnly false")
		cp, ok := byName["cleanup.policy"]
		c.add("tour-data cleanup.policy", cp, ok && cp.Value == "delete" && cp.Default, "value delete, Default true")
		// Kafka 2.1's topic configs.
		kafka := []string{"cleanup.policy", "compression.type", "delete.retention.ms", "file.delete.delay.ms",
			"flush.messages", "flush.ms", "follower.replication.throttled.replicas", "index.interval.bytes",
			"leader.replication.throttled.replicas", "max.message.bytes", "message.downconversion.enable",
			"message.format.version", "message.timestamp.difference.max.ms", "message.timestamp.type",
			"min.cleanable.dirty.ratio", "min.compaction.lag.ms", "min.insync.replicas", "preallocate",
			"retention.bytes", "retention.ms", "segment.bytes", "segment.index.bytes", "segment.jitter.ms",
			"segment.ms", "unclean.leader.election.enable"}
		missing := []string{}
		for _, k := range kafka {
			if _, ok := byName[k]; !ok {
				missing = append(missing, k)
			}
		}
		c.note("Kafka 2.1 topic configs not described", missing)
		nonDefault := []string{}
		for _, e := range entries {
			if !e.Default {
				nonDefault = append(nonDefault, e.Name+"="+e.Value)
			}
		}
		c.add("tour-data non-default entries", nonDefault, len(nonDefault) == 1 && nonDefault[0] == "retention.ms=3600000",
			"[retention.ms=3600000]")
	}

	entries, err = ca.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: dataTopic,
		ConfigNames: []string{"retention.ms", "cleanup.policy"}})
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name+"="+e.Value)
	}
	sort.Strings(names)
	c.add("tour-data, names [retention.ms cleanup.policy]", map[string]interface{}{"err": errText(err), "entries": names},
		err == nil && len(names) == 2 && names[0] == "cleanup.policy=delete" && names[1] == "retention.ms=3600000",
		"[cleanup.policy=delete retention.ms=3600000]")

	// sarama 1.22's BrokerResource is 5, which Kafka does not know (its
	// BROKER is 4, sarama's ClusterResource): Kafka 2.1 answers
	// INVALID_REQUEST "Unsupported resource type: UNKNOWN".
	entries, err = ca.DescribeConfig(sarama.ConfigResource{Type: sarama.BrokerResource, Name: "0"})
	c.add("sarama BrokerResource (type 5) \"0\"", map[string]interface{}{"err": errText(err), "count": len(entries)},
		err != nil && len(entries) == 0, "an error (INVALID_REQUEST, unsupported resource type), no entries")
	entries, err = ca.DescribeConfig(sarama.ConfigResource{Type: kafkaBroker, Name: "0"})
	bnames := []string{}
	for _, e := range entries {
		bnames = append(bnames, e.Name)
	}
	sort.Strings(bnames)
	c.add("Kafka's BROKER (type 4, sarama's ClusterResource) \"0\"", map[string]interface{}{"err": errText(err), "count": len(entries), "names": bnames},
		err == nil && len(entries) > 0, "nil error, the broker's configs (Kafka 2.1: ~200)")

	// Unknown topic: Kafka 2.1 answers UNKNOWN_TOPIC_OR_PARTITION with a null
	// message, which sarama 1.22 turns into no entries and no error.
	entries, err = ca.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: "tour-missing"})
	c.note("sarama: topic tour-missing", map[string]interface{}{"err": errText(err), "entries": len(entries)})
	code, msg, rerr := t.rawDescribeConfig(sarama.TopicResource, "tour-missing")
	c.add("raw DescribeConfigs v0: topic tour-missing", map[string]interface{}{"code": code, "message": msg, "err": errText(rerr)},
		rerr == nil && code == "UNKNOWN_TOPIC_OR_PARTITION", "UNKNOWN_TOPIC_OR_PARTITION")

	code, msg, rerr = t.rawDescribeConfig(kafkaBroker, "7")
	c.add("raw DescribeConfigs v0: BROKER 7 (not this broker)", map[string]interface{}{"code": code, "message": msg, "err": errText(rerr)},
		rerr == nil && code == "INVALID_REQUEST", "INVALID_REQUEST")
	return c.outcome()
}

func (t *tour) rawDescribeConfig(typ sarama.ConfigResourceType, name string) (string, string, error) {
	b, err := t.controller()
	if err != nil {
		return "", "", err
	}
	rsp, err := b.DescribeConfigs(&sarama.DescribeConfigsRequest{Resources: []*sarama.ConfigResource{{Type: typ, Name: name}}})
	if err != nil {
		return "", "", err
	}
	if len(rsp.Resources) != 1 {
		return "", "", fmt.Errorf("%d resources in the answer", len(rsp.Resources))
	}
	return codeName(sarama.KError(rsp.Resources[0].ErrorCode)), rsp.Resources[0].ErrorMsg, nil
}

func (t *tour) rawAlterConfig(typ sarama.ConfigResourceType, name string, entries map[string]*string, validate bool) (string, string, error) {
	b, err := t.controller()
	if err != nil {
		return "", "", err
	}
	rsp, err := b.AlterConfigs(&sarama.AlterConfigsRequest{ValidateOnly: validate,
		Resources: []*sarama.AlterConfigsResource{{Type: typ, Name: name, ConfigEntries: entries}}})
	if err != nil {
		return "", "", err
	}
	if len(rsp.Resources) != 1 {
		return "", "", fmt.Errorf("%d resources in the answer", len(rsp.Resources))
	}
	return codeName(sarama.KError(rsp.Resources[0].ErrorCode)), rsp.Resources[0].ErrorMsg, nil
}

func (t *tour) nonDefault(topic string) (map[string]string, error) {
	entries, err := t.admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		if !e.Default {
			out[e.Name] = e.Value
		}
	}
	return out, nil
}

// AlterConfig: AlterConfigs v0, which replaces the resource's whole set.
func (t *tour) AlterConfig() (interface{}, error) {
	c := &checks{}
	ca := t.admin
	err := ca.AlterConfig(sarama.TopicResource, dataTopic,
		map[string]*string{"retention.ms": strp("7200000"), "segment.bytes": strp("1048576")}, false)
	expectCode(c, "tour-data {retention.ms: 7200000, segment.bytes: 1048576}", err, sarama.ErrNoError)
	nd, derr := t.nonDefault(dataTopic)
	c.add("then non-default configs", map[string]interface{}{"err": errText(derr), "configs": nd},
		derr == nil && len(nd) == 2 && nd["retention.ms"] == "7200000" && nd["segment.bytes"] == "1048576",
		"{retention.ms: 7200000, segment.bytes: 1048576}")

	err = ca.AlterConfig(sarama.TopicResource, dataTopic, map[string]*string{"max.message.bytes": strp("2000000")}, false)
	expectCode(c, "tour-data {max.message.bytes: 2000000}", err, sarama.ErrNoError)
	nd, derr = t.nonDefault(dataTopic)
	c.add("then non-default configs (whole set replaced)", map[string]interface{}{"err": errText(derr), "configs": nd},
		derr == nil && len(nd) == 1 && nd["max.message.bytes"] == "2000000", "{max.message.bytes: 2000000}")

	err = ca.AlterConfig(sarama.TopicResource, dataTopic, map[string]*string{"retention.ms": strp("1")}, true)
	expectCode(c, "validateOnly tour-data {retention.ms: 1}", err, sarama.ErrNoError)
	nd, derr = t.nonDefault(dataTopic)
	c.add("then unchanged", map[string]interface{}{"err": errText(derr), "configs": nd},
		derr == nil && len(nd) == 1 && nd["max.message.bytes"] == "2000000", "{max.message.bytes: 2000000}")

	type bad struct {
		name    string
		typ     sarama.ConfigResourceType
		res     string
		entries map[string]*string
		want    string
	}
	for _, b := range []bad{
		{"tour-data {no.such.config: 1}", sarama.TopicResource, dataTopic, map[string]*string{"no.such.config": strp("1")}, "INVALID_CONFIG"},
		{"tour-data {retention.ms: abc}", sarama.TopicResource, dataTopic, map[string]*string{"retention.ms": strp("abc")}, "INVALID_CONFIG"},
		{"tour-missing {retention.ms: 1000}", sarama.TopicResource, "tour-missing", map[string]*string{"retention.ms": strp("1000")}, "UNKNOWN_TOPIC_OR_PARTITION"},
	} {
		err := ca.AlterConfig(b.typ, b.res, b.entries, false)
		code, msg, rerr := t.rawAlterConfig(b.typ, b.res, b.entries, true)
		got := map[string]interface{}{"sarama": errText(err), "raw_code": code, "raw_message": msg}
		if rerr != nil {
			got["raw_err"] = errText(rerr)
		}
		// sarama reports an error only when the answer carries a message.
		c.add(b.name, got, err != nil && rerr == nil && code == b.want, "sarama error, and "+b.want+" with a message")
	}
	nd, derr = t.nonDefault(dataTopic)
	c.add("tour-data after the rejected alters", map[string]interface{}{"err": errText(derr), "configs": nd},
		derr == nil && len(nd) == 1 && nd["max.message.bytes"] == "2000000", "{max.message.bytes: 2000000}")

	// A broker's dynamic config, validate only (Kafka 2.1 validates it and
	// changes nothing).
	// (Kafka's BROKER is 4, sarama's ClusterResource; see DescribeConfig.)
	err = ca.AlterConfig(kafkaBroker, "0", map[string]*string{"log.cleaner.threads": strp("2")}, true)
	code, msg, rerr := t.rawAlterConfig(kafkaBroker, "0", map[string]*string{"log.cleaner.threads": strp("2")}, true)
	c.note("validateOnly BROKER 0 {log.cleaner.threads: 2} (Kafka 2.1: NONE)",
		map[string]interface{}{"sarama": errText(err), "raw_code": code, "raw_message": msg, "raw_err": errText(rerr)})
	err = ca.AlterConfig(sarama.BrokerResource, "0", map[string]*string{"log.cleaner.threads": strp("2")}, true)
	c.add("validateOnly sarama BrokerResource (type 5) \"0\"", errText(err), err != nil,
		"an error (INVALID_REQUEST, unsupported resource type)")
	return c.outcome()
}

// CreatePartitions: CreatePartitions v0. sarama 1.22 never sends
// validateOnly (the argument is dropped), so it is not tried.
func (t *tour) CreatePartitions() (interface{}, error) {
	c := &checks{}
	ca := t.admin
	err := ca.CreateTopic("tour-grow", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
	if err != nil {
		return nil, fmt.Errorf("CreateTopic tour-grow: %s", errText(err))
	}
	if _, err := waitPartitions(ca, "tour-grow", 1, 10*time.Second); err != nil {
		return nil, err
	}
	err = ca.CreatePartitions("tour-grow", 3, nil, false)
	expectCode(c, "tour-grow 1 -> 3", err, sarama.ErrNoError)
	last, werr := waitPartitions(ca, "tour-grow", 3, 10*time.Second)
	c.add("then described", last, werr == nil, "NONE, 3 partitions")

	err = ca.CreatePartitions("tour-grow", 2, nil, false)
	expectCode(c, "tour-grow 3 -> 2", err, sarama.ErrInvalidPartitions)
	err = ca.CreatePartitions("tour-grow", 3, nil, false)
	expectCode(c, "tour-grow 3 -> 3", err, sarama.ErrInvalidPartitions)
	err = ca.CreatePartitions("tour-missing", 3, nil, false)
	expectCode(c, "tour-missing -> 3", err, sarama.ErrUnknownTopicOrPartition)

	err = ca.CreatePartitions("tour-grow", 5, [][]int32{{0}, {0}}, false)
	expectCode(c, "tour-grow 3 -> 5, assignment [[0] [0]]", err, sarama.ErrNoError)
	last, werr = waitPartitions(ca, "tour-grow", 5, 10*time.Second)
	c.add("then described", last, werr == nil, "NONE, 5 partitions")

	err = ca.CreatePartitions("tour-grow", 7, [][]int32{{0}}, false)
	expectCode(c, "tour-grow 5 -> 7, assignment [[0]] (one short)", err, sarama.ErrInvalidReplicaAssignment)
	err = ca.CreatePartitions("tour-grow", 6, [][]int32{{7}}, false)
	expectCode(c, "tour-grow 5 -> 6, assignment [[7]] (unknown broker)", err, sarama.ErrInvalidReplicaAssignment)
	meta, derr := ca.DescribeTopics([]string{"tour-grow"})
	n := -1
	if derr == nil && len(meta) == 1 {
		n = len(meta[0].Partitions)
	}
	c.add("tour-grow after the rejected requests", n, n == 5, "5 partitions")
	return c.outcome()
}

// DeleteRecords: DeleteRecords v0. sarama 1.22 drops the per-partition
// answer, so the effect is checked with ListOffsets and the same request
// sent raw.
func (t *tour) DeleteRecords() (interface{}, error) {
	c := &checks{}
	err := t.admin.DeleteRecords(dataTopic, map[int32]int64{0: 4})
	expectCode(c, "tour-data {0: 4}", err, sarama.ErrNoError)
	oldest, oerr := t.client.GetOffset(dataTopic, 0, sarama.OffsetOldest)
	c.add("then partition 0 oldest offset", map[string]interface{}{"offset": oldest, "err": errText(oerr)},
		oerr == nil && oldest == 4, "4")

	b, err := t.controller()
	if err != nil {
		return c.items, err
	}
	rsp, err := b.DeleteRecords(&sarama.DeleteRecordsRequest{Timeout: 5 * time.Second,
		Topics: map[string]*sarama.DeleteRecordsRequestTopic{
			dataTopic:      {PartitionOffsets: map[int32]int64{0: 6, 1: -1, 2: 99}},
			"tour-missing": {PartitionOffsets: map[int32]int64{0: 1}},
		}})
	if err != nil {
		c.add("raw DeleteRecords v0", errText(err), false, "an answer")
		return c.outcome()
	}
	part := func(topic string, p int32) (int64, string) {
		tp, ok := rsp.Topics[topic]
		if !ok || tp.Partitions[p] == nil {
			return -2, "missing from the answer"
		}
		return tp.Partitions[p].LowWatermark, codeName(tp.Partitions[p].Err)
	}
	lw, code := part(dataTopic, 0)
	c.add("raw tour-data p0 to 6", map[string]interface{}{"low_watermark": lw, "err": code}, lw == 6 && code == "NONE", "low watermark 6, NONE")
	lw, code = part(dataTopic, 1)
	c.add("raw tour-data p1 to -1 (high watermark)", map[string]interface{}{"low_watermark": lw, "err": code},
		lw == perPart && code == "NONE", "low watermark 10, NONE")
	lw, code = part(dataTopic, 2)
	c.add("raw tour-data p2 to 99 (past the high watermark)", map[string]interface{}{"low_watermark": lw, "err": code},
		code == "OFFSET_OUT_OF_RANGE", "low watermark -1, OFFSET_OUT_OF_RANGE")
	lw, code = part("tour-missing", 0)
	c.add("raw tour-missing p0 to 1", map[string]interface{}{"low_watermark": lw, "err": code},
		code == "UNKNOWN_TOPIC_OR_PARTITION", "low watermark -1, UNKNOWN_TOPIC_OR_PARTITION")

	oldest1, err1 := t.client.GetOffset(dataTopic, 1, sarama.OffsetOldest)
	newest1, err2 := t.client.GetOffset(dataTopic, 1, sarama.OffsetNewest)
	c.add("then partition 1 oldest/newest", map[string]interface{}{"oldest": oldest1, "newest": newest1, "errs": []string{errText(err1), errText(err2)}},
		err1 == nil && err2 == nil && oldest1 == perPart && newest1 == perPart, "10/10")

	// What sarama's DeleteRecords returns for an unknown topic (nil against
	// Kafka: the topic is in the answer, with per-partition errors).
	err = t.admin.DeleteRecords("tour-missing", map[int32]int64{0: 1})
	c.note("sarama: tour-missing {0: 1} (nil against Kafka)", errText(err))
	return c.outcome()
}

// The ACL methods: CreateAcls, DescribeAcls, DeleteAcls v0. Kafka without
// an authorizer answers SECURITY_DISABLED, which sarama 1.22 does not look
// at: the same request also goes raw, and only SECURITY_DISABLED is ok.
var tourResource = sarama.Resource{ResourceType: sarama.AclResourceTopic, ResourceName: dataTopic}
var tourAcl = sarama.Acl{Principal: "User:alice", Host: "*", Operation: sarama.AclOperationRead,
	PermissionType: sarama.AclPermissionAllow}

func anyFilter(version int) sarama.AclFilter {
	return sarama.AclFilter{Version: version, ResourceType: sarama.AclResourceAny, ResourcePatternTypeFilter: sarama.AclPatternAny,
		Operation: sarama.AclOperationAny, PermissionType: sarama.AclPermissionAny}
}

func msgOf(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

func (t *tour) CreateACL() (interface{}, error) {
	c := &checks{}
	err := t.admin.CreateACL(tourResource, tourAcl)
	c.add("sarama CreateACL topic tour-data User:alice * Read Allow", errText(err), err == nil,
		"nil (sarama 1.22 ignores the per-ACL error)")
	b, err := t.controller()
	if err != nil {
		return c.items, err
	}
	for _, v := range []int16{0, 1} {
		res := tourResource
		res.ResoucePatternType = sarama.AclPatternLiteral
		rsp, err := b.CreateAcls(&sarama.CreateAclsRequest{Version: v,
			AclCreations: []*sarama.AclCreation{{Resource: res, Acl: tourAcl}}})
		name := fmt.Sprintf("raw CreateAcls v%d", v)
		if err != nil {
			c.add(name, errText(err), false, "SECURITY_DISABLED")
			continue
		}
		got := []string{}
		good := len(rsp.AclCreationResponses) == 1
		for _, r := range rsp.AclCreationResponses {
			got = append(got, fmt.Sprintf("%s %q", codeName(r.Err), msgOf(r.ErrMsg)))
			good = good && r.Err == sarama.ErrSecurityDisabled
		}
		c.add(name, got, good, "[SECURITY_DISABLED]")
	}
	return c.outcome()
}

func (t *tour) ListAcls() (interface{}, error) {
	c := &checks{}
	acls, err := t.admin.ListAcls(anyFilter(0))
	c.add("sarama ListAcls any", map[string]interface{}{"err": errText(err), "acls": len(acls)}, err == nil && len(acls) == 0,
		"nil, 0 (sarama 1.22 ignores the top-level error)")
	b, err := t.controller()
	if err != nil {
		return c.items, err
	}
	for _, v := range []int{0, 1} {
		rsp, err := b.DescribeAcls(&sarama.DescribeAclsRequest{Version: v, AclFilter: anyFilter(v)})
		name := fmt.Sprintf("raw DescribeAcls v%d", v)
		if err != nil {
			c.add(name, errText(err), false, "SECURITY_DISABLED")
			continue
		}
		c.add(name, map[string]interface{}{"err": codeName(rsp.Err), "message": msgOf(rsp.ErrMsg), "resources": len(rsp.ResourceAcls)},
			rsp.Err == sarama.ErrSecurityDisabled && len(rsp.ResourceAcls) == 0, "SECURITY_DISABLED, no resources")
	}
	return c.outcome()
}

func (t *tour) DeleteACL() (interface{}, error) {
	c := &checks{}
	m, err := t.admin.DeleteACL(anyFilter(0), false)
	c.add("sarama DeleteACL any", map[string]interface{}{"err": errText(err), "matching": len(m)}, err == nil && len(m) == 0,
		"nil, 0 (sarama 1.22 ignores the per-filter error)")
	b, err := t.controller()
	if err != nil {
		return c.items, err
	}
	for _, v := range []int{0, 1} {
		f := anyFilter(v)
		rsp, err := b.DeleteAcls(&sarama.DeleteAclsRequest{Version: v, Filters: []*sarama.AclFilter{&f}})
		name := fmt.Sprintf("raw DeleteAcls v%d", v)
		if err != nil {
			c.add(name, errText(err), false, "[SECURITY_DISABLED]")
			continue
		}
		got := []string{}
		good := len(rsp.FilterResponses) == 1
		for _, r := range rsp.FilterResponses {
			got = append(got, fmt.Sprintf("%s %q, %d matching", codeName(r.Err), msgOf(r.ErrMsg), len(r.MatchingAcls)))
			good = good && r.Err == sarama.ErrSecurityDisabled && len(r.MatchingAcls) == 0
		}
		c.add(name, got, good, "[SECURITY_DISABLED, 0 matching]")
	}
	return c.outcome()
}

// ListConsumerGroups: ListGroups v0 to every broker.
func (t *tour) ListConsumerGroups() (interface{}, error) {
	c := &checks{}
	groups, err := t.admin.ListConsumerGroups()
	if err != nil {
		return nil, fmt.Errorf("ListConsumerGroups: %s", errText(err))
	}
	c.add("groups", groups, groups[closedGrp] == "consumer" && groups[liveGrp] == "consumer",
		`includes {tour-group: consumer, tour-live: consumer}`)
	return c.outcome()
}

// DescribeConsumerGroups: FindCoordinator v0 + DescribeGroups v0.
func (t *tour) DescribeConsumerGroups() (interface{}, error) {
	c := &checks{}
	descs, err := t.admin.DescribeConsumerGroups([]string{closedGrp, liveGrp, "tour-nogroup"})
	if err != nil {
		return nil, fmt.Errorf("DescribeConsumerGroups: %s", errText(err))
	}
	c.add("groups answered", len(descs), len(descs) == 3, "3")
	for _, d := range descs {
		members := map[string]interface{}{}
		for id, m := range d.Members {
			mm := map[string]interface{}{"client_id": m.ClientId, "client_host": m.ClientHost}
			if meta, err := m.GetMemberMetadata(); err != nil {
				mm["metadata"] = "undecodable: " + err.Error()
			} else if meta != nil {
				mm["metadata_topics"] = meta.Topics
			}
			if a, err := m.GetMemberAssignment(); err != nil {
				mm["assignment"] = "undecodable: " + err.Error()
			} else if a != nil {
				mm["assignment"] = a.Topics
			}
			members[id] = mm
		}
		got := map[string]interface{}{"err": codeName(d.Err), "state": d.State, "protocol_type": d.ProtocolType,
			"protocol": d.Protocol, "members": members}
		switch d.GroupId {
		case closedGrp:
			c.add(closedGrp, got, d.Err == sarama.ErrNoError && d.State == "Empty" && d.ProtocolType == "consumer" &&
				d.Protocol == "" && len(d.Members) == 0, `NONE, Empty, protocol type "consumer", protocol "", no members`)
		case "tour-nogroup":
			c.add("tour-nogroup", got, d.Err == sarama.ErrNoError && d.State == "Dead" && d.ProtocolType == "" &&
				d.Protocol == "" && len(d.Members) == 0, `NONE, Dead, protocol type "", protocol "", no members`)
		case liveGrp:
			good := d.Err == sarama.ErrNoError && d.State == "Stable" && d.ProtocolType == "consumer" &&
				d.Protocol == "range" && len(d.Members) == 1
			var host string
			for id, m := range d.Members {
				good = good && id == t.live.h.member && m.ClientId == "sluice-sarama-admin-tour"
				host = m.ClientHost
				a, aerr := m.GetMemberAssignment()
				good = good && aerr == nil && a != nil && len(a.Topics[dataTopic]) == 3
				meta, merr := m.GetMemberMetadata()
				good = good && merr == nil && meta != nil && len(meta.Topics) == 1 && meta.Topics[0] == dataTopic
			}
			c.add(liveGrp, got, good, `NONE, Stable, "consumer", "range", 1 member (its id, client id sluice-sarama-admin-tour, metadata [tour-data], assignment tour-data [0 1 2])`)
			c.add("tour-live member client_host", host, host == "/127.0.0.1", `"/127.0.0.1" (Kafka's InetAddress.toString)`)
		default:
			c.add("unexpected group "+d.GroupId, got, false, "only the three asked for")
		}
	}
	return c.outcome()
}

func offsetsOf(rsp *sarama.OffsetFetchResponse, topic string) map[int32]string {
	out := map[int32]string{}
	for p, b := range rsp.Blocks[topic] {
		out[p] = fmt.Sprintf("%d %q %s", b.Offset, b.Metadata, codeName(b.Err))
	}
	return out
}

// ListConsumerGroupOffsets: FindCoordinator v0 + OffsetFetch v1.
func (t *tour) ListConsumerGroupOffsets() (interface{}, error) {
	return groupOffsets(t.admin, true)
}

func groupOffsets(ca sarama.ClusterAdmin, all bool) (interface{}, error) {
	c := &checks{}
	want := `{0: 10 "tour" NONE, 1: 10 "tour" NONE, 2: 10 "tour" NONE}`
	groups := []string{liveGrp}
	if all {
		groups = []string{closedGrp, liveGrp}
	}
	for _, g := range groups {
		rsp, err := ca.ListConsumerGroupOffsets(g, map[string][]int32{dataTopic: {0, 1, 2}})
		if err != nil {
			c.add(g, errText(err), false, want)
			continue
		}
		got := offsetsOf(rsp, dataTopic)
		good := rsp.Err == sarama.ErrNoError && len(got) == 3
		for p := int32(0); p < 3; p++ {
			good = good && got[p] == `10 "tour" NONE`
		}
		c.add(g+" tour-data [0 1 2]", map[string]interface{}{"err": codeName(rsp.Err), "offsets": got}, good, want)
	}
	if !all {
		return c.outcome()
	}
	rsp, err := ca.ListConsumerGroupOffsets("tour-nogroup", map[string][]int32{dataTopic: {0}})
	if err != nil {
		c.add("tour-nogroup", errText(err), false, `{0: -1 "" NONE}`)
	} else {
		got := offsetsOf(rsp, dataTopic)
		c.add("tour-nogroup tour-data [0]", got, len(got) == 1 && got[0] == `-1 "" NONE`, `{0: -1 "" NONE}`)
	}
	rsp, err = ca.ListConsumerGroupOffsets(closedGrp, map[string][]int32{dataTopic: {7}, "tour-missing": {0}})
	if err != nil {
		c.add("tour-group, unknown partitions", errText(err), false, "-1, no error")
	} else {
		a, b := offsetsOf(rsp, dataTopic), offsetsOf(rsp, "tour-missing")
		c.add("tour-group tour-data [7] + tour-missing [0]", map[string]interface{}{dataTopic: a, "tour-missing": b},
			a[7] == `-1 "" NONE` && b[0] == `-1 "" NONE`, `{tour-data: {7: -1 "" NONE}, tour-missing: {0: -1 "" NONE}}`)
	}
	return c.outcome()
}

// DeleteConsumerGroup: not in sarama 1.22's ClusterAdmin. Later sarama
// sends DeleteGroups v0 to the group's coordinator; so does this, through
// sarama 1.22's Broker.
func (t *tour) DeleteConsumerGroup() (interface{}, error) {
	c := &checks{}
	c.note("sarama 1.22 ClusterAdmin has DeleteConsumerGroup", false)
	del := func(g string) (sarama.KError, error) {
		b, err := t.client.Coordinator(g)
		if err != nil {
			return -1, err
		}
		rsp, err := b.DeleteGroups(&sarama.DeleteGroupsRequest{Groups: []string{g}})
		if err != nil {
			return -1, err
		}
		code, ok := rsp.GroupErrorCodes[g]
		if !ok {
			return -1, fmt.Errorf("group missing from the answer (%v)", rsp.GroupErrorCodes)
		}
		return code, nil
	}
	for _, x := range []struct {
		g    string
		want sarama.KError
	}{{liveGrp, sarama.ErrNonEmptyGroup}, {closedGrp, sarama.ErrNoError}, {"tour-nogroup", sarama.ErrGroupIDNotFound}} {
		code, err := del(x.g)
		got := codeName(code)
		if err != nil {
			got = errText(err)
		}
		c.add("DeleteGroups v0 ["+x.g+"]", got, err == nil && code == x.want, codeName(x.want))
	}
	groups, err := t.admin.ListConsumerGroups()
	_, closedThere := groups[closedGrp]
	_, liveThere := groups[liveGrp]
	c.add("then ListConsumerGroups", map[string]interface{}{"err": errText(err), "groups": groups},
		err == nil && !closedThere && liveThere, "tour-live, not tour-group")
	rsp, err := t.admin.ListConsumerGroupOffsets(closedGrp, map[string][]int32{dataTopic: {0}})
	if err != nil {
		c.add("then tour-group offsets", errText(err), false, `{0: -1 "" NONE}`)
	} else {
		got := offsetsOf(rsp, dataTopic)
		c.add("then tour-group offsets", got, got[0] == `-1 "" NONE`, `{0: -1 "" NONE}`)
	}
	return c.outcome()
}

// DeleteTopic: DeleteTopics v1 (v0 as 0.10.x).
func (t *tour) DeleteTopic() (interface{}, error) {
	c := &checks{}
	err := t.admin.DeleteTopic("tour-created")
	expectCode(c, "tour-created", err, sarama.ErrNoError)
	last, werr := waitPartitions(t.admin, "tour-created", 0, 10*time.Second)
	c.add("then described", last, werr == nil, "UNKNOWN_TOPIC_OR_PARTITION")
	err = t.admin.DeleteTopic("tour-created")
	expectCode(c, "tour-created again", err, sarama.ErrUnknownTopicOrPartition)
	err = t.admin.DeleteTopic("tour-missing")
	expectCode(c, "tour-missing", err, sarama.ErrUnknownTopicOrPartition)
	topics, lerr := t.admin.ListTopics()
	_, there := topics["tour-created"]
	c.add("then ListTopics has tour-created", map[string]interface{}{"err": errText(lerr), "present": there}, lerr == nil && !there, "false")
	return c.outcome()
}

// DescribeCluster: Metadata v0 (all topics); sarama reads no controller id
// from v0 and gives -1.
func (t *tour) DescribeCluster() (interface{}, error) {
	c := &checks{}
	brokers, controller, err := t.admin.DescribeCluster()
	if err != nil {
		return nil, fmt.Errorf("DescribeCluster: %s", errText(err))
	}
	got := []string{}
	for _, b := range brokers {
		got = append(got, fmt.Sprintf("%d@%s", b.ID(), b.Addr()))
	}
	c.add("brokers", got, len(got) == 1 && got[0] == "0@"+bootstrap, "[0@"+bootstrap+"]")
	c.add("controller id", controller, controller == -1, "-1 (sarama 1.22: none in Metadata v0)")
	return c.outcome()
}

// Controller is on sarama 1.22's clusterAdmin though not in the interface.
func (t *tour) Controller() (interface{}, error) {
	c := &checks{}
	ctl, ok := t.admin.(interface {
		Controller() (*sarama.Broker, error)
	})
	if !ok {
		return nil, fmt.Errorf("no Controller method")
	}
	b, err := ctl.Controller()
	if err != nil {
		return nil, fmt.Errorf("Controller: %s", errText(err))
	}
	c.add("controller", fmt.Sprintf("%d@%s", b.ID(), b.Addr()), b.ID() == 0 && b.Addr() == bootstrap, "0@"+bootstrap)
	return c.outcome()
}

// versionTour runs the methods whose requests follow config.Version.
// main is the V2_1_0_0 admin, for checks that sarama cannot make at v
// (ListTopics needs DescribeConfigs, which sarama refuses below 0.11).
func versionTour(main sarama.ClusterAdmin, v sarama.KafkaVersion, tag string) {
	ca, err := sarama.NewClusterAdmin([]string{bootstrap}, newConfig(v))
	if err != nil {
		record("NewClusterAdmin@"+tag, outcome{Error: errText(err)})
		return
	}
	defer ca.Close()
	topic := "tour-v" + strings.Replace(tag, ".", "-", -1)
	missing := "tour-missing-v" + strings.Replace(tag, ".", "-", -1)
	createVersion, deleteVersion, metaVersion := 2, 1, 5
	switch {
	case !v.IsAtLeast(sarama.V0_11_0_0):
		createVersion, deleteVersion, metaVersion = 0, 0, 0
	case !v.IsAtLeast(sarama.V1_0_0_0):
		createVersion, metaVersion = 1, 4
	}
	run(fmt.Sprintf("CreateTopic@%s (CreateTopics v%d)", tag, createVersion), func() (interface{}, error) {
		c := &checks{}
		err := ca.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false)
		expectCode(c, topic+", 2 partitions", err, sarama.ErrNoError)
		last, werr := waitPartitions(ca, topic, 2, 10*time.Second)
		c.add("then described", last, werr == nil, "NONE, 2 partitions")
		err = ca.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false)
		expectCode(c, topic+" again", err, sarama.ErrTopicAlreadyExists)
		err = ca.CreateTopic("tour-rf3-"+topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 3}, false)
		expectCode(c, "replication factor 3", err, sarama.ErrInvalidReplicationFactor)
		return c.outcome()
	})
	run(fmt.Sprintf("DescribeTopics@%s (Metadata v%d)", tag, metaVersion), func() (interface{}, error) {
		c := &checks{}
		meta, err := ca.DescribeTopics([]string{topic, missing})
		if err != nil {
			return nil, fmt.Errorf("DescribeTopics: %s", errText(err))
		}
		for _, m := range meta {
			got := fmt.Sprintf("%s, %d partitions", codeName(m.Err), len(m.Partitions))
			switch {
			case m.Name == topic:
				c.add(topic, got, got == "NONE, 2 partitions", "NONE, 2 partitions")
			case m.Name == missing && metaVersion >= 4:
				c.add(missing, got, m.Err == sarama.ErrUnknownTopicOrPartition, "UNKNOWN_TOPIC_OR_PARTITION")
			case m.Name == missing:
				// Metadata v0 cannot say "do not create": Kafka with
				// auto.create.topics.enable creates it (LEADER_NOT_AVAILABLE).
				c.note(missing+" (v0 auto-creates on Kafka: LEADER_NOT_AVAILABLE)", got)
			}
		}
		c.add("topics answered", len(meta), len(meta) == 2, "2")
		return c.outcome()
	})
	run(fmt.Sprintf("ListConsumerGroupOffsets@%s (OffsetFetch v1)", tag), func() (interface{}, error) {
		return groupOffsets(ca, false)
	})
	run(fmt.Sprintf("DeleteTopic@%s (DeleteTopics v%d)", tag, deleteVersion), func() (interface{}, error) {
		c := &checks{}
		err := ca.DeleteTopic(topic)
		expectCode(c, topic, err, sarama.ErrNoError)
		if metaVersion > 0 {
			last, werr := waitPartitions(ca, topic, 0, 10*time.Second)
			c.add("then described", last, werr == nil, "UNKNOWN_TOPIC_OR_PARTITION")
		} else {
			// Metadata v0 for the topic would create it again: poll the
			// all-topics listing instead (through the 2.1 admin).
			stop := time.Now().Add(10 * time.Second)
			there := true
			var lerr error
			for there && time.Now().Before(stop) {
				var topics map[string]sarama.TopicDetail
				topics, lerr = main.ListTopics()
				_, there = topics[topic]
				if there || lerr != nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
			c.add("then in ListTopics", map[string]interface{}{"present": there, "err": errText(lerr)}, !there && lerr == nil, "absent")
		}
		err = ca.DeleteTopic("tour-never-" + topic)
		expectCode(c, "unknown topic", err, sarama.ErrUnknownTopicOrPartition)
		if metaVersion == 0 {
			_ = main.DeleteTopic(missing) // auto-created by Metadata v0, if so
		}
		return c.outcome()
	})
}

func main() {
	if len(os.Args) > 1 {
		bootstrap = os.Args[1]
	}
	go func() {
		time.Sleep(tourLimit)
		record("tour", outcome{Error: fmt.Sprintf("the tour did not finish within %v", tourLimit)})
		emit()
		os.Exit(1)
	}()

	conf := newConfig(sarama.V2_1_0_0)
	ca, err := sarama.NewClusterAdmin([]string{bootstrap}, conf)
	if err != nil {
		record("NewClusterAdmin", outcome{Error: errText(err)})
		os.Exit(emit())
	}
	client, err := sarama.NewClient([]string{bootstrap}, newConfig(sarama.V2_1_0_0))
	if err != nil {
		record("NewClient", outcome{Error: errText(err)})
		os.Exit(emit())
	}
	t := &tour{conf: conf, admin: ca, client: client}

	run("stage", t.stage)
	resultsMu.Lock()
	staged := results["stage"].OK
	resultsMu.Unlock()
	if !staged {
		if t.live != nil {
			t.live.stop(10 * time.Second)
		}
		os.Exit(emit())
	}

	run("CreateTopic", t.CreateTopic)
	run("ListTopics", t.ListTopics)
	run("DescribeTopics", t.DescribeTopics)
	run("DescribeConfig", t.DescribeConfig)
	run("AlterConfig", t.AlterConfig)
	run("CreatePartitions", t.CreatePartitions)
	run("DeleteRecords", t.DeleteRecords)
	run("CreateACL", t.CreateACL)
	run("ListAcls", t.ListAcls)
	run("DeleteACL", t.DeleteACL)
	run("ListConsumerGroups", t.ListConsumerGroups)
	run("DescribeConsumerGroups", t.DescribeConsumerGroups)
	run("ListConsumerGroupOffsets", t.ListConsumerGroupOffsets)
	run("DeleteConsumerGroup", t.DeleteConsumerGroup)
	run("DeleteTopic", t.DeleteTopic)
	run("DescribeCluster", t.DescribeCluster)
	run("Controller", t.Controller)

	versionTour(ca, sarama.V1_0_0_0, "1.0.0")
	versionTour(ca, sarama.V0_11_0_0, "0.11.0")
	versionTour(ca, sarama.V0_10_2_0, "0.10.2")

	run("stage: tour-live leaves", func() (interface{}, error) {
		return map[string]interface{}{"errors": t.live.errs}, t.live.stop(15 * time.Second)
	})
	run("Close", func() (interface{}, error) {
		client.Close()
		return nil, ca.Close()
	})
	os.Exit(emit())
}
