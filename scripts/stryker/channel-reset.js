// Between two mutants' runs, no subscriber of the library's diagnostics channels is left over.
//
// Stryker runs every mutant's tests in one long-lived process, and diagnostics channels belong
// to the process, not to jest's module registry. A mutant that breaks unsubscribing (a
// `lockingStatistics().stop()` emptied) left its subscribers behind, and every later run in that
// process failed the tests that require a quiet channel ("with nobody subscribed" in
// test/observability.test.ts): later mutants were reported killed by a test that passes with
// them applied by hand (found on 2026-12-07; docs/testing.md).
const diagnosticsChannel = require("node:diagnostics_channel");
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

/** The channel names src/channels.ts declares, and the events of the lock trace. */
function libraryChannels() {
  const source = readFileSync(join(__dirname, "..", "..", "src", "channels.ts"), "utf8");
  const names = [...new Set(source.match(/"typeorm-locking:[a-z-]+"/g).map((quoted) => JSON.parse(quoted)))];
  const traceEvents = ["start", "end", "asyncStart", "asyncEnd", "error"];
  return [...names, ...names.flatMap((name) => traceEvents.map((event) => `tracing:${name}:${event}`))];
}

let channels;

/** Unsubscribes everything subscribed to the library's channels. */
function resetChannels() {
  channels ??= libraryChannels();
  for (const name of channels) {
    const channel = diagnosticsChannel.channel(name);
    // `_subscribers` is Node's own list (Node 18 to 22); a channel nobody subscribed to has none.
    for (const subscriber of [...(channel._subscribers ?? [])]) channel.unsubscribe(subscriber);
  }
}

module.exports = { resetChannels };
