// A tour of every public method of @platformatic/kafka 1.35's Admin client
// (its own methods and the ones it inherits from Base: listApis, metadata,
// connectToBrokers, isActive, isConnected, clearMetadata, close).
//
// Sets the stage first, through the library's own producer and consumer:
// creates the topics tour-a (3 partitions) and tour-scratch (2 partitions,
// retention.ms set); produces 10 messages to each partition of tour-a, a
// second apart by timestamp; runs the classic consumer group tour-group to
// the end of tour-a, commits and closes (so the group is Empty); keeps a
// consumer of tour-live running (a group with a member) until the tour
// removes it.
//
// Then calls each admin method once, as an operator would, each in its own
// try/catch; methods that change state also look at the state afterwards
// (the "after" part of their result). Where Kafka 4.x answers a call with an
// error (ACL calls without an authorizer: SECURITY_DISABLED; creating an
// existing topic: TOPIC_ALREADY_EXISTS; deleting a group with members:
// NON_EMPTY_GROUP), the call expects exactly that error and is ok only when
// it gets it. The whole run is bounded by a watchdog, each call by its own
// deadline.
//
// Usage: NODE_PATH=.../node_modules node platformatic_admin_tour.mjs BOOTSTRAP
// Prints one JSON line: {"<method>": {"ok": true, "result": ..} or
// {"ok": false, "error": "<code: message [API error ids]>"}, ...} with one
// entry per admin method (variants as "<method>_<variant>"), plus "_setup"
// for the stage and "_sent" (the requests each method sent, "Name vN", and
// the ones that failed).
import { tracingChannel } from "node:diagnostics_channel";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import jsTour from "./js_tour.js";

const modules = process.env.NODE_PATH;
const lib = (path) => import(pathToFileURL(join(modules, "@platformatic/kafka/dist", path)).href);
const kafka = await lib("index.js");
const { protocolAPIsById } = await lib("protocol/apis.js");
const {
  Admin, Consumer, Producer, stringSerializers, stringDeserializers,
  AclOperations, AclPermissionTypes, ResourcePatternTypes, ResourceTypes, ConfigResourceTypes,
  IncrementalAlterConfigOperationTypes, ClientQuotaMatchTypes, ClientQuotaEntityTypes, ClientQuotaKeys,
  FindCoordinatorKeyTypes, FetchIsolationLevels, ListOffsetTimestamps,
} = kafka;

const WATCHDOG_MS = 300_000;
const CALL_MS = 60_000;
const TIMEOUT_MS = 30_000;

const TOPIC = "tour-a";
const SCRATCH = "tour-scratch";
const GROUP = "tour-group";
const LIVE_GROUP = "tour-live";
const USER = "tour-user";
const QUOTA_CLIENT = "tour-quota-client";
const PER_PARTITION = 10;

const METHODS = `listTopics createTopics deleteTopics createPartitions listGroups describeGroups
findCoordinator deleteGroups removeMembersFromConsumerGroup describeClientQuotas alterClientQuotas
describeLogDirs listConsumerGroupOffsets alterConsumerGroupOffsets deleteConsumerGroupOffsets
describeConfigs alterConfigs incrementalAlterConfigs createAcls describeAcls deleteAcls listOffsets
deleteRecords listApis metadata connectToBrokers isActive isConnected clearMetadata close`.split(/\s+/);

let adminInstance = -1;

// Requests the admin client sends are filed under the method being called.
tracingChannel("plt:kafka:connections:api").subscribe({
  start(ctx) {
    if (t.current === null || ctx.connection?.ownerId !== adminInstance) return;
    const bucket = (t.sent[t.current] ??= []);
    const what = `${protocolAPIsById[ctx.apiKey] ?? ctx.apiKey}(key: ${ctx.apiKey}) v${ctx.apiVersion}`;
    if (!bucket.includes(what)) bucket.push(what);
  },
  error(ctx) {
    if (t.current === null || ctx.connection?.ownerId !== adminInstance) return;
    (t.sent[t.current] ??= []).push(
      `${protocolAPIsById[ctx.apiKey] ?? ctx.apiKey} v${ctx.apiVersion} -> ${describeError(ctx.error)}`);
  },
  end() {},
  asyncStart() {},
  asyncEnd() {},
});

