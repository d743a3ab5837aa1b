import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Callable;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionReplica;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.*;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;

/** admin-tour BOOTSTRAP: every method of the Java client's Admin (what
 * kafka-topics.sh, kafka-configs.sh, kafka-consumer-groups.sh and the
 * other tools are built on) against one broker or a cluster, as an
 * operator would use them. On a cluster, topics have 3 replicas and
 * per-broker calls ask the lowest node id. The stage: topics, records stamped a second apart, a committed
 * classic group, an emptied KIP-848 group, a static member left behind, a
 * committed and an open transaction. Each change is read back. Prints the
 * outcomes (Tour) as one JSON line. */
final class AdminTour {
    static final String TOPIC = "ja-a";
    static final String SCRATCH = "ja-scratch";
    static final String TX_TOPIC = "ja-tx";
    static final String ASSIGNED = "ja-assigned";
    static final String GROUP = "ja-group";
    static final String NEW_GROUP = "ja-848";
    static final String STATIC_GROUP = "ja-static";
    static final String STATIC_ID = "ja-static-1";
    static final String TXN_COMMITTED = "ja-txn-committed";
    static final String TXN_OPEN = "ja-txn-open";
    static final String USER = "ja-user";
    static final int PER_PARTITION = 10;

    private final Admin admin;
    private final String bootstrap;
    /** The brokers' ids, ascending; the first is the one asked about
     * itself (configs, loggers, log dirs). */
    private List<Integer> nodes = List.of();
    private int node;
    /** Every topic's replication factor: 3, or fewer brokers. */
    private short factor = 1;
    private final Tour t = new Tour();
    private final long baseMs = System.currentTimeMillis() - 60_000;

    private AdminTour(String bootstrap) {
        this.bootstrap = bootstrap;
        this.admin = Admin.create(Map.of("bootstrap.servers", bootstrap, "client.id", "ja-admin",
                "default.api.timeout.ms", "60000", "request.timeout.ms", "30000", "enable.metrics.push", "true"));
    }

    static Map<String, Object> run(String bootstrap) {
        AdminTour tour = new AdminTour(bootstrap);
        try (Admin admin = tour.admin) {
            tour.stage();
            tour.clusterCalls();
            tour.topicCalls();
            tour.configCalls();
            tour.groupCalls();
            tour.transactionCalls();
            tour.securityCalls();
            tour.t.call("deleteTopics", () -> {
                Uuid id = admin.describeTopics(List.of(ASSIGNED)).allTopicNames().get().get(ASSIGNED).topicId();
                admin.deleteTopics(List.of(SCRATCH)).all().get();
                admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all().get();
                return Map.of("listed_after", converge(() -> admin.listTopics().names().get(),
                        listed -> !listed.contains(SCRATCH) && !listed.contains(ASSIGNED)));
            });
        }
        return tour.t.results;
    }

    // -----------------------------------------------------------------
    // The stage
    // -----------------------------------------------------------------

    private KafkaProducer<String, String> openTransaction;

    private void stage() {
        t.call("describeCluster_nodes", () -> {
            List<Integer> ids = new ArrayList<>();
            admin.describeCluster().nodes().get().forEach(n -> ids.add(n.id()));
            java.util.Collections.sort(ids);
            nodes = ids;
            node = ids.get(0);
            factor = (short) Math.min(3, ids.size());
            return ids;
        });
        t.call("createTopics", () -> {
            NewTopic scratch = new NewTopic(SCRATCH, 2, factor).configs(Map.of("retention.ms", "86400000"));
            // Each partition on the nodes in turn, in a different order.
            List<Integer> reversed = new ArrayList<>(nodes);
            java.util.Collections.reverse(reversed);
            NewTopic assigned = new NewTopic(ASSIGNED, Map.of(0, nodes, 1, reversed));
            CreateTopicsResult created = admin.createTopics(List.of(
                    new NewTopic(TOPIC, 3, factor), scratch, new NewTopic(TX_TOPIC, 1, factor), assigned));
            created.all().get();
            return Map.of("scratch_retention", created.config(SCRATCH).get().get("retention.ms").value(),
                    "assigned_partitions", created.numPartitions(ASSIGNED).get());
        });
        Map<String, Object> setup = new TreeMap<>();
        try {
            setup.put("produced", produce());
            setup.put("consumed", consumeAndCommit(GROUP, "classic"));
            setup.put("consumed_848", consumeAndCommit(NEW_GROUP, "consumer"));
            setup.put("static", joinStatic());
            openTransaction = transactions();
        } catch (Exception e) {
            setup.put("error", Tour.describe(Tour.unwrap(e)));
        }
        t.results.put("_setup", setup);
    }

