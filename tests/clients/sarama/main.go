// Sarama (Debian's golang-github-shopify-sarama-dev, 1.22), a Go client with
// its own protocol code, driven by tests/go_clients.rs. It speaks the
// request versions and message formats of the Kafka version it is told
// (0.8.2 is its default: message format 0, Produce v0, Fetch v0).
//
//	sarama-client produce-consume BOOTSTRAP TOPIC VERSION CODEC COUNT [idempotent]
//	sarama-client group BOOTSTRAP TOPIC GROUP VERSION COUNT
//	sarama-client admin BOOTSTRAP TOPIC VERSION
//	sarama-client failover BOOTSTRAP TOPIC COUNT
//
// Each prints one JSON line the test checks and exits 0, or exits 1 with
// the reason on stderr. failover first prints READY and waits for a line on
// stdin (the test kills the partition's leader meanwhile).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

// Every wait is bounded: a client that hangs fails the test, not CI.
const deadline = 60 * time.Second

func main() {
	if len(os.Args) < 2 {
		fail("usage: sarama-client produce-consume|group|admin ...")
	}
	var err error
	switch os.Args[1] {
	case "produce-consume":
		err = produceConsume(os.Args[2:])
	case "group":
		err = group(os.Args[2:])
	case "admin":
		err = admin(os.Args[2:])
	case "failover":
		err = failover(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "sarama-client:", msg)
	os.Exit(1)
}

func emit(v interface{}) {
	out, err := json.Marshal(v)
	if err != nil {
		fail(err.Error())
	}
	fmt.Println(string(out))
}

func config(version string) (*sarama.Config, error) {
	v, err := sarama.ParseKafkaVersion(version)
	if err != nil {
		return nil, err
	}
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = "sluice-sarama-test"
	c.Metadata.Retry.Max = 20
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	return c, nil
}

// brokers splits a bootstrap list ("host:port,host:port").
func brokers(bootstrap string) []string {
	return strings.Split(bootstrap, ",")
}

func codec(name string) (sarama.CompressionCodec, error) {
	switch name {
	case "none":
		return sarama.CompressionNone, nil
	case "gzip":
		return sarama.CompressionGZIP, nil
	case "snappy":
		return sarama.CompressionSnappy, nil
	case "lz4":
		return sarama.CompressionLZ4, nil
	case "zstd":
		return sarama.CompressionZSTD, nil
	}
	return 0, fmt.Errorf("unknown codec %q", name)
}

type record struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Header    string `json:"header,omitempty"`
}

// produceConsume sends COUNT keyed messages through the async producer
// (batched, compressed with CODEC), then reads every partition from the
// oldest offset until it has them all back.
func produceConsume(args []string) error {
	if len(args) < 5 {
		return fmt.Errorf("produce-consume BOOTSTRAP TOPIC VERSION CODEC COUNT [idempotent]")
	}
	bootstrap, topic, version, codecName := args[0], args[1], args[2], args[3]
	count, err := strconv.Atoi(args[4])
	if err != nil {
		return err
	}
	idempotent := len(args) > 5 && args[5] == "idempotent"
	c, err := config(version)
	if err != nil {
		return err
	}
	if c.Producer.Compression, err = codec(codecName); err != nil {
		return err
	}
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Flush.Messages = 25
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	c.Producer.Partitioner = sarama.NewHashPartitioner
	if idempotent {
		c.Producer.Idempotent = true
		c.Net.MaxOpenRequests = 1
		c.Producer.Retry.Max = 10
	}
	withHeaders := c.Version.IsAtLeast(sarama.V0_11_0_0)

	client, err := sarama.NewClient(brokers(bootstrap), c)
	if err != nil {
		return fmt.Errorf("client: %v", err)
	}
	defer client.Close()
	acked, err := produce(client, topic, count, withHeaders)
	if err != nil {
		return err
	}
	consumed, err := consumeAll(client, topic, count)
	if err != nil {
		return err
	}
	emit(map[string]interface{}{"acked": acked, "consumed": consumed})
	return nil
}

