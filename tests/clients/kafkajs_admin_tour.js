// A tour of every public method of kafkajs 2.2.4's admin client.
//
// Sets the stage first, through the library's own producer and consumer:
// creates the topics tour-a (3 partitions) and tour-scratch (2 partitions,
// retention.ms set); produces 10 messages to each partition of tour-a, a
// second apart by timestamp; runs the consumer group tour-group to the end of
// tour-a, commits and disconnects (so the group is Empty); keeps a consumer
// of tour-live running (a group with a member) until the end.
//
// Then calls each admin method once, as an operator would, each in its own
// try/catch; methods that change state also look at the state afterwards
// (the "after" part of their result). Where Kafka 4.x answers a call with an
// error (ACL calls without an authorizer: SECURITY_DISABLED; deleting a group
// with members: NON_EMPTY_GROUP), the call expects exactly that error and is
// ok only when it gets it. The whole run is bounded by a watchdog, and each
// call by its own deadline.
//
// Usage: NODE_PATH=.../node_modules node kafkajs_admin_tour.js BOOTSTRAP
// Prints one JSON line: {"<method>": {"ok": true, "result": ..} or
// {"ok": false, "error": "<ErrorName: message>"}, ...} with one entry per
// admin method (variants as "<method>_<variant>"), plus "_setup" for the
// stage, "_sent" (the requests each method sent, "Name(key: k, version: v)",
// and the responses that came back as errors) and "_client_log" (what
// kafkajs logged at WARN or ERROR).
const { Kafka, logLevel, ConfigResourceTypes, AclResourceTypes, AclOperationTypes,
  AclPermissionTypes, ResourcePatternTypes } = require("kafkajs");
const { bounded, tour } = require("./js_tour");

const WATCHDOG_MS = 300_000;
const CALL_MS = 60_000;
const TIMEOUT_MS = 30_000;

const TOPIC = "tour-a";
const SCRATCH = "tour-scratch";
const GROUP = "tour-group";
const LIVE_GROUP = "tour-live";
const USER = "tour-user";
const PER_PARTITION = 10;

const METHODS = `connect disconnect listTopics createTopics deleteTopics createPartitions
fetchTopicMetadata fetchTopicOffsets fetchTopicOffsetsByTimestamp describeCluster setOffsets
resetOffsets fetchOffsets deleteTopicRecords describeConfigs alterConfigs listGroups
describeGroups deleteGroups describeAcls createAcls deleteAcls alterPartitionReassignments
listPartitionReassignments`.split(/\s+/);

const clientLog = [];

// Requests the admin client sends are filed under the method being called.
const logCreator = () => ({ namespace, level, log }) => {
  const { message, clientId } = log;
  if (level <= logLevel.WARN) {
    clientLog.push(`${namespace} ${message}${log.error ? `: ${log.error}` : ""}${log.groupId ? ` (group ${log.groupId})` : ""}`);
  }
  if (clientId !== "tour-admin" || t.current === null) return;
  const bucket = (t.sent[t.current] ??= []);
  if (message.startsWith("Request ")) {
    const what = message.slice("Request ".length);
    if (!bucket.includes(what)) bucket.push(what);
  } else if (message.startsWith("Response ") && log.error) {
    bucket.push(`${message} -> ${log.error}`);
  }
};

// VALUE made JSON-able: Buffers as strings, BigInts as strings.
function plain(value) {
  return JSON.parse(JSON.stringify(value ?? null, (_, v) => {
    if (typeof v === "bigint") return v.toString();
    if (v && v.type === "Buffer" && Array.isArray(v.data)) return Buffer.from(v.data).toString("utf8");
    return v;
  }));
}

// ERROR as one line, with what kafkajs nests inside it (aggregate errors,
// per-group and per-partition errors) and the protocol error type.
function describeError(e) {
  if (!(e instanceof Error)) return String(e);
  let text = `${e.name}: ${e.message}`;
  if (e.type) text += ` [${e.type}]`;
  const nested = [];
  for (const inner of e.errors ?? []) nested.push(describeError(inner));
  for (const g of e.groups ?? []) nested.push(`${g.groupId}: ${g.error ? describeError(g.error) : g.errorCode}`);
  for (const p of e.partitions ?? []) nested.push(`partition ${p.partition}: ${p.error ? describeError(p.error) : "?"}`);
  if (e.originalError) nested.push(`original: ${describeError(e.originalError)}`);
  if (e.cause) nested.push(`cause: ${describeError(e.cause)}`);
  if (nested.length) text += ` {${nested.join("; ")}}`;
  return text;
}