// VALUE made JSON-able: Maps as objects, BigInts as strings, Buffers as text,
// connections as "host:port".
function plain(value) {
  if (typeof value === "bigint") return value.toString();
  if (value === undefined || value === null) return null;
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), plain(v)]));
  if (value instanceof Set) return [...value].map(plain);
  if (Array.isArray(value)) return value.map(plain);
  if (value instanceof Error) return describeError(value);
  if (typeof value === "object") {
    if (value.constructor?.name === "Connection") return `${value.host}:${value.port}`;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

// ERROR as one line, with the errors nested in it and, for protocol errors,
// the Kafka error id and the broker's message.
function describeError(e) {
  if (!(e instanceof Error)) return String(e);
  let text = `${e.code ?? e.name}: ${e.message}`;
  if (e.apiId) text += ` [${e.apiId}${e.path ? ` at ${e.path}` : ""}${e.serverErrorMessage ? `: ${e.serverErrorMessage}` : ""}]`;
  const nested = (e.errors ?? []).map(describeError);
  if (e.cause) nested.push(`cause: ${describeError(e.cause)}`);
  if (nested.length) text += ` {${nested.join("; ")}}`;
  return text;
}

// Every Kafka error id found in E or nested in it.
function errorIds(e, found = new Set()) {
  if (!e || typeof e !== "object") return found;
  if (e.apiId) found.add(e.apiId);
  for (const inner of e.errors ?? []) errorIds(inner, found);
  errorIds(e.cause, found);
  return found;
}

const t = jsTour.tour({ callMs: CALL_MS, methods: METHODS, plain, describeError, errorIds });
const { results, call, callExpecting } = t;
const { bounded } = jsTour;
const printAndExit = (code) => t.printAndExit(code);

const bootstrap = process.argv[2];
if (!bootstrap) {
  console.error("usage: platformatic_admin_tour.mjs BOOTSTRAP");
  process.exit(2);
}
const brokers = bootstrap.split(",");
setTimeout(() => {
  results._watchdog = `out of time after ${WATCHDOG_MS} ms (in ${t.current})`;
  printAndExit(1);
}, WATCHDOG_MS);

const clientOptions = { bootstrapBrokers: brokers, retries: 2, retryDelay: 500, timeout: TIMEOUT_MS };

// ---------------------------------------------------------------------------
// The stage
// ---------------------------------------------------------------------------

// PER_PARTITION messages to each partition of tour-a; message i is stamped
// BASE_MS + i seconds, so offset i is the one found by timestamp.
async function produce(baseMs) {
  const producer = new Producer({ ...clientOptions, clientId: "tour-producer", serializers: stringSerializers });
  const messages = [];
  for (let partition = 0; partition < 3; partition++) {
    for (let i = 0; i < PER_PARTITION; i++) {
      messages.push({
        topic: TOPIC, key: `k-${i}`, value: `v-${partition}-${String(i).padStart(2, "0")}`, partition,
        timestamp: BigInt(baseMs + i * 1000),
      });
    }
  }
  await producer.send({ messages });
  await producer.close();
  return messages.length;
}

// tour-group reads tour-a to the end, commits the last message of each
// partition and leaves.
async function consumeAndCommit() {
  const consumer = new Consumer({
    ...clientOptions, clientId: "tour-consumer", groupId: GROUP, deserializers: stringDeserializers,
  });
  const stream = await consumer.consume({ topics: [TOPIC], mode: "earliest", autocommit: false, maxWaitTime: 200 });
  const last = new Map();
  let seen = 0;
  let done;
  const allRead = new Promise((resolve) => (done = resolve));
  stream.on("data", (m) => {
    last.set(m.partition, m);
    if (++seen >= 3 * PER_PARTITION) done();
  });
  stream.on("error", (e) => done(e));
  const timer = setTimeout(done, 60_000);
  const error = await allRead;
  clearTimeout(timer);
  if (error) throw error;
  for (const m of last.values()) await m.commit();
  await stream.close();
  await consumer.close();
  return { seen, committed: Object.fromEntries([...last].map(([p, m]) => [p, (m.offset + 1n).toString()])) };
}

// tour-live gets a member that stays until the tour removes it.
async function joinLive() {
  const consumer = new Consumer({
    ...clientOptions, clientId: "tour-live-consumer", groupId: LIVE_GROUP, deserializers: stringDeserializers,
  });
  const stream = await consumer.consume({ topics: [TOPIC], mode: "earliest", autocommit: false, maxWaitTime: 200 });
  stream.on("data", () => {});
  stream.on("error", () => {});
  return { consumer, stream, memberId: consumer.memberId };
}

// ---------------------------------------------------------------------------
// The tour
// ---------------------------------------------------------------------------

async function offsets(admin, timestamp, partitions = [0, 1, 2], isolationLevel = FetchIsolationLevels.READ_UNCOMMITTED) {
  const [topic] = await admin.listOffsets({
    topics: [{ name: TOPIC, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })) }],
    isolationLevel,
  });
  return Object.fromEntries(topic.partitions.map((p) => [p.partitionIndex, p.offset.toString()]));
}

