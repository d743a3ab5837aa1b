// segmentio/kafka-go (Debian's golang-github-segmentio-kafka-go-dev, 0.2.1),
// a Go client with its own protocol code that asks no ApiVersions and
// speaks fixed old versions (Produce v2 with message format 1, Fetch v2,
// Metadata v1, JoinGroup v1, OffsetCommit v2), driven by
// tests/go_clients.rs.
//
//	kafka-go-client BOOTSTRAP TOPIC GROUP COUNT
//
// writes COUNT keyed messages with its Writer, then reads them with two
// Readers of GROUP, committing each message, and prints one JSON line:
// {"written": n, "consumed": ["key=value@partition/offset", ...]}. It exits
// 1 with the reason on stderr when something fails.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// Every wait is bounded: a client that hangs fails the test, not CI.
const deadline = 60 * time.Second

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kafka-go-client:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 4 {
		return fmt.Errorf("usage: kafka-go-client BOOTSTRAP TOPIC GROUP COUNT")
	}
	brokers := strings.Split(args[0], ",")
	topic, group := args[1], args[2]
	count, err := strconv.Atoi(args[3])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := write(ctx, brokers, topic, count); err != nil {
		return err
	}
	consumed, err := read(ctx, brokers, topic, group, count)
	if err != nil {
		return err
	}
	out, err := json.Marshal(map[string]interface{}{"written": count, "consumed": consumed})
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

func write(ctx context.Context, brokers []string, topic string, count int) error {
	w := kafka.NewWriter(kafka.WriterConfig{
		Brokers:      brokers,
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		BatchSize:    50,
		BatchTimeout: 10 * time.Millisecond,
	})
	msgs := make([]kafka.Message, count)
	for i := range msgs {
		msgs[i] = kafka.Message{
			Key:   []byte(fmt.Sprintf("k-%d", i%13)),
			Value: []byte(fmt.Sprintf("v-%05d", i)),
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("write: %v", err)
	}
	return w.Close()
}

// read runs two members of group until count distinct messages arrived,
// committing each one as it is read.
func read(ctx context.Context, brokers []string, topic, group string, count int) ([]string, error) {
	var (
		mu       sync.Mutex
		consumed []string
		seen     = map[string]bool{}
		done     = make(chan struct{})
		closed   bool
		errs     = make(chan error, 2)
	)
	readCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var readers []*kafka.Reader
	for i := 0; i < 2; i++ {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:           brokers,
			GroupID:           group,
			Topic:             topic,
			MinBytes:          1,
			MaxBytes:          1 << 20,
			MaxWait:           100 * time.Millisecond,
			HeartbeatInterval: time.Second,
			SessionTimeout:    10 * time.Second,
			RebalanceTimeout:  10 * time.Second,
		})
		readers = append(readers, r)
		wg.Add(1)
		go func(r *kafka.Reader) {
			defer wg.Done()
			for {
				m, err := r.FetchMessage(readCtx)
				if err != nil {
					if readCtx.Err() == nil {
						errs <- err
					}
					return
				}
				if err := r.CommitMessages(readCtx, m); err != nil {
					if readCtx.Err() == nil {
						errs <- fmt.Errorf("commit: %v", err)
					}
					return
				}
				mu.Lock()
				consumed = append(consumed, fmt.Sprintf("%s=%s@%d/%d", m.Key, m.Value, m.Partition, m.Offset))
				seen[string(m.Value)] = true
				if !closed && len(seen) == count {
					closed = true
					close(done)
				}
				mu.Unlock()
			}
		}(r)
	}
	select {
	case <-done:
	case err := <-errs:
		return nil, err
	case <-ctx.Done():
		return nil, fmt.Errorf("read only %d distinct of %d", len(seen), count)
	}
	stop()
	wg.Wait()
	for _, r := range readers {
		if err := r.Close(); err != nil {
			return nil, fmt.Errorf("close: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return consumed, nil
}
