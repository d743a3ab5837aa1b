import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** The Java client's producer and consumers, as an application uses them. */
final class Clients {
    /** Every wait is bounded: a client that hangs fails the test, not CI. */
    static final long DEADLINE_MS = 60_000;
    static final int ABORTED = 20;

    private Clients() {}

    static Properties producerProps(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("linger.ms", "5");
        p.put("delivery.timeout.ms", "120000");
        return p;
    }

    static Properties consumerProps(String bootstrap, String group) {
        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        if (group != null) c.put("group.id", group);
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        return c;
    }

    /** produce-consume BOOTSTRAP TOPIC GROUP PROTOCOL: the producer's
     * defaults (idempotent, acks=all), once per compression codec, COUNT
     * keyed values with a header each; then a group consumer (group.protocol
     * PROTOCOL: classic or consumer) reads them all and commits; a second
     * member of the group started afterwards finds nothing left. Prints
     * {"sent": [values], "consumed": [values], "keys_in_order": bool,
     * "headers_seen": n, "after_commit": n, "producer_ids": n}, the last
     * the distinct producer ids DescribeProducers finds on the topic (each
     * producer, idempotent by default, has its own). */
    static Map<String, Object> produceConsume(String bootstrap, String topic, String group, String protocol)
            throws Exception {
        int perCodec = 100;
        List<String> sent = new ArrayList<>();
        for (String codec : new String[] {"none", "gzip", "snappy", "lz4", "zstd"}) {
            Properties p = producerProps(bootstrap);
            p.put("compression.type", codec);
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
                List<Future<RecordMetadata>> acks = new ArrayList<>();
                for (int i = 0; i < perCodec; i++) {
                    String value = codec + "-" + String.format("%03d", i);
                    ProducerRecord<String, String> record =
                            new ProducerRecord<>(topic, "key-" + (i % 7), value);
                    record.headers().add("codec", codec.getBytes(StandardCharsets.UTF_8));
                    acks.add(producer.send(record));
                    sent.add(value);
                }
                for (Future<RecordMetadata> ack : acks) ack.get();
            }
        }