async function committed(admin, groupId) {
  const [group] = await admin.listConsumerGroupOffsets({ groups: [groupId] });
  const out = {};
  for (const topic of group.topics) {
    for (const p of topic.partitions) out[`${topic.name}:${p.partitionIndex}`] = p.committedOffset.toString();
  }
  return out;
}

async function topicConfigs(admin, topic) {
  const [resource] = await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic }] });
  return Object.fromEntries(resource.configs.map((c) => [c.name, c.value]));
}

// NAMES of broker 0's configs as {name: [value, source]}.
async function brokerConfigs(admin, names) {
  const [resource] = await admin.describeConfigs({
    resources: [{ resourceType: ConfigResourceTypes.BROKER, resourceName: "0", configurationKeys: names }],
  });
  return Object.fromEntries(resource.configs.map((c) => [c.name, [c.value, c.configSource]]));
}

async function partitionCount(admin, topic) {
  const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
  return metadata.topics.get(topic).partitionsCount;
}

async function quotas(admin) {
  return admin.describeClientQuotas({ components: [{ entityType: ClientQuotaEntityTypes.CLIENT_ID, matchType: ClientQuotaMatchTypes.ANY }] });
}

async function clusterCalls(admin) {
  await call("listApis", async () => Object.fromEntries((await admin.listApis()).map((a) => [a.name, `${a.minVersion}-${a.maxVersion}`])));
  await call("metadata", () => admin.metadata({ topics: [TOPIC, SCRATCH], forceUpdate: true }));
  await call("connectToBrokers", () => admin.connectToBrokers(null));
  await call("isActive", () => admin.isActive());
  await call("isConnected", () => admin.isConnected());
  await call("clearMetadata", () => {
    admin.clearMetadata();
    return { currentMetadata_after: admin.currentMetadata ?? null };
  });
  await call("describeLogDirs", () => admin.describeLogDirs({ topics: [{ name: TOPIC, partitions: [0, 1, 2] }] }));
}

async function topicCalls(admin, baseMs) {
  await call("listTopics", async () => ({
    plain: await admin.listTopics(),
    with_internals: await admin.listTopics({ includeInternals: true }),
  }));
  await call("listOffsets", async () => ({
    earliest: await offsets(admin, ListOffsetTimestamps.EARLIEST),
    latest: await offsets(admin, ListOffsetTimestamps.LATEST),
    latest_read_committed: await offsets(admin, ListOffsetTimestamps.LATEST, [0, 1, 2], FetchIsolationLevels.READ_COMMITTED),
    // Expected: offset 5 in each partition.
    at_base_plus_5s: await offsets(admin, BigInt(baseMs + 5000)),
  }));
  // Timestamp -3 (KIP-734, ListOffsets v7+): expected offset PER_PARTITION - 1.
  await call("listOffsets_maxTimestamp", () => admin.listOffsets({
    topics: [{ name: TOPIC, partitions: [0, 1, 2].map((partitionIndex) => ({ partitionIndex, timestamp: -3n })) }],
  }));

  await call("deleteRecords", async () => {
    const answer = await admin.deleteRecords({ topics: [{ name: TOPIC, partitions: [{ partition: 0, offset: 3n }] }] });
    return { answer, earliest_after: await offsets(admin, ListOffsetTimestamps.EARLIEST) };
  });

  await call("createPartitions", async () => {
    const answer = await admin.createPartitions({ topics: [{ name: SCRATCH, count: 4 }] });
    return { answer, partitions_after: await partitionCount(admin, SCRATCH) };
  });
  await call("createPartitions_validateOnly", async () => {
    const answer = await admin.createPartitions({ topics: [{ name: SCRATCH, count: 6 }], validateOnly: true });
    return { answer, partitions_after: await partitionCount(admin, SCRATCH) };
  });
}