    /** PER_PARTITION records to each partition of TOPIC; record i stamped
     * baseMs + i seconds, so offset i is the one found by timestamp. */
    private int produce() throws Exception {
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(Clients.producerProps(bootstrap))) {
            for (int p = 0; p < 3; p++) {
                for (int i = 0; i < PER_PARTITION; i++) {
                    producer.send(new ProducerRecord<>(TOPIC, p, baseMs + i * 1000L, "k-" + i, "v-" + p + "-" + i));
                }
            }
            producer.flush();
        }
        return 3 * PER_PARTITION;
    }

    /** GROUP (group.protocol PROTOCOL) reads TOPIC to the end, commits and leaves. */
    private int consumeAndCommit(String group, String protocol) {
        Properties c = Clients.consumerProps(bootstrap, group);
        c.put("group.protocol", protocol);
        c.put("client.id", group + "-consumer");
        int seen = 0;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(TOPIC));
            long deadline = System.currentTimeMillis() + Clients.DEADLINE_MS;
            while (seen < 3 * PER_PARTITION && System.currentTimeMillis() < deadline) {
                seen += consumer.poll(Duration.ofMillis(500)).count();
            }
            consumer.commitSync(Duration.ofSeconds(30));
        }
        return seen;
    }

    /** STATIC_GROUP gets a static member that closes without leaving (a
     * static member's close sends no LeaveGroup): it stays until its
     * session times out, or an operator removes it. */
    private List<String> joinStatic() {
        Properties c = Clients.consumerProps(bootstrap, STATIC_GROUP);
        c.put("group.instance.id", STATIC_ID);
        c.put("session.timeout.ms", "120000");
        List<String> assigned = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(TOPIC));
            long deadline = System.currentTimeMillis() + Clients.DEADLINE_MS;
            while (consumer.assignment().isEmpty() && System.currentTimeMillis() < deadline) {
                consumer.poll(Duration.ofMillis(500));
            }
            consumer.assignment().forEach(tp -> assigned.add(tp.toString()));
        }
        return assigned;
    }

    /** One committed transaction of 5 records, and one of 3 left open:
     * returns the producer holding the open one. */
    private KafkaProducer<String, String> transactions() {
        Properties p = Clients.producerProps(bootstrap);
        p.put("transactional.id", TXN_COMMITTED);
        try (KafkaProducer<String, String> committed = new KafkaProducer<>(p)) {
            committed.initTransactions();
            committed.beginTransaction();
            for (int i = 0; i < 5; i++) committed.send(new ProducerRecord<>(TX_TOPIC, 0, null, "committed-" + i));
            committed.commitTransaction();
        }
        Properties o = Clients.producerProps(bootstrap);
        o.put("transactional.id", TXN_OPEN);
        o.put("transaction.timeout.ms", "600000");
        KafkaProducer<String, String> open = new KafkaProducer<>(o);
        open.initTransactions();
        open.beginTransaction();
        for (int i = 0; i < 3; i++) open.send(new ProducerRecord<>(TX_TOPIC, 0, null, "open-" + i));
        open.flush();
        return open;
    }

    // -----------------------------------------------------------------
    // The tour
    // -----------------------------------------------------------------

    private void clusterCalls() {
        t.call("describeCluster", () -> {
            DescribeClusterResult r = admin.describeCluster(new DescribeClusterOptions().includeAuthorizedOperations(true));
            return Map.of("nodes", str(r.nodes().get()), "controller", String.valueOf(r.controller().get()),
                    "cluster_id", r.clusterId().get(), "authorized_operations", str(r.authorizedOperations().get()));
        });
        t.call("describeFeatures", () -> {
            FeatureMetadata f = admin.describeFeatures().featureMetadata().get();
            Map<String, Object> finalized = new TreeMap<>();
            f.finalizedFeatures().forEach((name, range) -> finalized.put(name, (int) range.maxVersionLevel()));
            return Map.of("finalized", finalized, "supported", str(f.supportedFeatures().keySet()));
        });
        t.call("updateFeatures", () -> {
            // Re-finalize group.version at its level, validate only.
            short level = admin.describeFeatures().featureMetadata().get()
                    .finalizedFeatures().get("group.version").maxVersionLevel();
            admin.updateFeatures(Map.of("group.version", new FeatureUpdate(level, FeatureUpdate.UpgradeType.UPGRADE)),
                    new UpdateFeaturesOptions().validateOnly(true)).all().get();
            // With a level no broker runs beside it, the whole update is
            // refused (UpdateFeatures v2 answers all or nothing).
            UpdateFeaturesResult mixed = admin.updateFeatures(Map.of(
                    "group.version", new FeatureUpdate(level, FeatureUpdate.UpgradeType.UPGRADE),
                    "share.version", new FeatureUpdate((short) 9, FeatureUpdate.UpgradeType.UPGRADE)),
                    new UpdateFeaturesOptions());
            Map<String, Object> refused = new TreeMap<>();
            mixed.values().forEach((name, future) -> {
                try {
                    future.get();
                    refused.put(name, "ok");
                } catch (Exception e) {
                    Throwable cause = e.getCause() == null ? e : e.getCause();
                    refused.put(name, cause.getClass().getSimpleName() + ": " + cause.getMessage());
                }
            });
            return Map.of("group.version", (int) level, "mixed", refused);
        });
        t.call("describeMetadataQuorum", () -> str(admin.describeMetadataQuorum().quorumInfo().get()));
        t.call("describeLogDirs", () -> {
            Map<String, Object> dirs = new TreeMap<>();
            admin.describeLogDirs(List.of(node)).allDescriptions().get().get(node).forEach((path, d) -> {
                Map<String, Object> replicas = new TreeMap<>();
                d.replicaInfos().forEach((tp, info) -> replicas.put(tp.toString(), info.size()));
                dirs.put(path, Map.of("error", String.valueOf(d.error()), "replicas", replicas,
                        "total_bytes", d.totalBytes().orElse(-1L), "usable_bytes", d.usableBytes().orElse(-1L)));
            });
            return dirs;
        });
        TopicPartitionReplica replica = new TopicPartitionReplica(TOPIC, 0, node);
        t.call("describeReplicaLogDirs", () -> str(admin.describeReplicaLogDirs(List.of(replica)).all().get()));
        t.call("alterReplicaLogDirs", () -> {
            // To the log dir it is in already (a no-op move).
            String path = admin.describeReplicaLogDirs(List.of(replica)).all().get().get(replica).getCurrentReplicaLogDir();
            admin.alterReplicaLogDirs(Map.of(replica, path)).all().get();
            return path;
        });
        // Kafka: BROKER_ID_NOT_REGISTERED for a broker the cluster never had.
        t.expect("unregisterBroker", BrokerIdNotRegisteredException.class,
                () -> admin.unregisterBroker(99).all().get());
    }

    private void topicCalls() {
        t.call("listTopics", () -> Map.of(
                "names", admin.listTopics().names().get(),
                "with_internal", admin.listTopics(new ListTopicsOptions().listInternal(true)).names().get()));
        t.call("describeTopics", () -> {
            TopicDescription byName = admin.describeTopics(List.of(TOPIC),
                    new DescribeTopicsOptions().includeAuthorizedOperations(true)).allTopicNames().get().get(TOPIC);
            TopicDescription byId = admin.describeTopics(TopicCollection.ofTopicIds(List.of(byName.topicId())))
                    .allTopicIds().get().get(byName.topicId());
            return Map.of("partitions", byName.partitions().size(), "by_id_name", byId.name(),
                    "internal", byName.isInternal(), "authorized_operations", str(byName.authorizedOperations()));
        });
        List<TopicPartition> tps = List.of(tp(TOPIC, 0), tp(TOPIC, 1), tp(TOPIC, 2));
        t.call("listOffsets", () -> {
            Map<String, Object> r = new TreeMap<>();
            r.put("earliest", offsets(tps, OffsetSpec.earliest()));
            r.put("latest", offsets(tps, OffsetSpec.latest()));
            r.put("max_timestamp", offsets(tps, OffsetSpec.maxTimestamp()));
            r.put("at_base_plus_5s", offsets(tps, OffsetSpec.forTimestamp(baseMs + 5000)));
            r.put("after_last", offsets(tps, OffsetSpec.forTimestamp(baseMs + 3_600_000)));
            r.put("earliest_local", offsets(tps, OffsetSpec.earliestLocal()));
            r.put("latest_tiered", offsets(tps, OffsetSpec.latestTiered()));
            List<TopicPartition> tx = List.of(tp(TX_TOPIC, 0));
            r.put("tx_read_uncommitted", offsets(tx, OffsetSpec.latest()));
            r.put("tx_read_committed", admin.listOffsets(Map.of(tx.get(0), OffsetSpec.latest()),
                    new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).all().get().get(tx.get(0)).offset());
            return r;
        });
        t.call("deleteRecords", () -> {
            admin.deleteRecords(Map.of(tp(TOPIC, 0), RecordsToDelete.beforeOffset(3))).all().get();
            return Map.of("earliest_after", offsets(tps.subList(0, 1), OffsetSpec.earliest()));
        });
        t.call("createPartitions", () -> {
            admin.createPartitions(Map.of(SCRATCH, NewPartitions.increaseTo(4))).all().get();
            return Map.of("partitions_after", converge(
                    () -> admin.describeTopics(List.of(SCRATCH)).allTopicNames().get().get(SCRATCH).partitions().size(),
                    count -> count == 4));
        });
        // A single broker leads every partition already: Kafka answers
        // ELECTION_NOT_NEEDED for a preferred election (per partition).
        t.expect("electLeaders", ElectionNotNeededException.class, () -> {
            Optional<Throwable> error = admin.electLeaders(ElectionType.PREFERRED, Set.of(tp(TOPIC, 0)))
                    .partitions().get().get(tp(TOPIC, 0));
            if (error.isPresent()) throw new java.util.concurrent.ExecutionException(error.get());
            return "elected";
        });
        t.call("alterPartitionReassignments", () -> {
            // Onto the replicas it has already.
            List<Integer> replicas = new ArrayList<>();
            admin.describeTopics(List.of(TOPIC)).allTopicNames().get().get(TOPIC).partitions().get(1).replicas()
                    .forEach(n -> replicas.add(n.id()));
            admin.alterPartitionReassignments(Map.of(tp(TOPIC, 1),
                    Optional.of(new NewPartitionReassignment(replicas)))).all().get();
            return replicas;
        });
        t.call("listPartitionReassignments", () -> str(admin.listPartitionReassignments().reassignments().get()));
    }

    private void configCalls() {
        ConfigResource scratch = new ConfigResource(ConfigResource.Type.TOPIC, SCRATCH);
        ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(node));
        t.call("describeConfigs", () -> {
            Map<ConfigResource, Config> all = admin.describeConfigs(List.of(scratch, broker),
                    new DescribeConfigsOptions().includeSynonyms(true).includeDocumentation(true)).all().get();
            Map<String, Object> r = new TreeMap<>();
            r.put("topic_entries", all.get(scratch).entries().size());
            r.put("topic_retention", entry(all.get(scratch).get("retention.ms")));
            r.put("broker_entries", all.get(broker).entries().size());
            r.put("broker_num_partitions", entry(all.get(broker).get("num.partitions")));
            return r;
        });
        // kafka-configs.sh --entity-type broker-loggers: a level set, read
        // back and removed again.
        ConfigResource loggers = new ConfigResource(ConfigResource.Type.BROKER_LOGGER, String.valueOf(node));
        t.call("brokerLoggers", () -> {
            Map<String, Object> r = new TreeMap<>();
            r.put("root", admin.describeConfigs(List.of(loggers)).all().get().get(loggers).get("root").value());
            admin.incrementalAlterConfigs(Map.of(loggers, List.of(new AlterConfigOp(
                    new ConfigEntry("sluice::group", "DEBUG"), AlterConfigOp.OpType.SET)))).all().get();
            r.put("set", entry(admin.describeConfigs(List.of(loggers)).all().get().get(loggers).get("sluice::group")));
            admin.incrementalAlterConfigs(Map.of(loggers, List.of(new AlterConfigOp(
                    new ConfigEntry("sluice::group", ""), AlterConfigOp.OpType.DELETE)))).all().get();
            r.put("after_delete", admin.describeConfigs(List.of(loggers)).all().get().get(loggers).get("sluice::group") == null);
            return r;
        });
        t.call("incrementalAlterConfigs", () -> {
            admin.incrementalAlterConfigs(Map.of(scratch, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND))))
                    .all().get();
            Map<String, Object> r = new TreeMap<>();
            r.put("after_set", converge(() -> topicConfigs(SCRATCH, "retention.ms", "cleanup.policy"),
                    c -> valueOf(c, "retention.ms").equals("3600000")));
            admin.incrementalAlterConfigs(Map.of(scratch, List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.SUBTRACT),
                    new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE))))
                    .all().get();
            r.put("after_subtract_delete", converge(() -> topicConfigs(SCRATCH, "retention.ms", "cleanup.policy"),
                    c -> valueOf(c, "cleanup.policy").equals("compact")));
            return r;
        });
        t.call("incrementalAlterConfigs_broker", () -> {
            // A dynamic broker config, set and removed again.
            admin.incrementalAlterConfigs(Map.of(broker, List.of(new AlterConfigOp(
                    new ConfigEntry("log.retention.ms", "7200000"), AlterConfigOp.OpType.SET)))).all().get();
            String set = admin.describeConfigs(List.of(broker)).all().get().get(broker).get("log.retention.ms").value();
            admin.incrementalAlterConfigs(Map.of(broker, List.of(new AlterConfigOp(
                    new ConfigEntry("log.retention.ms", ""), AlterConfigOp.OpType.DELETE)))).all().get();
            ConfigEntry after = admin.describeConfigs(List.of(broker)).all().get().get(broker).get("log.retention.ms");
            return Map.of("set", set, "after_delete", entry(after));
        });
        t.call("listConfigResources", () -> {
            Map<String, Object> r = new TreeMap<>();
            admin.listConfigResources(Set.of(ConfigResource.Type.TOPIC, ConfigResource.Type.BROKER),
                    new ListConfigResourcesOptions()).all().get()
                    .forEach(res -> r.computeIfAbsent(res.type().toString(), k -> new ArrayList<String>()));
            for (ConfigResource res : admin.listConfigResources(Set.of(ConfigResource.Type.TOPIC,
                    ConfigResource.Type.BROKER), new ListConfigResourcesOptions()).all().get()) {
                @SuppressWarnings("unchecked")
                List<String> names = (List<String>) r.get(res.type().toString());
                names.add(res.name());
            }
            return r;
        });
        @SuppressWarnings("removal")
        Callable<Object> listClientMetrics = () -> str(admin.listClientMetricsResources().all().get());
        t.call("listClientMetricsResources", listClientMetrics);
    }

    private void groupCalls() {
        t.call("listGroups", () -> Map.of(
                "all", groupIds(admin.listGroups().all().get()),
                "consumer_type", groupIds(admin.listGroups(new ListGroupsOptions().withTypes(Set.of(GroupType.CONSUMER))).all().get()),
                "classic_type", groupIds(admin.listGroups(new ListGroupsOptions().withTypes(Set.of(GroupType.CLASSIC))).all().get())));
        @SuppressWarnings("removal")
        Callable<Object> listConsumerGroups = () -> {
            List<String> ids = new ArrayList<>();
            admin.listConsumerGroups().all().get().forEach(g -> ids.add(g.groupId()));
            java.util.Collections.sort(ids);
            return ids;
        };
        t.call("listConsumerGroups", listConsumerGroups);
        t.call("describeConsumerGroups", () -> {
            Map<String, Object> r = new TreeMap<>();
            admin.describeConsumerGroups(List.of(GROUP, NEW_GROUP, STATIC_GROUP)).all().get().forEach((id, d) ->
                    r.put(id, Map.of("state", d.groupState().toString(), "type", d.type().toString(),
                            "members", d.members().size())));
            return r;
        });
        t.call("describeClassicGroups", () -> {
            Map<String, Object> r = new TreeMap<>();
            admin.describeClassicGroups(List.of(GROUP, STATIC_GROUP)).all().get().forEach((id, d) ->
                    r.put(id, Map.of("state", d.state().toString(), "protocol", d.protocol(), "members", d.members().size())));
            return r;
        });
        t.call("listConsumerGroupOffsets", () -> committed(GROUP));
        t.call("alterConsumerGroupOffsets", () -> {
            admin.alterConsumerGroupOffsets(GROUP, Map.of(tp(TOPIC, 0), new OffsetAndMetadata(4, "rewound by tour")))
                    .all().get();
            return Map.of("after", committed(GROUP));
        });
        t.call("deleteConsumerGroupOffsets", () -> {
            admin.deleteConsumerGroupOffsets(GROUP, Set.of(tp(TOPIC, 2))).all().get();
            return Map.of("after", committed(GROUP));
        });
        t.call("removeMembersFromConsumerGroup", () -> {
            admin.removeMembersFromConsumerGroup(STATIC_GROUP, new RemoveMembersFromConsumerGroupOptions(
                    List.of(new MemberToRemove(STATIC_ID)))).all().get();
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(STATIC_GROUP)).all().get().get(STATIC_GROUP);
            return Map.of("state", d.groupState().toString(), "members", d.members().size());
        });
        t.call("deleteConsumerGroups", () -> {
            admin.deleteConsumerGroups(List.of(GROUP, STATIC_GROUP, NEW_GROUP)).all().get();
            return Map.of("groups_after", groupIds(admin.listGroups().all().get()));
        });
        // Share groups (KIP-932) are served (tests/java_clients.rs drives
        // one): a group that is none is not found. Streams groups
        // (KIP-1071) are not: the client reports the API as unsupported.
        t.expect("describeShareGroups", GroupIdNotFoundException.class,
                () -> str(admin.describeShareGroups(List.of("ja-share")).all().get()));
        t.expect("describeStreamsGroups", UnsupportedVersionException.class,
                () -> str(admin.describeStreamsGroups(List.of("ja-streams")).all().get()));
    }

    private void transactionCalls() {
        t.call("listTransactions", () -> Map.of(
                "all", txnIds(admin.listTransactions().all().get()),
                "ongoing", txnIds(admin.listTransactions(new ListTransactionsOptions()
                        .filterStates(List.of(TransactionState.ONGOING))).all().get()),
                "pattern", txnIds(admin.listTransactions(new ListTransactionsOptions()
                        .filterOnTransactionalIdPattern("ja-txn-c.*")).all().get())));
        t.call("describeTransactions", () -> {
            Map<String, Object> r = new TreeMap<>();
            admin.describeTransactions(List.of(TXN_COMMITTED, TXN_OPEN)).all().get().forEach((id, d) ->
                    r.put(id, Map.of("state", d.state().toString(), "partitions", str(d.topicPartitions()))));
            return r;
        });
        TopicPartition txTp = tp(TX_TOPIC, 0);
        t.call("describeProducers", () -> {
            List<Object> producers = new ArrayList<>();
            admin.describeProducers(List.of(txTp)).partitionResult(txTp).get().activeProducers().forEach(p ->
                    producers.add(Map.of("id", p.producerId(), "epoch", p.producerEpoch(),
                            "txn_start", p.currentTransactionStartOffset().orElse(-1L))));
            return producers;
        });
        t.call("abortTransaction", () -> {
            // As kafka-transactions.sh abort finds it: the producer's state
            // on the partition (its epoch and coordinator epoch).
            TransactionDescription d = admin.describeTransactions(List.of(TXN_OPEN)).description(TXN_OPEN).get();
            ProducerState p = admin.describeProducers(List.of(txTp)).partitionResult(txTp).get().activeProducers()
                    .stream().filter(s -> s.producerId() == d.producerId()).findFirst().orElseThrow();
            long lsoBefore = lso(txTp);
            admin.abortTransaction(new AbortTransactionSpec(txTp, p.producerId(), (short) p.producerEpoch(),
                    p.coordinatorEpoch().orElse(-1))).all().get();
            return Map.of("lso_before", lsoBefore, "lso_after", lso(txTp),
                    "high_watermark_after", offsets(List.of(txTp), OffsetSpec.latest()).get(txTp.toString()));
        });
        t.call("fenceProducers", () -> {
            admin.fenceProducers(List.of(TXN_COMMITTED)).all().get();
            return Map.of("state_after",
                    admin.describeTransactions(List.of(TXN_COMMITTED)).description(TXN_COMMITTED).get().state().toString());
        });
        // kafka-transactions.sh force-terminate (KIP-939): a new epoch for
        // the id, ending what it had open.
        t.call("forceTerminateTransaction", () -> {
            admin.forceTerminateTransaction(TXN_COMMITTED).result().get();
            return Map.of("state_after",
                    admin.describeTransactions(List.of(TXN_COMMITTED)).description(TXN_COMMITTED).get().state().toString());
        });
        if (openTransaction != null) openTransaction.close(Duration.ofSeconds(10));
    }

    private void securityCalls() {
        AclBindingFilter everything = new AclBindingFilter(
                new ResourcePatternFilter(ResourceType.ANY, null, PatternType.ANY),
                new AccessControlEntryFilter(null, null, AclOperation.ANY, AclPermissionType.ANY));
        // Without an authorizer Kafka answers SECURITY_DISABLED.
        t.expect("describeAcls", SecurityDisabledException.class, () -> str(admin.describeAcls(everything).values().get()));
        t.expect("createAcls", SecurityDisabledException.class, () -> {
            admin.createAcls(List.of(new AclBinding(new ResourcePattern(ResourceType.TOPIC, TOPIC, PatternType.LITERAL),
                    new AccessControlEntry("User:" + USER, "*", AclOperation.READ, AclPermissionType.ALLOW)))).all().get();
            return null;
        });
        t.expect("deleteAcls", SecurityDisabledException.class, () -> str(admin.deleteAcls(List.of(everything)).all().get()));
        ClientQuotaEntity client = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, "ja-quota-client"));
        t.call("alterClientQuotas", () -> {
            admin.alterClientQuotas(List.of(new ClientQuotaAlteration(client,
                    List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 1048576.0))))).all().get();
            return "set";
        });
        t.call("describeClientQuotas", () -> str(admin.describeClientQuotas(ClientQuotaFilter.all()).entities().get()));
        t.call("alterUserScramCredentials", () -> {
            admin.alterUserScramCredentials(List.of(
                    new UserScramCredentialUpsertion(USER, new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), "ja-secret"),
                    new UserScramCredentialUpsertion(USER, new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), "ja-secret")))
                    .all().get();
            return "upserted";
        });
        t.call("describeUserScramCredentials", () -> converge(() -> {
            try {
                return str(admin.describeUserScramCredentials(List.of(USER)).all().get());
            } catch (java.util.concurrent.ExecutionException e) {
                // Not on this broker yet: RESOURCE_NOT_FOUND.
                if (!(e.getCause() instanceof ResourceNotFoundException)) throw e;
                return "not yet";
            }
        }, described -> !described.equals("not yet")));
        // Delegation tokens over a PLAINTEXT connection: Kafka answers
        // DELEGATION_TOKEN_REQUEST_NOT_ALLOWED (a token needs an
        // authenticated connection), which the client raises as this.
        Class<UnsupportedByAuthenticationException> notAllowed = UnsupportedByAuthenticationException.class;
        t.expect("createDelegationToken", notAllowed,
                () -> str(admin.createDelegationToken().delegationToken().get()));
        t.expect("describeDelegationToken", notAllowed,
                () -> str(admin.describeDelegationToken().delegationTokens().get()));
        byte[] hmac = "ja-hmac".getBytes(StandardCharsets.UTF_8);
        t.expect("renewDelegationToken", notAllowed, () -> admin.renewDelegationToken(hmac).expiryTimestamp().get());
        t.expect("expireDelegationToken", notAllowed, () -> admin.expireDelegationToken(hmac).expiryTimestamp().get());
        // Client telemetry (KIP-714) is not served: the client gets no
        // instance id (null) where a Kafka broker gives one. Recorded, not
        // counted as a call answered as Kafka answers it.
        try {
            t.results.put("_clientInstanceId", String.valueOf(admin.clientInstanceId(Duration.ofSeconds(10))));
        } catch (RuntimeException e) {
            t.results.put("_clientInstanceId", Tour.describe(e));
        }
    }

    // -----------------------------------------------------------------
    // Reading back
    // -----------------------------------------------------------------

    /** READ until DONE says its value is the one a change leads to, or the
     * deadline: a cluster's brokers learn of a change after it is
     * answered, as Kafka's do, and the client may ask any of them. */
    private static <T> T converge(Callable<T> read, java.util.function.Predicate<T> done) throws Exception {
        long deadline = System.currentTimeMillis() + Clients.DEADLINE_MS;
        T value = read.call();
        while (!done.test(value) && System.currentTimeMillis() < deadline) {
            Thread.sleep(200);
            value = read.call();
        }
        return value;
    }

    private static String valueOf(Map<String, Object> configs, String name) {
        @SuppressWarnings("unchecked")
        Map<String, Object> entry = (Map<String, Object>) configs.get(name);
        return String.valueOf(entry.get("value"));
    }

    private static TopicPartition tp(String topic, int partition) {
        return new TopicPartition(topic, partition);
    }

    private Map<String, Object> offsets(List<TopicPartition> tps, OffsetSpec spec) throws Exception {
        Map<TopicPartition, OffsetSpec> request = new java.util.HashMap<>();
        tps.forEach(tp -> request.put(tp, spec));
        Map<String, Object> r = new TreeMap<>();
        admin.listOffsets(request).all().get().forEach((tp, info) -> r.put(tp.toString(), info.offset()));
        return r;
    }

    private long lso(TopicPartition tp) throws Exception {
        return admin.listOffsets(Map.of(tp, OffsetSpec.latest()), new ListOffsetsOptions(IsolationLevel.READ_COMMITTED))
                .all().get().get(tp).offset();
    }

    private Map<String, Object> committed(String group) throws Exception {
        Map<String, Object> r = new TreeMap<>();
        admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get()
                .forEach((tp, om) -> r.put(tp.toString(), om == null ? null : om.offset()));
        return r;
    }

    private Map<String, Object> topicConfigs(String topic, String... names) throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config config = admin.describeConfigs(List.of(res)).all().get().get(res);
        Map<String, Object> r = new TreeMap<>();
        for (String name : names) r.put(name, entry(config.get(name)));
        return r;
    }

    private static Map<String, Object> entry(ConfigEntry e) {
        Map<String, Object> r = new TreeMap<>();
        if (e == null) return r;
        r.put("value", e.value());
        r.put("source", String.valueOf(e.source()));
        r.put("read_only", e.isReadOnly());
        r.put("type", String.valueOf(e.type()));
        r.put("synonyms", e.synonyms().size());
        r.put("has_documentation", e.documentation() != null);
        return r;
    }

    private static List<String> groupIds(Collection<GroupListing> groups) {
        List<String> ids = new ArrayList<>();
        groups.forEach(g -> ids.add(g.groupId() + ":" + g.type().map(Object::toString).orElse("?") + ":"
                + g.groupState().map(Object::toString).orElse("?")));
        java.util.Collections.sort(ids);
        return ids;
    }

    private static List<String> txnIds(Collection<TransactionListing> listings) {
        List<String> ids = new ArrayList<>();
        listings.forEach(l -> ids.add(l.transactionalId() + ":" + l.state()));
        java.util.Collections.sort(ids);
        return ids;
    }

    private static String str(Object o) {
        return String.valueOf(o);
    }
}
