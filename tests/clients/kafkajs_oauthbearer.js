// kafkajs over SASL_PLAINTEXT with OAUTHBEARER: the token in TOKEN_FILE
// (a JWT) as the bearer token; produce COUNT messages, then read them back
// through a consumer group.
//
// Usage: node kafkajs_oauthbearer.js BOOTSTRAP TOPIC TOKEN_FILE COUNT
// Prints one JSON line: {"acked": n, "consumed": [values]}, or
// {"error": "<kafkajs error name>", "message": "..."} when the connection or
// the authentication fails.
const fs = require("fs");
const { Kafka, logLevel } = require("kafkajs");
const { produceAndReadBack } = require("./kafkajs_read");

const READ_TIMEOUT_MS = 60000;

async function main() {
  const [bootstrap, topic, tokenFile, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  const token = fs.readFileSync(tokenFile, "utf-8").trim();
  const kafka = new Kafka({
    clientId: "sluice-kafkajs-oauthbearer",
    brokers: bootstrap.split(","),
    sasl: { mechanism: "oauthbearer", oauthBearerProvider: async () => ({ value: token }) },
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 100, retries: 2 },
  });
  const values = Array.from({ length: count }, (_, i) => `oauth-${i}`);
  console.log(JSON.stringify(await produceAndReadBack(kafka, topic, values, READ_TIMEOUT_MS)));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
