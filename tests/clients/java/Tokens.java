import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.CreateDelegationTokenOptions;
import org.apache.kafka.clients.admin.ExpireDelegationTokenOptions;
import org.apache.kafka.clients.admin.RenewDelegationTokenOptions;
import org.apache.kafka.common.security.auth.KafkaPrincipal;
import org.apache.kafka.common.security.token.delegation.DelegationToken;
import org.apache.kafka.common.security.token.delegation.TokenInformation;

/** Delegation tokens (KIP-48) through Kafka's Admin client and a SCRAM
 * login with a token. */
final class Tokens {
    private Tokens() {}

    static List<String> scram(String user, String password, boolean token) {
        return List.of(
                "security.protocol=SASL_PLAINTEXT",
                "sasl.mechanism=SCRAM-SHA-256",
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
                        + user + "\" password=\"" + password + "\"" + (token ? " tokenauth=\"true\"" : "") + ";");
    }

    static Properties admin(String bootstrap, List<String> settings) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("default.api.timeout.ms", "20000");
        p.put("request.timeout.ms", "10000");
        for (String setting : settings) {
            int eq = setting.indexOf('=');
            p.put(setting.substring(0, eq), setting.substring(eq + 1));
        }
        return p;
    }

    /** The simple name of what a call failed with, or "done". */
    interface Call { void run() throws Exception; }
    static String outcome(Call call) {
        try {
            call.run();
            return "done";
        } catch (ExecutionException e) {
            return e.getCause().getClass().getSimpleName();
        } catch (Exception e) {
            return e.getClass().getSimpleName();
        }
    }

    /** delegation-tokens BOOTSTRAP TOPIC: alice (password alice-secret)
     * makes a token renewable by carol; the token produces and consumes as
     * alice, may not make a token itself; mallory may not renew it, alice
     * renews and then expires it, after which it logs in no more. */
    static Map<String, Object> run(String bootstrap, String topic) throws Exception {
        Map<String, Object> out = new TreeMap<>();
        try (Admin alice = Admin.create(admin(bootstrap, scram("alice", "alice-secret", false)));
             Admin mallory = Admin.create(admin(bootstrap, scram("mallory", "mallory-secret", false)))) {
            CreateDelegationTokenOptions options = new CreateDelegationTokenOptions()
                    .renewers(List.of(new KafkaPrincipal("User", "carol")));
            DelegationToken token = alice.createDelegationToken(options).delegationToken().get();
            TokenInformation info = token.tokenInfo();
            out.put("owner", info.owner().toString());
            out.put("requester", info.tokenRequester().toString());
            out.put("renewers", info.renewers().toString());
            out.put("issued", info.issueTimestamp());
            out.put("expiry", info.expiryTimestamp());
            out.put("max", info.maxTimestamp());
            out.put("described", alice.describeDelegationToken().delegationTokens().get().stream()
                    .filter(t -> t.tokenInfo().tokenId().equals(info.tokenId()))
                    .map(t -> t.hmacAsBase64String().equals(token.hmacAsBase64String()))
                    .toList());
            out.put("described_to_mallory", mallory.describeDelegationToken().delegationTokens().get().size());

            List<String> byToken = scram(info.tokenId(), token.hmacAsBase64String(), true);
            out.put("with_token", Clients.secure(bootstrap, topic, 5, byToken));
            try (Admin tokenAdmin = Admin.create(admin(bootstrap, byToken))) {
                out.put("token_creates", outcome(() -> tokenAdmin.createDelegationToken().delegationToken().get()));
            }
            out.put("mallory_renews", outcome(() -> mallory.renewDelegationToken(token.hmac()).expiryTimestamp().get()));
            out.put("renewed_expiry", alice.renewDelegationToken(token.hmac(),
                    new RenewDelegationTokenOptions().renewTimePeriodMs(3_600_000L)).expiryTimestamp().get());
            alice.expireDelegationToken(token.hmac(),
                    new ExpireDelegationTokenOptions().expiryTimePeriodMs(-1)).expiryTimestamp().get();
            out.put("described_after_expiry", alice.describeDelegationToken().delegationTokens().get().size());
            out.put("renew_after_expiry", outcome(() -> alice.renewDelegationToken(token.hmac()).expiryTimestamp().get()));
            out.put("after_expiry", Clients.secure(bootstrap, topic + "-after", 1, byToken));
        }
        return out;
    }
}