// Every protocol error type found in E or nested in it.
function errorTypes(e, found = new Set()) {
  if (!e || typeof e !== "object") return found;
  if (e.type) found.add(e.type);
  for (const inner of e.errors ?? []) errorTypes(inner, found);
  for (const g of e.groups ?? []) errorTypes(g.error, found);
  for (const p of e.partitions ?? []) errorTypes(p.error, found);
  errorTypes(e.originalError, found);
  return found;
}

const t = tour({ callMs: CALL_MS, methods: METHODS, plain, describeError, errorIds: errorTypes });
const { results, call, callExpecting } = t;
const printAndExit = (code) => t.printAndExit(code, { _client_log: clientLog });

// ---------------------------------------------------------------------------
// The stage
// ---------------------------------------------------------------------------

// PER_PARTITION messages to each partition of tour-a; message i is stamped
// BASE_MS + i seconds, so offset i is the one found by timestamp.
async function produce(kafka, baseMs) {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const messages = [];
  for (let partition = 0; partition < 3; partition++) {
    for (let i = 0; i < PER_PARTITION; i++) {
      messages.push({
        key: `k-${i}`,
        value: `v-${partition}-${String(i).padStart(2, "0")}`,
        partition,
        timestamp: String(baseMs + i * 1000),
      });
    }
  }
  await producer.send({ topic: TOPIC, acks: -1, messages });
  await producer.disconnect();
  return messages.length;
}

// tour-group reads tour-a to the end, commits and leaves.
async function consumeAndCommit(kafka) {
  const consumer = kafka.consumer({ groupId: GROUP, sessionTimeout: 30000 });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  const next = {};
  let seen = 0;
  let done;
  const allRead = new Promise((resolve) => (done = resolve));
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      next[partition] = Math.max(next[partition] ?? 0, Number(message.offset) + 1);
      if (++seen >= 3 * PER_PARTITION) done();
    },
  });
  const timer = setTimeout(done, 60_000);
  await allRead;
  clearTimeout(timer);
  await consumer.commitOffsets(
    Object.entries(next).map(([partition, offset]) => ({ topic: TOPIC, partition: Number(partition), offset: String(offset) })));
  await consumer.disconnect();
  return { seen, committed: next };
}

// tour-live gets a member that stays (until the end of the tour).
async function joinLive(kafka) {
  const consumer = kafka.consumer({ groupId: LIVE_GROUP, sessionTimeout: 30000 });
  let joined;
  const join = new Promise((resolve) => (joined = resolve));
  consumer.on(consumer.events.GROUP_JOIN, (e) => joined(e.payload));
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  await consumer.run({ eachMessage: async () => {} });
  const payload = await bounded(join, 60_000, "tour-live join");
  return { consumer, memberId: payload.memberId, assigned: payload.memberAssignment };
}

// ---------------------------------------------------------------------------
// The tour
// ---------------------------------------------------------------------------

async function offsetsOf(admin, topic) {
  return Object.fromEntries((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, { low: p.low, high: p.high }]));
}

async function committed(admin, groupId) {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [TOPIC] });
  return Object.fromEntries(entry.partitions.map((p) => [p.partition, p.offset]));
}

async function topicConfigs(admin, topic) {
  const { resources } = await admin.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }] });
  return Object.fromEntries(resources[0].configEntries.map((c) => [c.configName, c.configValue]));
}

async function topicCalls(admin, baseMs) {
  await call("listTopics", async () => (await admin.listTopics()).sort());
  await call("fetchTopicMetadata", () => admin.fetchTopicMetadata({ topics: [TOPIC, SCRATCH] }));
  await call("describeCluster", () => admin.describeCluster());
  await call("fetchTopicOffsets", () => admin.fetchTopicOffsets(TOPIC));
  // Expected: offset 5 in each partition.
  await call("fetchTopicOffsetsByTimestamp", () => admin.fetchTopicOffsetsByTimestamp(TOPIC, baseMs + 5000));

  await call("deleteTopicRecords", async () => {
    const answer = await admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 0, offset: "3" }] });
    return { answer, offsets_after: await offsetsOf(admin, TOPIC) };
  });

  await call("createPartitions", async () => {
    const answer = await admin.createPartitions({ topicPartitions: [{ topic: SCRATCH, count: 4 }], timeout: TIMEOUT_MS });
    const { topics } = await admin.fetchTopicMetadata({ topics: [SCRATCH] });
    return { answer, partitions_after: topics[0].partitions.length };
  });

  // Reassign tour-a/1 onto the only broker, the one it is on already.
  await call("alterPartitionReassignments", () => admin.alterPartitionReassignments({
    topics: [{ topic: TOPIC, partitionAssignment: [{ partition: 1, replicas: [0] }] }], timeout: TIMEOUT_MS,
  }));
  await call("listPartitionReassignments", async () => ({
    all: await admin.listPartitionReassignments({ timeout: TIMEOUT_MS }),
    one_topic: await admin.listPartitionReassignments({ topics: [{ topic: TOPIC, partitions: [0, 1, 2] }], timeout: TIMEOUT_MS }),
  }));
}

