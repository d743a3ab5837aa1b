import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/** An admin tour's outcomes, one per call: {"ok": true, "result": ..} or
 * {"ok": false, "error": ..}; a call Kafka answers with an error counts
 * as ok only when it fails with exactly that error. With stamps on, each
 * call's name and start time go to stderr, to find its requests in the
 * broker's log. */
final class Tour {
    final Map<String, Object> results = new TreeMap<>();
    private final boolean stamp = System.getenv("TOUR_STAMP") != null;

    void call(String name, Callable<Object> fn) {
        expect(name, null, fn);
    }

    /** Runs FN, which Kafka answers with an error of type EXPECTED (null:
     * no error). */
    void expect(String name, Class<? extends Throwable> expected, Callable<Object> fn) {
        if (stamp) System.err.println(java.time.LocalTime.now() + " " + name);
        Map<String, Object> outcome = new TreeMap<>();
        try {
            Object result = fn.call();
            outcome.put("ok", expected == null);
            outcome.put("result", result);
            if (expected != null) outcome.put("error", "expected " + expected.getSimpleName());
        } catch (Throwable thrown) {
            Throwable cause = unwrap(thrown);
            boolean asKafka = expected != null && expected.isInstance(cause);
            outcome.put("ok", asKafka);
            outcome.put(asKafka ? "expected_error" : "error", describe(cause));
        }
        results.put(name, outcome);
    }

    static Throwable unwrap(Throwable thrown) {
        while ((thrown instanceof ExecutionException || thrown instanceof CompletionException)
                && thrown.getCause() != null) {
            thrown = thrown.getCause();
        }
        return thrown;
    }

    static String describe(Throwable error) {
        return error.getClass().getSimpleName() + ": " + error.getMessage();
    }
}