        Properties c = consumerProps(bootstrap, group);
        c.put("group.protocol", protocol);
        List<String> consumed = new ArrayList<>();
        Map<String, String> lastByKey = new HashMap<>();
        boolean keysInOrder = true;
        int headersSeen = 0;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (consumed.size() < sent.size() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    consumed.add(r.value());
                    // Values of one key are sent in order per codec; per
                    // key, a later codec's values come after an earlier's.
                    String previous = lastByKey.put(r.key(), r.value());
                    if (previous != null && sent.indexOf(previous) > sent.indexOf(r.value())) {
                        keysInOrder = false;
                    }
                    Header h = r.headers().lastHeader("codec");
                    if (h != null && r.value().startsWith(new String(h.value(), StandardCharsets.UTF_8) + "-")) {
                        headersSeen++;
                    }
                }
            }
            consumer.commitSync(Duration.ofSeconds(30));
        }

        int afterCommit = 0;
        try (KafkaConsumer<String, String> again = new KafkaConsumer<>(c)) {
            again.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            // Polls with partitions assigned: what the group committed is
            // where this member starts.
            int assignedPolls = 0;
            while (assignedPolls < 3 && System.currentTimeMillis() < deadline) {
                afterCommit += again.poll(Duration.ofMillis(500)).count();
                if (!again.assignment().isEmpty()) assignedPolls++;
            }
            if (assignedPolls == 0) throw new IllegalStateException("the second member was never assigned");
        }
        Set<Long> producerIds = new TreeSet<>();
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
            List<TopicPartition> partitions = new ArrayList<>();
            int count = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
            for (int p = 0; p < count; p++) partitions.add(new TopicPartition(topic, p));
            for (var state : admin.describeProducers(partitions).all().get().values()) {
                state.activeProducers().forEach(producer -> producerIds.add(producer.producerId()));
            }
        }
        Map<String, Object> out = new TreeMap<>();
        out.put("sent", sent);
        out.put("consumed", consumed);
        out.put("keys_in_order", keysInOrder);
        out.put("headers_seen", headersSeen);
        out.put("after_commit", afterCommit);
        out.put("producer_ids", producerIds.size());
        return out;
    }

    /** failover BOOTSTRAP TOPIC COUNT: the producer's defaults across a
     * leader's death. Sends half the values, prints READY and waits for a
     * line on stdin (the test kills the leader meanwhile), sends the rest
     * (the client finds the new leader), then reads everything back.
     * Prints {"acked": [values], "failed": n, "consumed": [values]}. */
    static Map<String, Object> failover(String bootstrap, String topic, int count) throws Exception {
        List<String> values = new ArrayList<>();
        for (int i = 0; i < count; i++) values.add(String.format("v-%05d", i));
        List<String> acked = new ArrayList<>();
        int failed = 0;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps(bootstrap))) {
            failed += sendAll(producer, topic, values.subList(0, count / 2), acked);
            System.out.println("READY");
            System.out.flush();
            new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).readLine();
            failed += sendAll(producer, topic, values.subList(count / 2, count), acked);
        }
        Map<String, Object> out = new TreeMap<>();
        out.put("acked", acked);
        out.put("failed", failed);
        out.put("consumed", readAll(bootstrap, topic, Map.of(), acked.size()));
        return out;
    }

    /** Sends VALUES in order, adding each acknowledged one to ACKED; returns
     * how many failed. */
    private static int sendAll(KafkaProducer<String, String> producer, String topic, List<String> values,
            List<String> acked) {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        for (String value : values) futures.add(producer.send(new ProducerRecord<>(topic, value)));
        int failed = 0;
        for (int i = 0; i < values.size(); i++) {
            try {
                futures.get(i).get();
                acked.add(values.get(i));
            } catch (Exception e) { // a failed delivery is reported, not fatal
                System.err.println("delivery failed: " + e);
                failed++;
            }
        }
        return failed;
    }

    /** TOPIC's values from the start, without a group, the consumer
     * configured with SETTINGS besides: until WANT are read and one more
     * poll finds nothing, or the deadline. */
    static List<String> readAll(String bootstrap, String topic, Map<String, String> settings, int want) {
        Properties c = consumerProps(bootstrap, null);
        c.putAll(settings);
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            List<TopicPartition> partitions = new ArrayList<>();
            consumer.partitionsFor(topic, Duration.ofSeconds(30))
                    .forEach(info -> partitions.add(new TopicPartition(topic, info.partition())));
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            int extraPolls = 2;
            while (extraPolls > 0 && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    values.add(r.value());
                }
                if (values.size() >= want) extraPolls--;
            }
        }
        return values;
    }

    /** exactly-once BOOTSTRAP IN OUT GROUP COUNT: consume-transform-produce.
     * The producer's defaults fill IN; a transaction writing "aborted-N"
     * values to OUT is aborted; then a group consumer of IN (read_committed)
     * and a transactional producer copy every value to OUT as "out-VALUE",
     * each poll's writes and its offsets (with the consumer's group
     * metadata: generation and member, KIP-447) committed in one
     * transaction; finally OUT is read with read_committed and with
     * read_uncommitted. Prints {"committed": [values], "uncommitted":
     * [values], "transactions": n}. With PAUSE, once half is copied and
     * committed, prints READY and waits for a line on stdin (the test kills
     * the transaction coordinator meanwhile). */
    static Map<String, Object> exactlyOnce(String bootstrap, String in, String outTopic, String group, int count,
            boolean pause) throws Exception {
        try (KafkaProducer<String, String> filler = new KafkaProducer<>(producerProps(bootstrap))) {
            List<String> values = new ArrayList<>();
            for (int i = 0; i < count; i++) values.add(String.format("v-%05d", i));
            if (sendAll(filler, in, values, new ArrayList<>()) != 0) throw new IllegalStateException("fill failed");
        }
        Properties p = producerProps(bootstrap);
        p.put("transactional.id", "java-eos");
        Properties c = consumerProps(bootstrap, group);
        c.put("isolation.level", "read_committed");
        // Several polls, several transactions.
        c.put("max.poll.records", "50");
        int transactions = 0;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p);
                KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < ABORTED; i++) producer.send(new ProducerRecord<>(outTopic, "aborted-" + i));
            producer.flush();
            producer.abortTransaction();

            consumer.subscribe(List.of(in));
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            int copied = 0;
            while (copied < count) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("copied only " + copied + " of " + count);
                }
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(500));
                if (records.isEmpty()) continue;
                producer.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<String, String> r : records) {
                    producer.send(new ProducerRecord<>(outTopic, "out-" + r.value()));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    copied++;
                }
                producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                producer.commitTransaction();
                transactions++;
                if (pause && copied >= count / 2) {
                    pause = false;
                    System.out.println("READY");
                    System.out.flush();
                    new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).readLine();
                }
            }
        }
        Map<String, Object> out = new TreeMap<>();
        out.put("committed", readAll(bootstrap, outTopic, Map.of("isolation.level", "read_committed"), count));
        out.put("uncommitted", readAll(bootstrap, outTopic, Map.of("isolation.level", "read_uncommitted"), count + ABORTED));
        out.put("transactions", transactions);
        return out;
    }

    /** secure BOOTSTRAP TOPIC COUNT KEY=VALUE...: the producer's defaults
     * and a group consumer over a secured listener, the settings (TLS, SASL)
     * given as client properties. Sends COUNT values and reads them back.
     * Prints {"acked": n, "consumed": [values]}, or {"error": exception
     * class, "message": .., "causes": [what lies under it]} when the
     * connection or authentication fails. */
    static Map<String, Object> secure(String bootstrap, String topic, int count, List<String> settings) {
        Properties security = new Properties();
        security.putAll(SluiceJava.settings(settings));
        Map<String, Object> out = new TreeMap<>();
        Properties p = producerProps(bootstrap);
        p.putAll(security);
        // A refused login fails the first send, not after two minutes.
        p.put("max.block.ms", "15000");
        p.put("delivery.timeout.ms", "15000");
        p.put("request.timeout.ms", "10000");
        List<String> values = new ArrayList<>();
        for (int i = 0; i < count; i++) values.add("secure-" + i);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (String value : values) producer.send(new ProducerRecord<>(topic, value)).get();
        } catch (Exception e) {
            Throwable cause = Tour.unwrap(e);
            out.put("error", cause.getClass().getSimpleName());
            out.put("message", String.valueOf(cause.getMessage()));
            // What lies under it, for the test's failure message.
            List<String> under = new ArrayList<>();
            for (Throwable t = cause.getCause(); t != null && under.size() < 5; t = t.getCause()) {
                under.add(t.getClass().getSimpleName() + ": " + t.getMessage());
            }
            out.put("causes", under);
            return out;
        }
        Properties c = consumerProps(bootstrap, topic + "-group");
        c.putAll(security);
        List<String> consumed = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (consumed.size() < count && System.currentTimeMillis() < deadline) {
                consumer.poll(Duration.ofMillis(500)).forEach(r -> consumed.add(r.value()));
            }
            consumer.commitSync(Duration.ofSeconds(30));
        }
        out.put("acked", count);
        out.put("consumed", consumed);
        return out;
    }

    /** rack-consume BOOTSTRAP TOPIC COUNT RACK: a consumer with
     * client.rack RACK (KIP-392) reads COUNT values of TOPIC from the start,
     * without a group. Prints {"consumed": [values]}. */
    static Map<String, Object> rackConsume(String bootstrap, String topic, int count, String rack) {
        return Map.of("consumed", readAll(bootstrap, topic, Map.of("client.rack", rack), count));
    }
}