async function configCalls(admin) {
  await call("describeConfigs", () => admin.describeConfigs({
    resources: [
      { resourceType: ConfigResourceTypes.TOPIC, resourceName: SCRATCH },
      { resourceType: ConfigResourceTypes.BROKER, resourceName: "0", configurationKeys: [
        "log.retention.hours", "log.retention.ms", "num.partitions", "auto.create.topics.enable", "message.max.bytes"] },
    ],
    includeSynonyms: true,
    includeDocumentation: true,
  }));
  await call("alterConfigs", async () => {
    const answer = await admin.alterConfigs({
      resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: SCRATCH, configs: [
        { name: "retention.ms", value: "3600000" }, { name: "cleanup.policy", value: "compact" }] }],
    });
    return { answer, after: await topicConfigs(admin, SCRATCH) };
  });
  await call("incrementalAlterConfigs", async () => {
    const answer = await admin.incrementalAlterConfigs({
      resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: SCRATCH, configs: [
        { name: "segment.ms", configOperation: IncrementalAlterConfigOperationTypes.SET, value: "600000" },
        { name: "cleanup.policy", configOperation: IncrementalAlterConfigOperationTypes.DELETE },
      ] }],
    });
    return { answer, after: await topicConfigs(admin, SCRATCH) };
  });
  // A per-broker dynamic config: set on broker 0, read back, deleted again.
  await call("incrementalAlterConfigs_broker", async () => {
    const change = (configs) => admin.incrementalAlterConfigs({
      resources: [{ resourceType: ConfigResourceTypes.BROKER, resourceName: "0", configs }],
    });
    const retention = async () => (await brokerConfigs(admin, ["log.retention.ms"]))["log.retention.ms"];
    const answer = await change([
      { name: "log.retention.ms", configOperation: IncrementalAlterConfigOperationTypes.SET, value: "86400000" }]);
    const after = await retention();
    const deleted = await change([{ name: "log.retention.ms", configOperation: IncrementalAlterConfigOperationTypes.DELETE }]);
    return { answer, after, deleted, after_delete: await retention() };
  });
  // A static broker config: Kafka refuses it ("Cannot update these configs
  // dynamically"), validate_only or not.
  await callExpecting("incrementalAlterConfigs_brokerStatic", "INVALID_REQUEST", () => admin.incrementalAlterConfigs({
    validateOnly: true,
    resources: [{ resourceType: ConfigResourceTypes.BROKER, resourceName: "0", configs: [
      { name: "num.partitions", configOperation: IncrementalAlterConfigOperationTypes.SET, value: "2" }] }],
  }));

  await call("describeClientQuotas", () => quotas(admin));
  await call("alterClientQuotas", async () => {
    const answer = await admin.alterClientQuotas({
      entries: [{
        entities: [{ entityType: ClientQuotaEntityTypes.CLIENT_ID, entityName: QUOTA_CLIENT }],
        ops: [{ key: ClientQuotaKeys.PRODUCER_BYTE_RATE, value: 1048576, remove: false }],
      }],
    });
    return { answer, after: await quotas(admin) };
  });
  await call("alterClientQuotas_remove", async () => {
    const answer = await admin.alterClientQuotas({
      entries: [{
        entities: [{ entityType: ClientQuotaEntityTypes.CLIENT_ID, entityName: QUOTA_CLIENT }],
        ops: [{ key: ClientQuotaKeys.PRODUCER_BYTE_RATE, remove: true }],
      }],
    });
    return { answer, after: await quotas(admin) };
  });
}

async function groupCalls(admin, live) {
  await call("listGroups", async () => ({
    all: await admin.listGroups(),
    empty_or_stable: await admin.listGroups({ states: ["EMPTY", "STABLE"] }),
    classic: await admin.listGroups({ types: ["classic"] }),
  }));
  await call("describeGroups", () => admin.describeGroups({ groups: [GROUP, LIVE_GROUP], includeAuthorizedOperations: true }));
  await call("findCoordinator", () => admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [GROUP, LIVE_GROUP] }));
  await call("findCoordinator_transaction", () => admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.TRANSACTION, keys: ["tour-txn"] }));
  await call("listConsumerGroupOffsets", async () => ({
    all: await admin.listConsumerGroupOffsets({ groups: [GROUP] }),
    partitions_0_1: await admin.listConsumerGroupOffsets({
      groups: [{ groupId: GROUP, topics: [{ name: TOPIC, partitionIndexes: [0, 1] }] }], requireStable: true,
    }),
  }));

  await call("alterConsumerGroupOffsets", async () => {
    const answer = await admin.alterConsumerGroupOffsets({
      groupId: GROUP, topics: [{ name: TOPIC, partitionOffsets: [{ partition: 0, offset: 4n }, { partition: 1, offset: 5n }] }],
    });
    return { answer, after: await committed(admin, GROUP) };
  });
  // Kafka refuses to commit for a group with members from outside it.
  await callExpecting("alterConsumerGroupOffsets_nonEmpty", "UNKNOWN_MEMBER_ID", () => admin.alterConsumerGroupOffsets({
    groupId: LIVE_GROUP, topics: [{ name: TOPIC, partitionOffsets: [{ partition: 0, offset: 1n }] }],
  }));
  await call("deleteConsumerGroupOffsets", async () => {
    const answer = await admin.deleteConsumerGroupOffsets({ groupId: GROUP, topics: [{ name: TOPIC, partitionIndexes: [2] }] });
    return { answer, after: await committed(admin, GROUP) };
  });

  await callExpecting("deleteGroups_nonEmpty", "NON_EMPTY_GROUP", () => admin.deleteGroups({ groups: [LIVE_GROUP] }));

  await call("removeMembersFromConsumerGroup", async () => {
    const before = (await admin.describeGroups({ groups: [LIVE_GROUP] })).get(LIVE_GROUP);
    const answer = await admin.removeMembersFromConsumerGroup({ groupId: LIVE_GROUP, members: null });
    const after = (await admin.describeGroups({ groups: [LIVE_GROUP] })).get(LIVE_GROUP);
    return {
      before: { state: before.state, members: [...before.members.keys()] },
      answer,
      after: { state: after.state, members: [...after.members.keys()] },
    };
  });
  // The removed member would rejoin on its next heartbeat: close it now.
  if (live !== null) {
    try {
      await bounded(live.stream.close(), 10_000, "tour-live stream close");
      await bounded(live.consumer.close(true), 20_000, "tour-live close");
    } catch (e) {
      results._setup.live_close_error = describeError(e);
    }
  }

  await call("deleteGroups", async () => {
    const answer = await admin.deleteGroups({ groups: [GROUP, LIVE_GROUP] });
    return { answer, groups_after: [...(await admin.listGroups()).keys()].sort() };
  });
}

