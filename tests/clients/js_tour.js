// What the JavaScript admin tours share (kafkajs_admin_tour.js requires it,
// platformatic_admin_tour.mjs imports it): each call bounded by its own
// deadline, one outcome per call ({"ok": true, "result": ..} or {"ok":
// false, "error": ..}), a call Kafka answers with an error counted as ok
// only when it fails with exactly that error, and the requests each call
// sent, filed by the client's own hook under `current`. The client's parts
// come in: `plain` (a result made JSON-able), `describeError` (an error as
// one line) and `errorIds` (every Kafka error name an error holds, nested
// ones too).

// PROMISE, or a rejection once MS pass without its answer.
function bounded(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function tour({ callMs, methods, plain, describeError, errorIds }) {
  const t = { results: {}, sent: {}, current: null };

  async function timed(name, fn) {
    t.current = name;
    try {
      return await bounded(Promise.resolve().then(fn), callMs, name);
    } finally {
      t.current = null;
    }
  }

  t.call = async (name, fn) => {
    try {
      t.results[name] = { ok: true, result: plain(await timed(name, fn)) };
    } catch (e) {
      t.results[name] = { ok: false, error: describeError(e) };
    }
    return t.results[name];
  };

  // A call Kafka 4.x answers with the error ID: ok only when it does.
  t.callExpecting = async (name, id, fn) => {
    try {
      const answer = await timed(name, fn);
      t.results[name] = { ok: false, error: `expected ${id}, got an answer: ${JSON.stringify(plain(answer))}` };
    } catch (e) {
      t.results[name] = errorIds(e).has(id)
        ? { ok: true, result: { expected_error: id, error: describeError(e) } }
        : { ok: false, error: `expected ${id}, got ${describeError(e)}` };
    }
    return t.results[name];
  };

  // Prints the outcomes as one line (methods never called under
  // `_missing`, the requests under `_sent`, EXTRA beside) and exits.
  t.printAndExit = (code, extra = {}) => {
    const missing = methods.filter((m) => !(m in t.results));
    if (missing.length) t.results._missing = missing;
    t.results._sent = t.sent;
    Object.assign(t.results, extra);
    console.log(JSON.stringify(t.results));
    process.exit(code);
  };

  return t;
}

module.exports = { bounded, tour };