func produce(client sarama.Client, topic string, count int, withHeaders bool) ([]record, error) {
	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("producer: %v", err)
	}
	go func() {
		for i := 0; i < count; i++ {
			msg := &sarama.ProducerMessage{
				Topic: topic,
				Key:   sarama.StringEncoder(fmt.Sprintf("k-%d", i%17)),
				Value: sarama.StringEncoder(fmt.Sprintf("v-%05d", i)),
			}
			if withHeaders {
				msg.Headers = []sarama.RecordHeader{{Key: []byte("n"), Value: []byte(strconv.Itoa(i))}}
			}
			producer.Input() <- msg
		}
	}()
	var acked []record
	timeout := time.After(deadline)
	for len(acked) < count {
		select {
		case m := <-producer.Successes():
			key, _ := m.Key.Encode()
			value, _ := m.Value.Encode()
			acked = append(acked, record{Key: string(key), Value: string(value), Partition: m.Partition, Offset: m.Offset})
		case e := <-producer.Errors():
			producer.AsyncClose()
			return nil, fmt.Errorf("send failed: %v", e.Err)
		case <-timeout:
			return nil, fmt.Errorf("only %d of %d sends acknowledged", len(acked), count)
		}
	}
	if err := producer.Close(); err != nil {
		return nil, fmt.Errorf("producer close: %v", err)
	}
	sortRecords(acked)
	return acked, nil
}

func consumeAll(client sarama.Client, topic string, count int) ([]record, error) {
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("consumer: %v", err)
	}
	defer consumer.Close()
	partitions, err := consumer.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("partitions: %v", err)
	}
	messages := make(chan *sarama.ConsumerMessage, count)
	errors := make(chan error, len(partitions))
	for _, p := range partitions {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, fmt.Errorf("consume partition %d: %v", p, err)
		}
		defer pc.Close()
		go func(pc sarama.PartitionConsumer) {
			for m := range pc.Messages() {
				messages <- m
			}
		}(pc)
		go func(pc sarama.PartitionConsumer) {
			for e := range pc.Errors() {
				errors <- e
			}
		}(pc)
	}
	var consumed []record
	timeout := time.After(deadline)
	for len(consumed) < count {
		select {
		case m := <-messages:
			r := record{Key: string(m.Key), Value: string(m.Value), Partition: m.Partition, Offset: m.Offset}
			for _, h := range m.Headers {
				r.Header = string(h.Key) + "=" + string(h.Value)
			}
			consumed = append(consumed, r)
		case e := <-errors:
			return nil, fmt.Errorf("consume: %v", e)
		case <-timeout:
			return nil, fmt.Errorf("consumed only %d of %d", len(consumed), count)
		}
	}
	sortRecords(consumed)
	return consumed, nil
}

func sortRecords(rs []record) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Partition != rs[j].Partition {
			return rs[i].Partition < rs[j].Partition
		}
		return rs[i].Offset < rs[j].Offset
	})
}

// group consumes TOPIC with two members of GROUP, marking every message,
// until COUNT have arrived; it then closes both (committing) and reads the
// group's committed offsets back through the admin client.
func group(args []string) error {
	if len(args) < 5 {
		return fmt.Errorf("group BOOTSTRAP TOPIC GROUP VERSION COUNT")
	}
	bootstrap, topic, groupID, version := args[0], args[1], args[2], args[3]
	count, err := strconv.Atoi(args[4])
	if err != nil {
		return err
	}
	c, err := config(version)
	if err != nil {
		return err
	}
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.CommitInterval = 100 * time.Millisecond

	h := &handler{want: count, seen: map[string]int{}, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var wg sync.WaitGroup
	var members []sarama.ConsumerGroup
	memberErrs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		cg, err := sarama.NewConsumerGroup(brokers(bootstrap), groupID, c)
		if err != nil {
			return fmt.Errorf("consumer group: %v", err)
		}
		members = append(members, cg)
		go func(cg sarama.ConsumerGroup) {
			for e := range cg.Errors() {
				fmt.Fprintln(os.Stderr, "sarama-client: group error:", e)
			}
		}(cg)
		wg.Add(1)
		go func(cg sarama.ConsumerGroup) {
			defer wg.Done()
			// Consume returns at each rebalance; a member rejoins until done.
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil {
					memberErrs <- err
					return
				}
			}
		}(cg)
	}
	select {
	case <-h.done:
	case err := <-memberErrs:
		return fmt.Errorf("consume: %v", err)
	case <-ctx.Done():
		return fmt.Errorf("consumed only %d distinct of %d", h.distinct(), count)
	}
	cancel()
	wg.Wait()
	for _, cg := range members {
		if err := cg.Close(); err != nil {
			return fmt.Errorf("close: %v", err)
		}
	}
	committed, err := committedOffsets(bootstrap, topic, groupID, c)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	emit(map[string]interface{}{
		"consumed":    h.values,
		"members":     h.memberCount(),
		"generations": h.generations,
		"committed":   committed,
	})
	return nil
}