async function securityCalls(admin) {
  await callExpecting("describeAcls", "SECURITY_DISABLED", () => admin.describeAcls({ filter: {
    resourceType: ResourceTypes.ANY, resourceName: null, resourcePatternType: ResourcePatternTypes.ANY,
    principal: null, host: null, operation: AclOperations.ANY, permissionType: AclPermissionTypes.ANY,
  } }));
  await callExpecting("createAcls", "SECURITY_DISABLED", () => admin.createAcls({ creations: [{
    resourceType: ResourceTypes.TOPIC, resourceName: TOPIC, resourcePatternType: ResourcePatternTypes.LITERAL,
    principal: `User:${USER}`, host: "*", operation: AclOperations.READ, permissionType: AclPermissionTypes.ALLOW,
  }] }));
  await callExpecting("deleteAcls", "SECURITY_DISABLED", () => admin.deleteAcls({ filters: [{
    resourceType: ResourceTypes.TOPIC, resourceName: TOPIC, resourcePatternType: ResourcePatternTypes.LITERAL,
    principal: `User:${USER}`, host: null, operation: AclOperations.ANY, permissionType: AclPermissionTypes.ANY,
  }] }));
}

try {
  const admin = new Admin({ ...clientOptions, clientId: "tour-admin" });
  adminInstance = admin.instanceId;

  // The stage: topics through createTopics, then data and groups.
  await call("createTopics", async () => ({
    [TOPIC]: await admin.createTopics({ topics: [TOPIC], partitions: 3, replicas: 1 }),
    [SCRATCH]: await admin.createTopics({
      topics: [SCRATCH], partitions: 2, replicas: 1, configs: [{ name: "retention.ms", value: "86400000" }],
    }),
  }));
  await callExpecting("createTopics_existing", "TOPIC_ALREADY_EXISTS",
    () => admin.createTopics({ topics: [TOPIC], partitions: 3, replicas: 1 }));

  const setup = {};
  results._setup = setup;
  let live = null;
  const baseMs = Date.now() - 60_000;
  try {
    setup.produced = await bounded(produce(baseMs), 60_000, "produce");
    setup.consumed = await bounded(consumeAndCommit(), 90_000, "consume");
    live = await bounded(joinLive(), 60_000, "tour-live join");
    setup.live = { memberId: live.memberId };
  } catch (e) {
    setup.error = describeError(e);
  }

  await clusterCalls(admin);
  await topicCalls(admin, baseMs);
  await configCalls(admin);
  await securityCalls(admin);
  await groupCalls(admin, live);

  await call("deleteTopics", async () => {
    const answer = await admin.deleteTopics({ topics: [SCRATCH] });
    return { answer, still_listed: (await admin.listTopics()).includes(SCRATCH) };
  });

  await call("close", async () => {
    await admin.close();
    return { closed: admin.closed };
  });
  printAndExit(0);
} catch (e) {
  results._fatal = describeError(e);
  printAndExit(1);
}