async function configCalls(admin) {
  await call("describeConfigs", () => admin.describeConfigs({
    resources: [
      { type: ConfigResourceTypes.TOPIC, name: SCRATCH },
      { type: ConfigResourceTypes.BROKER, name: "0", configNames: [
        "log.retention.hours", "log.retention.ms", "num.partitions", "auto.create.topics.enable", "message.max.bytes"] },
    ],
    includeSynonyms: true,
  }));
  await call("alterConfigs", async () => {
    const answer = await admin.alterConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: SCRATCH, configEntries: [
        { name: "retention.ms", value: "3600000" }, { name: "cleanup.policy", value: "compact" }] }],
    });
    return { answer, after: await topicConfigs(admin, SCRATCH) };
  });
  // AlterConfigs on broker 0 replaces its dynamic configs: set one, read it
  // back, then clear them all again with an empty set.
  await call("alterConfigs_broker", async () => {
    const alter = (configEntries) => admin.alterConfigs({
      resources: [{ type: ConfigResourceTypes.BROKER, name: "0", configEntries }],
    });
    const retention = async () => {
      const { resources } = await admin.describeConfigs({
        resources: [{ type: ConfigResourceTypes.BROKER, name: "0", configNames: ["log.retention.ms"] }],
      });
      return resources[0].configEntries.map((c) => [c.configName, c.configValue, c.configSource]);
    };
    const answer = await alter([{ name: "log.retention.ms", value: "86400000" }]);
    const after = await retention();
    const cleared = await alter([]);
    return { answer, after, cleared, after_clear: await retention() };
  });
  await call("alterConfigs_validateOnly", async () => {
    const answer = await admin.alterConfigs({
      validateOnly: true,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: SCRATCH, configEntries: [
        { name: "retention.ms", value: "7200000" }] }],
    });
    return { answer, retention_ms_after: (await topicConfigs(admin, SCRATCH))["retention.ms"] };
  });
}

async function groupCalls(admin) {
  await call("listGroups", () => admin.listGroups());
  await call("describeGroups", () => admin.describeGroups([GROUP, LIVE_GROUP]));
  await call("fetchOffsets", () => admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] }));
  await call("fetchOffsets_allTopics", () => admin.fetchOffsets({ groupId: GROUP }));

  await call("setOffsets", async () => {
    const answer = await admin.setOffsets({ groupId: GROUP, topic: TOPIC, partitions: [{ partition: 0, offset: "4" }] });
    return { answer, after: await committed(admin, GROUP) };
  });
  // kafkajs commits the special offset -2 (earliest) for each partition.
  await call("resetOffsets", async () => {
    const answer = await admin.resetOffsets({ groupId: GROUP, topic: TOPIC, earliest: true });
    return { answer, after: await committed(admin, GROUP) };
  });
  // ... which resolveOffsets turns into real offsets (and commits them).
  await call("fetchOffsets_resolveOffsets", async () => {
    const answer = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC], resolveOffsets: true });
    return { answer, after: await committed(admin, GROUP) };
  });
  // kafkajs itself refuses when DescribeGroups says the group has members.
  await call("setOffsets_nonEmptyGroup", async () => {
    try {
      await admin.setOffsets({ groupId: LIVE_GROUP, topic: TOPIC, partitions: [{ partition: 0, offset: "1" }] });
    } catch (e) {
      if (/no running instances, current state: Stable/.test(e.message)) return { expected_error: e.message };
      throw e;
    }
    throw new Error("expected a refusal (group tour-live is Stable), got an answer");
  });
}

