import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.connect.cli.ConnectDistributed;
import org.apache.kafka.connect.connector.policy.ConnectorClientConfigOverridePolicy;
import org.apache.kafka.connect.errors.NotFoundException;
import org.apache.kafka.connect.runtime.Herder;
import org.apache.kafka.connect.runtime.WorkerConfig;
import org.apache.kafka.connect.runtime.distributed.DistributedConfig;
import org.apache.kafka.connect.runtime.distributed.DistributedHerder;
import org.apache.kafka.connect.runtime.isolation.Plugins;
import org.apache.kafka.connect.runtime.rest.ConnectRestServer;
import org.apache.kafka.connect.runtime.rest.RestClient;
import org.apache.kafka.connect.runtime.rest.entities.ConnectorInfo;
import org.apache.kafka.connect.runtime.rest.entities.ConnectorStateInfo;
import org.apache.kafka.connect.util.FutureCallback;

/** Kafka Connect's distributed worker (Kafka's own connect-runtime), as an
 * operator runs it: its configs, offsets and statuses in compacted topics,
 * its workers a group of protocol type "connect", the group's leader
 * spreading connectors and tasks over the workers. Run with connect-libs/
 * on the classpath besides libs/.
 *
 * <p>The connectors are managed through each worker's herder, the object
 * behind Connect's REST API: the wheel the jars come from lacks Jetty's
 * security module, which the REST API's servlets need, so the workers
 * listen (a worker's id is its REST address) but serve no resources. */
final class Connect extends ConnectDistributed {
    private static final long DEADLINE_MS = Clients.DEADLINE_MS;

    private Connect() {}

    /** connect BOOTSTRAP DIR COUNT EXACTLY_ONCE: worker A starts a file
     * source (DIR/in.txt to topic connect-lines) and a file sink
     * (connect-lines to DIR/out.txt); COUNT/2 lines pass through; worker B
     * joins the group and takes a share of the work; A stops and B takes
     * the rest; the other COUNT/2 lines pass through B alone. EXACTLY_ONCE
     * ("true") turns on the workers' exactly-once source support
     * (transactional source tasks, a fenced config topic). Prints
     * {"out": [lines of DIR/out.txt], "workers_sharing": n,
     * "last_worker_is_b": bool, "states": {connector or task: state}}. */
    static Map<String, Object> run(String bootstrap, String dir, int count, boolean exactlyOnce) throws Exception {
        Path in = Path.of(dir, "in.txt");
        Path out = Path.of(dir, "out.txt");
        Files.writeString(in, "");
        Worker a = new Connect().worker(bootstrap, exactlyOnce);
        Worker b = null;
        try {
            startPipeline(a, in, out, count / 2);

            b = new Connect().worker(bootstrap, exactlyOnce);
            b.awaitReady();
            // Two connectors and their two tasks over two workers: the
            // group's leader (a worker) spreads them over both.
            TreeSet<String> sharing = b.awaitRunning(2);

            a.stop();
            a = null;
            // A left the group: B takes its connectors and tasks once the
            // scheduled rebalance delay passes.
            TreeSet<String> last = b.awaitRunning(1);
            appendLines(in, count / 2, count);
            awaitLines(out, count);

            Map<String, Object> result = new TreeMap<>();
            result.put("out", Files.readAllLines(out));
            result.put("workers_sharing", sharing.size());
            result.put("last_worker_is_b", last.equals(new TreeSet<>(List.of(b.id))));
            result.put("states", b.states());
            return result;
        } finally { // the workers' threads would keep the JVM alive
            if (a != null) a.stop();
            if (b != null) b.stop();
        }
    }