type handler struct {
	mu          sync.Mutex
	want        int
	seen        map[string]int
	values      []string
	members     map[string]bool
	generations []int32
	done        chan struct{}
	closed      bool
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.members == nil {
		h.members = map[string]bool{}
	}
	h.members[s.MemberID()] = true
	h.generations = append(h.generations, s.GenerationID())
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.mu.Lock()
		v := string(m.Value)
		h.seen[v]++
		h.values = append(h.values, v)
		if !h.closed && len(h.seen) == h.want {
			h.closed = true
			close(h.done)
		}
		h.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func (h *handler) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

func (h *handler) memberCount() int { return len(h.members) }

func committedOffsets(bootstrap, topic, groupID string, c *sarama.Config) (map[string]int64, error) {
	admin, err := sarama.NewClusterAdmin(brokers(bootstrap), c)
	if err != nil {
		return nil, fmt.Errorf("admin: %v", err)
	}
	defer admin.Close()
	client, err := sarama.NewClient(brokers(bootstrap), c)
	if err != nil {
		return nil, fmt.Errorf("client: %v", err)
	}
	defer client.Close()
	partitions, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("partitions: %v", err)
	}
	resp, err := admin.ListConsumerGroupOffsets(groupID, map[string][]int32{topic: partitions})
	if err != nil {
		return nil, fmt.Errorf("list group offsets: %v", err)
	}
	out := map[string]int64{}
	for p, b := range resp.Blocks[topic] {
		if b.Err != sarama.ErrNoError {
			return nil, fmt.Errorf("offset of partition %d: %v", p, b.Err)
		}
		out[strconv.Itoa(int(p))] = b.Offset
	}
	return out, nil
}

// admin creates TOPIC with a config, reads it back, grows it, lists groups
// and topics, deletes it.
func admin(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("admin BOOTSTRAP TOPIC VERSION")
	}
	bootstrap, topic, version := args[0], args[1], args[2]
	c, err := config(version)
	if err != nil {
		return err
	}
	ca, err := sarama.NewClusterAdmin(brokers(bootstrap), c)
	if err != nil {
		return fmt.Errorf("admin: %v", err)
	}
	defer ca.Close()
	retention := "3600000"
	err = ca.CreateTopic(topic, &sarama.TopicDetail{
		NumPartitions:     2,
		ReplicationFactor: 1,
		ConfigEntries:     map[string]*string{"retention.ms": &retention},
	}, false)
	if err != nil {
		return fmt.Errorf("create topic: %v", err)
	}
	again := ca.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
	entries, err := ca.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	if err != nil {
		return fmt.Errorf("describe config: %v", err)
	}
	configs := map[string]string{}
	for _, e := range entries {
		configs[e.Name] = e.Value
	}
	// AlterConfigs (v0) replaces the topic's whole set of configs.
	longer, compact := "7200000", "compact"
	altered := map[string]*string{"retention.ms": &longer, "cleanup.policy": &compact}
	if err := ca.AlterConfig(sarama.TopicResource, topic, altered, false); err != nil {
		return fmt.Errorf("alter config: %v", err)
	}
	entries, err = ca.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	if err != nil {
		return fmt.Errorf("describe config: %v", err)
	}
	alteredConfigs := map[string]string{}
	for _, e := range entries {
		if !e.Default {
			alteredConfigs[e.Name] = e.Value
		}
	}
	if err := ca.CreatePartitions(topic, 4, nil, false); err != nil {
		return fmt.Errorf("create partitions: %v", err)
	}
	meta, err := waitPartitions(ca, topic, 4)
	if err != nil {
		return err
	}
	if _, _, err := ca.DescribeCluster(); err != nil {
		return fmt.Errorf("describe cluster: %v", err)
	}
	if _, err := ca.ListConsumerGroups(); err != nil {
		return fmt.Errorf("list groups: %v", err)
	}
	if err := ca.DeleteTopic(topic); err != nil {
		return fmt.Errorf("delete topic: %v", err)
	}
	afterDelete, err := ca.DescribeTopics([]string{topic})
	if err != nil {
		return fmt.Errorf("describe after delete: %v", err)
	}
	againErr := ""
	if again != nil {
		againErr = again.Error()
	}
	emit(map[string]interface{}{
		"create_again_error": againErr,
		"configs":            configs,
		"altered_configs":    alteredConfigs,
		"partitions":         len(meta.Partitions),
		"after_delete_error": afterDelete[0].Err.Error(),
	})
	return nil
}

