// @platformatic/kafka (1.x: pure JavaScript, its own protocol code, the
// request versions of Kafka 3.5 to 4.1), driven by tests/js_clients.rs:
//
//   node platformatic_kafka.mjs BOOTSTRAP SRC OUT COUNT
//
// 1. Its admin client creates SRC (3 partitions) and OUT (2).
// 2. An idempotent producer fills SRC with COUNT keyed messages with a header.
// 3. Two members of a consumer protocol group (KIP-848) read SRC,
//    committing each message.
// 4. A transactional producer aborts a transaction that wrote 20 values to
//    OUT, then copies SRC to OUT through a classic group, each 50 messages
//    and their offsets committed in one transaction.
// 5. OUT is read with read_committed and with read_uncommitted.
//
// Prints one JSON line: {"group_read": ["key=value;n=N", ...],
// "members": [member ids], "committed": [values], "uncommitted": [values]};
// exits 1 with the reason on stderr when something fails.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.NODE_PATH;
const kafka = await import(pathToFileURL(join(modules, "@platformatic/kafka/dist/index.js")).href);
const { Admin, Consumer, Producer, stringSerializers, stringDeserializers } = kafka;

const [bootstrap, src, out, countArg] = process.argv.slice(2);
const count = Number(countArg);
const brokers = bootstrap.split(",");
const ABORTED = 20;
// Every wait is bounded: a client that hangs fails the test, not CI.
const DEADLINE_MS = 60_000;
setTimeout(() => {
  console.error("platformatic_kafka.mjs: out of time");
  process.exit(1);
}, DEADLINE_MS).unref();

async function createTopics() {
  const admin = new Admin({ clientId: "pk-admin", bootstrapBrokers: brokers });
  await admin.createTopics({ topics: [src], partitions: 3, replicas: 1 });
  await admin.createTopics({ topics: [out], partitions: 2, replicas: 1 });
  await admin.close();
}

async function fill() {
  const producer = new Producer({
    clientId: "pk-producer",
    bootstrapBrokers: brokers,
    serializers: stringSerializers,
    idempotent: true,
  });
  const messages = [];
  for (let i = 0; i < count; i++) {
    const value = `v-${String(i).padStart(5, "0")}`;
    messages.push({ topic: src, key: `k-${i % 11}`, value, headers: { n: String(i) } });
  }
  for (let i = 0; i < count; i += 50) {
    await producer.send({ messages: messages.slice(i, i + 50) });
  }
  await producer.close();
}

// Two consumer protocol members read SRC until every value arrived.
async function readInConsumerGroup() {
  const read = [];
  const seen = new Set();
  const members = [];
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  for (let i = 0; i < 2; i++) {
    const consumer = new Consumer({
      clientId: `pk-member-${i}`,
      groupId: "pk-consumer-group",
      groupProtocol: "consumer",
      bootstrapBrokers: brokers,
      deserializers: stringDeserializers,
    });
    const stream = await consumer.consume({ topics: [src], mode: "earliest", autocommit: false, maxWaitTime: 200 });
    members.push({ consumer, stream });
    stream.on("data", async (m) => {
      await m.commit();
      const n = m.headers.get("n");
      read.push(`${m.key}=${m.value};n=${n}`);
      seen.add(m.value);
      if (seen.size === count) finish();
    });
    stream.on("error", (e) => {
      console.error("consumer group stream:", e);
      process.exit(1);
    });
  }
  await done;
  // What the coordinator gave each (null if one never joined).
  const memberIds = members.map((m) => m.consumer.memberId ?? null);
  for (const { consumer, stream } of members) {
    await stream.close();
    await consumer.close();
  }
  return { read, members: memberIds };
}

async function copyInTransactions() {
  const producer = new Producer({
    clientId: "pk-tx",
    bootstrapBrokers: brokers,
    serializers: stringSerializers,
    transactionalId: "pk-copier",
    idempotent: true,
  });
  const aborted = await producer.beginTransaction();
  for (let i = 0; i < ABORTED; i++) {
    await aborted.send({ messages: [{ topic: out, value: `aborted-${i}` }] });
  }
  await aborted.abort();

  const consumer = new Consumer({
    clientId: "pk-copier",
    groupId: "pk-copier-group",
    bootstrapBrokers: brokers,
    deserializers: stringDeserializers,
  });
  const stream = await consumer.consume({ topics: [src], mode: "earliest", autocommit: false, isolationLevel: 1 });
  let copied = 0;
  let tx = null;
  for await (const m of stream) {
    if (tx === null) {
      tx = await producer.beginTransaction();
      await tx.addConsumer(consumer);
    }
    await tx.send({ messages: [{ topic: out, key: m.key, value: `out-${m.value}` }] });
    await tx.addOffset(m);
    copied++;
    if (copied % 50 === 0 || copied === count) {
      await tx.commit();
      tx = null;
    }
    if (copied === count) break;
  }
  await stream.close();
  await consumer.close();
  await producer.close();
}

// Reads OUT from the start until `want` values arrived, then for one more
// second (anything past `want` would show).
async function readOut(isolationLevel, want) {
  const reader = new Consumer({
    clientId: "pk-reader",
    groupId: `pk-reader-${isolationLevel}`,
    bootstrapBrokers: brokers,
    deserializers: stringDeserializers,
  });
  const stream = await reader.consume({ topics: [out], mode: "earliest", autocommit: false, isolationLevel, maxWaitTime: 200 });
  const values = [];
  let timer = null;
  for await (const m of stream) {
    values.push(m.value);
    if (values.length >= want && timer === null) {
      timer = setTimeout(() => stream.close(), 1000);
    }
  }
  await reader.close();
  return values;
}

try {
  await createTopics();
  await fill();
  const { read, members } = await readInConsumerGroup();
  await copyInTransactions();
  const committed = await readOut(1, count);
  const uncommitted = await readOut(0, count + ABORTED);
  console.log(JSON.stringify({ group_read: read, members, committed, uncommitted }));
  process.exit(0);
} catch (e) {
  console.error("platformatic_kafka.mjs:", e);
  process.exit(1);
}