    /** connect-failover BOOTSTRAP DIR COUNT: {@link #single} with topics
     * of three replicas, pausing halfway (the test kills a broker then).
     * connect-secure BOOTSTRAP DIR COUNT KEY=VALUE...: {@link #single}
     * with the broker's default replication, its clients configured with
     * the settings (a SASL login).
     *
     * <p>single: one worker with exactly-once source support runs the file
     * pipeline of {@link #run}: COUNT/2 lines pass through; with PAUSE it
     * prints READY and waits for a line on stdin; the other COUNT/2 lines
     * pass through. CLIENT settings go to the worker's own clients and, as
     * Kafka's docs say to give them, with the producer., consumer. and
     * admin. prefixes to its connectors' clients. Prints {"out": [lines of
     * DIR/out.txt], "states": {connector or task: state}}. */
    static Map<String, Object> single(String bootstrap, String dir, int count, String replication, boolean pause,
            Map<String, String> client) throws Exception {
        Path in = Path.of(dir, "in.txt");
        Path out = Path.of(dir, "out.txt");
        Files.writeString(in, "");
        Worker worker = new Connect().worker(bootstrap, true, replication, client);
        try {
            startPipeline(worker, in, out, count / 2);
            if (pause) {
                System.out.println("READY");
                System.out.flush();
                new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).readLine();
            }
            appendLines(in, count / 2, count);
            awaitLines(out, count);
            Map<String, Object> result = new TreeMap<>();
            result.put("out", Files.readAllLines(out));
            result.put("states", worker.states());
            return result;
        } finally { // the worker's threads would keep the JVM alive
            worker.stop();
        }
    }

    /** Once WORKER is ready, creates the file source (IN to topic
     * connect-lines) and the file sink (connect-lines to OUT) through it,
     * and passes the first LINES lines through them. */
    private static void startPipeline(Worker worker, Path in, Path out, int lines) throws Exception {
        worker.awaitReady();
        worker.put("lines-source", Map.of(
                "connector.class", "org.apache.kafka.connect.file.FileStreamSourceConnector",
                "file", in.toString(), "topic", "connect-lines", "tasks.max", "1"));
        worker.put("lines-sink", Map.of(
                "connector.class", "org.apache.kafka.connect.file.FileStreamSinkConnector",
                "file", out.toString(), "topics", "connect-lines", "tasks.max", "1"));
        appendLines(in, 0, lines);
        awaitLines(out, lines);
    }

    /** A started worker: its herder, and the REST server whose address
     * names it. */
    private record Worker(String id, DistributedHerder herder, ConnectRestServer rest) {
        void stop() {
            herder.stop();
            rest.stop();
        }

        void awaitReady() throws InterruptedException {
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (!herder.isReady()) {
                if (System.currentTimeMillis() > deadline) throw new IllegalStateException(id + " never ready");
                Thread.sleep(100);
            }
        }

        void put(String name, Map<String, String> config) throws Exception {
            FutureCallback<Herder.Created<ConnectorInfo>> created = new FutureCallback<>();
            Map<String, String> named = new HashMap<>(config);
            named.put("name", name); // the REST API adds it from the path
            herder.putConnectorConfig(name, named, false, created);
            created.get(DEADLINE_MS, TimeUnit.MILLISECONDS);
        }

        /** The workers running the connectors and their tasks, once both
         * connectors and a task of each run, on WANT workers. */
        TreeSet<String> awaitRunning(int want) throws InterruptedException {
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            TreeSet<String> workers = new TreeSet<>();
            while (System.currentTimeMillis() < deadline) {
                workers.clear();
                int running = 0;
                for (ConnectorStateInfo status : statuses()) {
                    for (ConnectorStateInfo.AbstractState unit : units(status)) {
                        workers.add(unit.workerId());
                        if (unit.state().equals("RUNNING")) running++;
                    }
                }
                if (running == 4 && workers.size() == want) return workers;
                Thread.sleep(200);
            }
            throw new IllegalStateException("the work never ran on " + want + " workers: " + states());
        }

        /** Each connector's and task's state and worker. */
        Map<String, String> states() {
            Map<String, String> states = new TreeMap<>();
            for (ConnectorStateInfo status : statuses()) {
                for (ConnectorStateInfo.AbstractState unit : units(status)) {
                    String name = unit instanceof ConnectorStateInfo.TaskState task
                            ? status.name() + "-" + task.id() : status.name();
                    states.put(name, unit.state() + (unit.workerId().equals(id) ? "" : " on " + unit.workerId()));
                }
            }
            return states;
        }

        private List<ConnectorStateInfo> statuses() {
            List<ConnectorStateInfo> out = new java.util.ArrayList<>();
            for (String name : List.of("lines-source", "lines-sink")) {
                try {
                    out.add(herder.connectorStatus(name));
                } catch (NotFoundException e) { // not yet in this worker's view of the status topic
                }
            }
            return out;
        }

        private static List<ConnectorStateInfo.AbstractState> units(ConnectorStateInfo status) {
            List<ConnectorStateInfo.AbstractState> units = new java.util.ArrayList<>();
            units.add(status.connector());
            units.addAll(status.tasks());
            return units;
        }
    }

    /** What ConnectDistributed's startConnect does, without the REST
     * API's resources (see above). */
    private Worker worker(String bootstrap, boolean exactlyOnce) {
        return worker(bootstrap, exactlyOnce, "-1", Map.of());
    }

    /** A worker whose topics have REPLICATION replicas (-1: the broker's
     * default replication factor, Kafka's since 2.4), its clients and its
     * connectors' configured with CLIENT besides. */
    private Worker worker(String bootstrap, boolean exactlyOnce, String replication, Map<String, String> client) {
        Map<String, String> props = new HashMap<>();
        client.forEach((key, value) -> {
            props.put(key, value);
            for (String prefix : List.of("producer.", "consumer.", "admin.")) props.put(prefix + key, value);
        });
        props.put("bootstrap.servers", bootstrap);
        props.put("group.id", "connect-cluster");
        props.put("key.converter", "org.apache.kafka.connect.storage.StringConverter");
        props.put("value.converter", "org.apache.kafka.connect.storage.StringConverter");
        props.put("config.storage.topic", "connect-configs");
        props.put("offset.storage.topic", "connect-offsets");
        props.put("status.storage.topic", "connect-status");
        props.put("config.storage.replication.factor", replication);
        props.put("offset.storage.replication.factor", replication);
        props.put("status.storage.replication.factor", replication);
        props.put("listeners", "http://127.0.0.1:0");
        props.put("offset.flush.interval.ms", "500");
        // A departed worker's share waits this long before it moves (five
        // minutes by default, for a restart to come back to its work).
        props.put("scheduled.rebalance.max.delay.ms", "2000");
        if (exactlyOnce) props.put("exactly.once.source.support", "enabled");

        Plugins plugins = new Plugins(props);
        plugins.compareAndSwapWithDelegatingLoader();
        DistributedConfig config = createConfig(props);
        RestClient restClient = new RestClient(config);
        ConnectRestServer rest = new ConnectRestServer(config.rebalanceTimeout(), restClient, config.originals());
        rest.initializeServer();
        URI url = rest.advertisedUrl();
        String id = url.getHost() + ":" + url.getPort();
        ConnectorClientConfigOverridePolicy policy = plugins.newPlugin(
                config.getString(WorkerConfig.CONNECTOR_CLIENT_POLICY_CLASS_CONFIG), config,
                ConnectorClientConfigOverridePolicy.class);
        DistributedHerder herder = createHerder(config, id, plugins, policy, rest, restClient);
        herder.start();
        return new Worker(id, herder, rest);
    }

    private static void appendLines(Path file, int from, int to) throws Exception {
        StringBuilder lines = new StringBuilder();
        for (int i = from; i < to; i++) lines.append(String.format("line-%05d%n", i));
        Files.writeString(file, lines, StandardOpenOption.APPEND);
    }

    /** Waits for FILE to hold WANT distinct lines (a sink delivers at least
     * once: a line may come twice). */
    private static void awaitLines(Path file, int want) throws Exception {
        long deadline = System.currentTimeMillis() + Clients.DEADLINE_MS;
        while (System.currentTimeMillis() < deadline) {
            if (Files.exists(file) && new TreeSet<>(Files.readAllLines(file)).size() >= want) return;
            Thread.sleep(100);
        }
        throw new IllegalStateException(file + " never held " + want + " lines");
    }
}
