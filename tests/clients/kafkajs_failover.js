// kafkajs (idempotent, acks=-1) across a leader's death: produce half the
// messages, print READY and wait for a line on stdin (the test kills the
// leader meanwhile), produce the rest (the client re-routes to the new
// leader), then read everything back through a consumer group.
//
// Usage: node kafkajs_failover.js BOOTSTRAP TOPIC COUNT
// Prints READY, then one JSON line: {"acked": [values], "failed": n, "consumed": [values]}.
const readline = require("readline");
const { Kafka, logLevel } = require("kafkajs");
const { readAll } = require("./kafkajs_read");

const CHUNK = 20;
const READ_TIMEOUT_MS = 60000;

async function sendAll(producer, topic, values) {
  const acked = [];
  let failed = 0;
  for (let i = 0; i < values.length; i += CHUNK) {
    const chunk = values.slice(i, i + CHUNK);
    try {
      await producer.send({ topic, acks: -1, messages: chunk.map((v) => ({ value: v })) });
      acked.push(...chunk);
    } catch (e) {
      // A failed delivery is reported, not fatal.
      console.error(`delivery failed: ${e}`);
      failed += chunk.length;
    }
  }
  return { acked, failed };
}

function nextLine() {
  const rl = readline.createInterface({ input: process.stdin });
  return new Promise((resolve) =>
    rl.once("line", (line) => {
      rl.close();
      resolve(line);
    }),
  );
}

async function main() {
  const [bootstrap, topic, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  const kafka = new Kafka({
    clientId: "sluice-kafkajs-test",
    brokers: bootstrap.split(","),
    logLevel: logLevel.ERROR,
    retry: { initialRetryTime: 200, retries: 10 },
  });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const values = Array.from({ length: count }, (_, i) => `v-${String(i).padStart(5, "0")}`);
  const first = await sendAll(producer, topic, values.slice(0, count / 2));
  console.log("READY");
  await nextLine();
  const second = await sendAll(producer, topic, values.slice(count / 2));
  await producer.disconnect();
  const acked = first.acked.concat(second.acked);
  const failed = first.failed + second.failed;

  const consumed = await readAll(kafka, topic, acked.length, READ_TIMEOUT_MS);
  console.log(JSON.stringify({ acked, failed, consumed }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
