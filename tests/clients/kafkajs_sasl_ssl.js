// kafkajs over SASL_SSL with PLAIN: TLS to the broker (its certificate
// checked against CA), SASL PLAIN as USER/PASSWORD; produce COUNT messages,
// then read them back through a consumer group.
//
// Usage: node kafkajs_sasl_ssl.js BOOTSTRAP TOPIC CA USER PASSWORD COUNT
// Prints one JSON line: {"acked": n, "consumed": [values]}, or
// {"error": "<kafkajs error name>", "message": "..."} when the connection or
// the authentication fails.
const fs = require("fs");
const { Kafka, logLevel } = require("kafkajs");
const { produceAndReadBack } = require("./kafkajs_read");

const READ_TIMEOUT_MS = 60000;

async function main() {
  const [bootstrap, topic, ca, username, password, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  const kafka = new Kafka({
    clientId: "sluice-kafkajs-sasl-ssl",
    brokers: bootstrap.split(","),
    ssl: { ca: [fs.readFileSync(ca, "utf-8")], rejectUnauthorized: true },
    sasl: { mechanism: "plain", username, password },
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 100, retries: 2 },
  });
  const values = Array.from({ length: count }, (_, i) => `tls-${i}`);
  console.log(JSON.stringify(await produceAndReadBack(kafka, topic, values, READ_TIMEOUT_MS)));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
