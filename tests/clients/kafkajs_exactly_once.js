// kafkajs consume-transform-produce exactly once: an idempotent producer
// fills SRC; a transaction writing 20 "aborted-N" values to OUT is aborted;
// then a group consumer of SRC and a transactional producer copy each batch
// to OUT as "out-VALUE", the batch's offsets committed in its transaction
// (TxnOffsetCommit v0, which names no member); OUT is then read with
// read_committed and with read_uncommitted.
//
// Usage: node kafkajs_exactly_once.js BOOTSTRAP SRC OUT GROUP COUNT
// Prints one JSON line: {"committed": [values], "uncommitted": [values],
// "transactions": n}.
const { Kafka, logLevel } = require("kafkajs");
const { readAll } = require("./kafkajs_read");

const ABORTED = 20;
// Every wait is bounded: a client that hangs fails the test, not CI.
const DEADLINE_MS = 60000;

async function fill(kafka, topic, count) {
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  const values = [];
  for (let i = 0; i < count; i++) values.push(`v-${String(i).padStart(5, "0")}`);
  for (let i = 0; i < count; i += 50) {
    await producer.send({ topic, acks: -1, messages: values.slice(i, i + 50).map((value) => ({ value })) });
  }
  await producer.disconnect();
}

async function copy(kafka, src, out, group, count) {
  const producer = kafka.producer({ transactionalId: "kafkajs-eos", idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const aborted = await producer.transaction();
  await aborted.send({ topic: out, messages: [...Array(ABORTED).keys()].map((i) => ({ value: `aborted-${i}` })) });
  await aborted.abort();

  const consumer = kafka.consumer({ groupId: group });
  await consumer.connect();
  await consumer.subscribe({ topic: src, fromBeginning: true });
  let copied = 0;
  let transactions = 0;
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return;
      const txn = await producer.transaction();
      try {
        await txn.send({
          topic: out,
          messages: batch.messages.map((m) => ({ value: `out-${m.value.toString()}` })),
        });
        const next = (BigInt(batch.lastOffset()) + 1n).toString();
        await txn.sendOffsets({
          consumerGroupId: group,
          topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }],
        });
        await txn.commit();
      } catch (e) {
        await txn.abort();
        throw e;
      }
      transactions++;
      copied += batch.messages.length;
      if (copied >= count) finish();
    },
  });
  const timer = setTimeout(() => finish(new Error(`copied only ${copied} of ${count}`)), DEADLINE_MS);
  const error = await done;
  clearTimeout(timer);
  await consumer.disconnect();
  await producer.disconnect();
  if (error) throw error;
  return transactions;
}

async function main() {
  const [bootstrap, src, out, group, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  const kafka = new Kafka({ clientId: "sluice-kafkajs-eos", brokers: bootstrap.split(","), logLevel: logLevel.WARN });
  await fill(kafka, src, count);
  const transactions = await copy(kafka, src, out, group, count);
  const committed = await readAll(kafka, out, count, DEADLINE_MS);
  const uncommitted = await readAll(kafka, out, count + ABORTED, DEADLINE_MS, true);
  console.log(JSON.stringify({ committed, uncommitted, transactions }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
