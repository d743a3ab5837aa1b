import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListConfigResourcesOptions;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;

/** The Java client's metrics push (KIP-714), as an application with the
 * defaults (enable.metrics.push=true) does it. */
final class Telemetry {
    private Telemetry() {}

    /** telemetry-produce BOOTSTRAP TOPIC METRICS_ADDR: the Admin client
     * subscribes Java clients to producer metrics every 500 ms (a
     * CLIENT_METRICS config resource, as kafka-client-metrics.sh does it)
     * and reads the subscription back; then a producer asks the broker for
     * its client instance id and produces a record at a time until the
     * broker's /metrics at METRICS_ADDR shows metrics it pushed (its
     * client.id on org.apache.kafka.producer.* series), or the deadline
     * passes. Prints {"described": {config: value}, "listed": [names],
     * "client_instance_id", "client_id", "sent", "series": [lines]}. */
    static Map<String, Object> produceUntilSeen(String bootstrap, String topic, String metricsAddr)
            throws Exception {
        ConfigResource subscription = new ConfigResource(ConfigResource.Type.CLIENT_METRICS, "java");
        Map<String, String> described = new TreeMap<>();
        List<String> listed;
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
            Collection<AlterConfigOp> ops = List.of(
                    set("metrics", "org.apache.kafka.producer."),
                    set("interval.ms", "500"),
                    set("match", "client_software_name=apache-kafka-java"));
            admin.incrementalAlterConfigs(Map.of(subscription, ops)).all().get();
            Config config = admin.describeConfigs(List.of(subscription)).all().get().get(subscription);
            for (ConfigEntry e : config.entries()) described.put(e.name(), e.value());
            listed = admin.listConfigResources(Set.of(ConfigResource.Type.CLIENT_METRICS),
                    new ListConfigResourcesOptions()).all().get().stream().map(ConfigResource::name).toList();
        }
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
            return Map.of("described", described, "listed", listed,
                    "client_instance_id", instance.toString(), "client_id", clientId,
                    "sent", sent, "series", series);
        }
    }

    private static AlterConfigOp set(String name, String value) {
        return new AlterConfigOp(new ConfigEntry(name, value), AlterConfigOp.OpType.SET);
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
