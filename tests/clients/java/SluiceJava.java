import java.util.Arrays;

/** The Java client (Kafka's own kafka-clients) driven by tests/java_clients.rs.
 * Usage: SluiceJava COMMAND ARGS...; prints one JSON line last. */
public final class SluiceJava {
    public static void main(String[] args) throws Exception {
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        Object result = switch (args[0]) {
            case "produce-consume" -> Clients.produceConsume(rest[0], rest[1], rest[2], rest[3]);
            case "failover" -> Clients.failover(rest[0], rest[1], Integer.parseInt(rest[2]));
            case "exactly-once" -> Clients.exactlyOnce(rest[0], rest[1], rest[2], rest[3], Integer.parseInt(rest[4]),
                    rest.length > 5 && rest[5].equals("pause"));
            case "admin-tour" -> AdminTour.run(rest[0]);
            case "share-consume" -> Share.shareConsume(rest[0], rest[1], rest[2], Integer.parseInt(rest[3]));
            case "share-committed" -> Share.shareCommitted(rest[0], rest[1], rest[2]);
            case "delegation-tokens" -> Tokens.run(rest[0], rest[1]);
            case "rack-consume" -> Clients.rackConsume(rest[0], rest[1], Integer.parseInt(rest[2]), rest[3]);
            case "secure" -> Clients.secure(rest[0], rest[1], Integer.parseInt(rest[2]),
                    Arrays.asList(rest).subList(3, rest.length));
            case "connect-failover" -> Connect.single(rest[0], rest[1], Integer.parseInt(rest[2]), "3", true,
                    java.util.Map.of());
            case "connect-secure" -> Connect.single(rest[0], rest[1], Integer.parseInt(rest[2]), "-1", false,
                    settings(Arrays.asList(rest).subList(3, rest.length)));
            case "telemetry-produce" -> Telemetry.produceUntilSeen(rest[0], rest[1], rest[2]);
            case "connect" -> Connect.run(rest[0], rest[1], Integer.parseInt(rest[2]), rest[3].equals("true"));
            default -> throw new IllegalArgumentException("unknown command " + args[0]);
        };
        System.out.println(Json.of(result));
        System.out.flush();
        // The clients' threads are closed; exit without waiting for the JVM's.
        System.exit(0);
    }

    /** KEY=VALUE arguments as a map. */
    static java.util.Map<String, String> settings(java.util.List<String> args) {
        java.util.Map<String, String> settings = new java.util.HashMap<>();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            settings.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        return settings;
    }
}
