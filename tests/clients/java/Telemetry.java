import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Uuid;

/** The Java client's metrics push (KIP-714), as an application with the
 * defaults (enable.metrics.push=true) does it. */
final class Telemetry {
    private Telemetry() {}

    /** telemetry-produce BOOTSTRAP TOPIC METRICS_ADDR: a producer asks the
     * broker for its client instance id, then produces a record at a time
     * until the broker's /metrics at METRICS_ADDR shows metrics this
     * producer pushed (its client.id on org.apache.kafka.producer.* series),
     * or the deadline passes. Prints {"client_instance_id", "client_id",
     * "sent", "series": [lines]}. */
    static Map<String, Object> produceUntilSeen(String bootstrap, String topic, String metricsAddr)
            throws Exception {
        Properties p = Clients.producerProps(bootstrap);
        String clientId = "telemetry-" + System.nanoTime();
        p.put("client.id", clientId);
        p.put("enable.metrics.push", "true");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            Uuid instance = producer.clientInstanceId(Duration.ofSeconds(30));
            long deadline = System.currentTimeMillis() + Clients.DEADLINE_MS;
            int sent = 0;
            List<String> series = List.of();
            while (series.isEmpty() && System.currentTimeMillis() < deadline) {
                producer.send(new ProducerRecord<>(topic, "k", "v" + sent)).get();
                sent++;
                series = scrape(metricsAddr).lines()
                        .filter(l -> l.startsWith("org_apache_kafka_producer_")
                                && l.contains("client_id=\"" + clientId + "\""))
                        .toList();
                if (series.isEmpty()) Thread.sleep(200);
            }
            return Map.of("client_instance_id", instance.toString(), "client_id", clientId,
                    "sent", sent, "series", series);
        }
    }

    /** The body of GET /metrics (HTTP/1.1, the connection closed after it). */
    static String scrape(String addr) throws Exception {
        int colon = addr.lastIndexOf(':');
        try (Socket s = new Socket(addr.substring(0, colon), Integer.parseInt(addr.substring(colon + 1)))) {
            s.setSoTimeout(10_000);
            OutputStream out = s.getOutputStream();
            out.write(("GET /metrics HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = s.getInputStream();
            String response = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            int body = response.indexOf("\r\n\r\n");
            return body < 0 ? "" : response.substring(body + 4);
        }
    }
}
