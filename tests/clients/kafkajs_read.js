// What the kafkajs scripts share: reading a topic back through a consumer
// group until `count` values arrived or `timeoutMs` passed; read_committed
// unless `readUncommitted`.
async function readAll(kafka, topic, count, timeoutMs, readUncommitted = false) {
  const consumer = kafka.consumer({
    groupId: `sluice-kafkajs-${topic}-${readUncommitted ? "uncommitted" : "committed"}`,
    readUncommitted,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const consumed = [];
  let done;
  const allRead = new Promise((resolve) => (done = resolve));
  await consumer.run({
    eachMessage: async ({ message }) => {
      consumed.push(message.value.toString());
      if (consumed.length >= count) done();
    },
  });
  const timer = setTimeout(done, timeoutMs);
  await allRead;
  clearTimeout(timer);
  await consumer.disconnect();
  return consumed;
}

// Sends `values` (acks=-1) and reads them back: what the secured-listener
// scripts print, {"acked": n, "consumed": [values]}, or {"error": name,
// "message": ...} when the connection or the authentication fails.
async function produceAndReadBack(kafka, topic, values, timeoutMs) {
  const producer = kafka.producer();
  try {
    await producer.connect();
  } catch (e) {
    return { error: e.name, message: String(e.message) };
  }
  await producer.send({ topic, acks: -1, messages: values.map((v) => ({ value: v })) });
  await producer.disconnect();
  const consumed = await readAll(kafka, topic, values.length, timeoutMs);
  return { acked: values.length, consumed };
}

module.exports = { readAll, produceAndReadBack };
