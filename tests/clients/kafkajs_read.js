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

module.exports = { readAll };