func waitPartitions(ca sarama.ClusterAdmin, topic string, n int) (*sarama.TopicMetadata, error) {
	stop := time.Now().Add(deadline)
	for {
		meta, err := ca.DescribeTopics([]string{topic})
		if err == nil && len(meta) == 1 && len(meta[0].Partitions) == n {
			return meta[0], nil
		}
		if time.Now().After(stop) {
			return nil, fmt.Errorf("%s never had %d partitions (%v)", topic, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// failover sends half of COUNT values to TOPIC's one partition through an
// idempotent producer (Kafka 2.1's versions), says READY, waits for a line,
// sends the rest (re-routing to the partition's new leader), then reads the
// partition back.
func failover(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("failover BOOTSTRAP TOPIC COUNT")
	}
	bootstrap, topic := args[0], args[1]
	count, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	c, err := config("2.1.0")
	if err != nil {
		return err
	}
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	c.Net.MaxOpenRequests = 1
	// An election takes seconds: retry for up to 15 s.
	c.Producer.Retry.Max = 60
	c.Producer.Retry.Backoff = 250 * time.Millisecond
	client, err := sarama.NewClient(brokers(bootstrap), c)
	if err != nil {
		return fmt.Errorf("client: %v", err)
	}
	defer client.Close()
	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return fmt.Errorf("producer: %v", err)
	}
	values := make([]string, count)
	for i := range values {
		values[i] = fmt.Sprintf("v-%05d", i)
	}
	acked, failed := sendInOrder(producer, topic, values[:count/2])
	fmt.Println("READY")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("stdin: %v", err)
	}
	more, moreFailed := sendInOrder(producer, topic, values[count/2:])
	acked = append(acked, more...)
	failed += moreFailed
	if err := producer.Close(); err != nil {
		return fmt.Errorf("producer close: %v", err)
	}
	records, err := consumeAll(client, topic, len(acked))
	if err != nil {
		return err
	}
	consumed := make([]string, 0, len(records))
	for _, r := range records {
		consumed = append(consumed, r.Value)
	}
	emit(map[string]interface{}{"acked": acked, "failed": failed, "consumed": consumed})
	return nil
}

// sendInOrder sends values and returns the acknowledged ones in the order
// sent, and how many failed.
func sendInOrder(producer sarama.AsyncProducer, topic string, values []string) ([]string, int) {
	for _, v := range values {
		producer.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)}
	}
	ok := map[string]bool{}
	failed := 0
	timeout := time.After(deadline)
	for len(ok)+failed < len(values) {
		select {
		case m := <-producer.Successes():
			value, _ := m.Value.Encode()
			ok[string(value)] = true
		case e := <-producer.Errors():
			fmt.Fprintln(os.Stderr, "sarama-client: delivery failed:", e.Err)
			failed++
		case <-timeout:
			return nil, len(values)
		}
	}
	acked := make([]string, 0, len(ok))
	for _, v := range values {
		if ok[v] {
			acked = append(acked, v)
		}
	}
	return acked, failed
}