async function securityCalls(admin) {
  await callExpecting("describeAcls", "SECURITY_DISABLED", () => admin.describeAcls({
    resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY,
    operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY,
  }));
  await callExpecting("createAcls", "SECURITY_DISABLED", () => admin.createAcls({ acl: [{
    resourceType: AclResourceTypes.TOPIC, resourceName: TOPIC, resourcePatternType: ResourcePatternTypes.LITERAL,
    principal: `User:${USER}`, host: "*", operation: AclOperationTypes.READ, permissionType: AclPermissionTypes.ALLOW,
  }] }));
  await callExpecting("deleteAcls", "SECURITY_DISABLED", () => admin.deleteAcls({ filters: [{
    resourceType: AclResourceTypes.TOPIC, resourceName: TOPIC, resourcePatternType: ResourcePatternTypes.LITERAL,
    principal: `User:${USER}`, operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY,
  }] }));
}

async function main() {
  const bootstrap = process.argv[2];
  if (!bootstrap) {
    console.error("usage: kafkajs_admin_tour.js BOOTSTRAP");
    process.exit(2);
  }
  setTimeout(() => {
    results._watchdog = `out of time after ${WATCHDOG_MS} ms (in ${t.current})`;
    printAndExit(1);
  }, WATCHDOG_MS);

  const retry = { retries: 2, initialRetryTime: 300, maxRetryTime: 5000 };
  const options = { brokers: bootstrap.split(","), logLevel: logLevel.DEBUG, logCreator, retry,
    requestTimeout: TIMEOUT_MS, connectionTimeout: 10_000 };
  const admin = new Kafka({ ...options, clientId: "tour-admin" }).admin();
  const stage = new Kafka({ ...options, clientId: "tour-stage" });

  await call("connect", () => admin.connect());

  // The stage: topics through createTopics, then data and groups.
  await call("createTopics", async () => {
    const created = await admin.createTopics({
      topics: [
        { topic: TOPIC, numPartitions: 3, replicationFactor: 1 },
        { topic: SCRATCH, numPartitions: 2, replicationFactor: 1, configEntries: [{ name: "retention.ms", value: "86400000" }] },
      ],
      timeout: TIMEOUT_MS,
    });
    return { created, listed_after: (await admin.listTopics()).sort() };
  });
  // kafkajs answers false when every topic already exists (TOPIC_ALREADY_EXISTS).
  await call("createTopics_existing", async () => {
    const answer = await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }], timeout: TIMEOUT_MS });
    if (answer !== false) throw new Error(`expected false (TOPIC_ALREADY_EXISTS), got ${JSON.stringify(answer)}`);
    return answer;
  });
  await call("createTopics_validateOnly", async () => {
    const answer = await admin.createTopics({
      topics: [{ topic: "tour-validate-only", numPartitions: 1 }], validateOnly: true, waitForLeaders: false, timeout: TIMEOUT_MS,
    });
    return { answer, listed_after: (await admin.listTopics()).includes("tour-validate-only") };
  });

  const setup = {};
  let live = null;
  const baseMs = Date.now() - 60_000;
  try {
    setup.produced = await bounded(produce(stage, baseMs), 60_000, "produce");
    setup.consumed = await bounded(consumeAndCommit(stage), 90_000, "consume");
    live = await joinLive(stage);
    setup.live = { memberId: live.memberId, assigned: live.assigned };
  } catch (e) {
    setup.error = describeError(e);
  }
  results._setup = setup;

  await topicCalls(admin, baseMs);
  await configCalls(admin);
  await groupCalls(admin);
  await securityCalls(admin);

  await callExpecting("deleteGroups_nonEmpty", "NON_EMPTY_GROUP", () => admin.deleteGroups([LIVE_GROUP]));
  await call("deleteGroups", async () => {
    const answer = await admin.deleteGroups([GROUP]);
    return { answer, groups_after: (await admin.listGroups()).groups.map((g) => g.groupId).sort() };
  });

  await call("deleteTopics", async () => {
    const answer = await admin.deleteTopics({ topics: [SCRATCH], timeout: TIMEOUT_MS });
    return { answer, still_listed: (await admin.listTopics()).includes(SCRATCH) };
  });

  if (live !== null) {
    try {
      await bounded(live.consumer.disconnect(), 30_000, "tour-live disconnect");
    } catch (e) {
      setup.live_disconnect_error = describeError(e);
    }
  }
  await call("disconnect", () => admin.disconnect());
  printAndExit(0);
}

main().catch((e) => {
  results._fatal = describeError(e);
  printAndExit(1);
});
