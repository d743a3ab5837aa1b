import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.SharePartitionOffsetInfo;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;

/** Share groups (KIP-932) through Kafka's KafkaShareConsumer. */
final class Share {
    private Share() {}

    static Properties shareProps(String bootstrap, String group) {
        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", group);
        c.put("share.acknowledgement.mode", "explicit");
        // Small acquisitions, so the members share the partition's records.
        c.put("max.poll.records", "25");
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        return c;
    }

    /** share-consume BOOTSTRAP TOPIC GROUP COUNT: COUNT values written, then
     * a member that acquires records and stops (holding them until their
     * locks run out), then two members sharing the topic with it: each value
     * accepted but v-013, which is rejected; v-042 released the first time
     * a member gets it. The group starts at the earliest record by its own
     * config, set first. A last member finds nothing left; the Admin client
     * then describes the group and its partitions' start offsets. */
    static Map<String, Object> shareConsume(String bootstrap, String topic, String group, int count)
            throws Exception {
        String rejectValue = String.format("v-%03d", 13);
        String releaseValue = String.format("v-%03d", 42);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(Clients.producerProps(bootstrap))) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                acks.add(producer.send(new ProducerRecord<>(topic, "k" + (i % 11), String.format("v-%03d", i))));
            }
            for (Future<RecordMetadata> ack : acks) ack.get();
        }

        Map<String, Object> out = new HashMap<>();
        // Where the group starts is its own config (kafka-configs
        // --entity-type groups), read back as the group's.
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
            ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
            AlterConfigOp earliest = new AlterConfigOp(
                    new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET);
            admin.incrementalAlterConfigs(Map.of(resource, List.of(earliest))).all().get();
            ConfigEntry e = admin.describeConfigs(List.of(resource)).all().get().get(resource)
                    .get("share.auto.offset.reset");
            out.put("group_config", e.value() + " from " + e.source());
        }
        // The stalled member: it takes what one poll gives and never answers.
        KafkaShareConsumer<String, String> stalled = new KafkaShareConsumer<>(shareProps(bootstrap, group));
        stalled.subscribe(List.of(topic));
        List<String> held = new ArrayList<>();
        long deadline = System.currentTimeMillis() + Clients.DEADLINE_MS;
        while (held.isEmpty() && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<String, String> r : stalled.poll(Duration.ofMillis(500))) held.add(r.value());
        }
        out.put("held", held);

        List<String> accepted = Collections.synchronizedList(new ArrayList<>());
        Map<String, Short> deliveries = Collections.synchronizedMap(new HashMap<>());
        List<Integer> perMember = Collections.synchronizedList(new ArrayList<>());
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        AtomicBoolean done = new AtomicBoolean();
        AtomicBoolean released = new AtomicBoolean();
        // Each member waits, once it got records, until the other got some
        // too (or the deadline): on a loaded machine one member could
        // otherwise take every record before the other's first fetch, and
        // the sharing would go unseen.
        CountDownLatch bothGot = new CountDownLatch(2);
        int wanted = count - 1;
        List<Thread> members = new ArrayList<>();
        for (int m = 0; m < 2; m++) {
            Thread t = new Thread(() -> {
                int mine = 0;
                boolean waited = false;
                try (KafkaShareConsumer<String, String> c = new KafkaShareConsumer<>(shareProps(bootstrap, group))) {
                    c.subscribe(List.of(topic));
                    while (!done.get() && System.currentTimeMillis() < deadline) {
                        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                            short delivery = r.deliveryCount().orElse((short) 0);
                            deliveries.merge(r.value(), delivery, (a, b) -> (short) Math.max(a, b));
                            if (r.value().equals(rejectValue)) {
                                c.acknowledge(r, AcknowledgeType.REJECT);
                            } else if (r.value().equals(releaseValue) && released.compareAndSet(false, true)) {
                                c.acknowledge(r, AcknowledgeType.RELEASE);
                            } else {
                                c.acknowledge(r, AcknowledgeType.ACCEPT);
                                accepted.add(r.value());
                                mine++;
                            }
                        }
                        c.commitSync();
                        if (mine > 0 && !waited) {
                            waited = true;
                            bothGot.countDown();
                            bothGot.await(Math.max(0, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS);
                        }
                        if (accepted.size() >= wanted) done.set(true);
                    }
                } catch (Exception e) {
                    errors.add(e.toString());
                }
                perMember.add(mine);
            });
            t.start();
            members.add(t);
        }
        for (Thread t : members) t.join();
        stalled.close(Duration.ofSeconds(5));

        int leftOver = drain(bootstrap, topic, group).size();
        // What an operator sees: the group, and where its partition starts.
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
            ShareGroupDescription d = admin.describeShareGroups(List.of(group)).all().get().get(group);
            out.put("group_state", d.groupState().toString());
            out.put("group_members", d.members().size());
            Map<TopicPartition, SharePartitionOffsetInfo> offsets = admin
                    .listShareGroupOffsets(Map.of(group, new ListShareGroupOffsetsSpec()))
                    .partitionsToOffsetInfo(group).get();
            Map<String, Object> starts = new HashMap<>();
            offsets.forEach((tp, info) -> starts.put(tp.toString(), info.startOffset()));
            out.put("start_offsets", starts);
        }
        // An operator's resets of the empty group: refused while a member
        // is in it, then back to the last ten records, then deleted (the
        // group starts again by its config: at the earliest record).
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
            Map<TopicPartition, Long> tail = Map.of(new TopicPartition(topic, 0), (long) (count - 10));
            try (KafkaShareConsumer<String, String> member = new KafkaShareConsumer<>(shareProps(bootstrap, group))) {
                member.subscribe(List.of(topic));
                member.poll(Duration.ofMillis(500));
                try {
                    admin.alterShareGroupOffsets(group, tail).all().get();
                    out.put("reset_with_a_member", "done");
                } catch (ExecutionException e) {
                    out.put("reset_with_a_member", e.getCause().getClass().getSimpleName());
                }
            }
            admin.alterShareGroupOffsets(group, tail).all().get();
            out.put("after_reset", drain(bootstrap, topic, group));
            admin.deleteShareGroupOffsets(group, Set.of(topic)).all().get();
            out.put("offsets_after_delete", admin
                    .listShareGroupOffsets(Map.of(group, new ListShareGroupOffsetsSpec()))
                    .partitionsToOffsetInfo(group).get().size());
            out.put("after_delete", drain(bootstrap, topic, group).size());
        }
        out.put("accepted", accepted);
        out.put("per_member", perMember);
        out.put("errors", errors);
        out.put("rejected_deliveries", deliveries.getOrDefault(rejectValue, (short) 0));
        out.put("released_deliveries", deliveries.getOrDefault(releaseValue, (short) 0));
        Map<String, Object> heldDeliveries = new HashMap<>();
        for (String v : held) heldDeliveries.put(v, deliveries.getOrDefault(v, (short) 0));
        out.put("held_deliveries", heldDeliveries);
        out.put("left_over", leftOver);
        return out;
    }

    /** share-committed BOOTSTRAP TOPIC GROUP: a transactional producer
     * commits c-0..c-4, aborts a-0..a-4 and commits d-0..d-4; a share group
     * set to read_committed (and to start at the earliest record) then
     * drains the topic: the values it got. */
    static Map<String, Object> shareCommitted(String bootstrap, String topic, String group) throws Exception {
        Properties p = Clients.producerProps(bootstrap);
        p.put("transactional.id", group + "-producer");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            for (String tag : List.of("c", "a", "d")) {
                producer.beginTransaction();
                for (int i = 0; i < 5; i++) producer.send(new ProducerRecord<>(topic, 0, null, tag + "-" + i));
                // Written before it ends: an abort drops what was not sent.
                producer.flush();
                if (tag.equals("a")) producer.abortTransaction();
                else producer.commitTransaction();
            }
        }
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
            ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
            List<AlterConfigOp> ops = List.of(
                    new AlterConfigOp(new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("share.isolation.level", "read_committed"), AlterConfigOp.OpType.SET));
            admin.incrementalAlterConfigs(Map.of(resource, ops)).all().get();
        }
        Map<String, Object> out = new HashMap<>();
        out.put("values", drain(bootstrap, topic, group));
        return out;
    }

    /** One member accepting whatever it gets for 4 s: the values. */
    static List<String> drain(String bootstrap, String topic, String group) {
        List<String> got = new ArrayList<>();
        try (KafkaShareConsumer<String, String> c = new KafkaShareConsumer<>(shareProps(bootstrap, group))) {
            c.subscribe(List.of(topic));
            long until = System.currentTimeMillis() + 4_000;
            while (System.currentTimeMillis() < until) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    c.acknowledge(r, AcknowledgeType.ACCEPT);
                    got.add(r.value());
                }
            }
        }
        return got;
    }
}
