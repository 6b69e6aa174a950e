// node-guard: a venom guard plugin written without the Python SDK.
//
// It speaks the wire protocol of docs/protocol.md with the official `nats`
// client and nothing else:
//
//   * subscribes to `<prefix>.pulse` in queue group `<prefix>.node-guard`
//     (so replicas of this process answer each beat once between them);
//   * decodes the JSON `Pulse` and answers on the pulse's reply subject with a
//     JSON `GuardVerdict` (`"type": "guard"`, `"schema": 1`) and the header
//     `Venom-Plugin: node-guard`: a veto (allow=false, severity critical) when
//     the feature FEATURE is above LIMIT, allow=true otherwise; metric is the
//     feature's value. A pulse without the feature gets allow=true, severity
//     info, reason "feature missing", metric 0 (this guard only vetoes what
//     it can see; list it in `plugins.required_guards` to fail closed when the
//     guard itself is silent);
//   * answers a malformed pulse with an empty body and the NATS micro error
//     headers `Nats-Service-Error` / `Nats-Service-Error-Code: 400`, logs it to
//     stderr and carries on;
//   * registers an ADR-32 micro service `venom-node-guard` whose metadata
//     (`venom.plugin`, `venom.role`, `venom.prefix`, `venom.schema`) is what
//     the arbiter's discovery reads from `$SRV.INFO`, and what
//     `nats micro ls` / `nats micro info venom-node-guard` show.
//
// The messages follow the JSON Schemas of `venom schema export DIR`
// (Pulse.schema.json in, GuardVerdict.schema.json out).
//
// Environment: NATS_URL (nats://127.0.0.1:4222), VENOM_PREFIX (venom),
// FEATURE (plant.temperature), LIMIT (80).
//
// Prints "ready" on stdout once subscribed and flushed; drains and exits 0 on
// SIGTERM / SIGINT.

import { readFileSync } from "node:fs";
import process from "node:process";
import { connect, headers, Empty } from "nats";

const NAME = "node-guard";
const ROLE = "guard";
const SCHEMA_VERSION = 1;
const { version: VERSION } = JSON.parse(
  readFileSync(new URL("./package.json", import.meta.url), "utf8"),
);

// -- configuration ------------------------------------------------------------

function fail(text) {
  process.stderr.write(`${NAME}: ${text}\n`);
  process.exit(2);
}

const NATS_URL = process.env.NATS_URL || "nats://127.0.0.1:4222";
const PREFIX = process.env.VENOM_PREFIX || "venom";
const FEATURE = process.env.FEATURE || "plant.temperature";
const LIMIT = Number(process.env.LIMIT ?? "80");

// The same rule as venom.schemas.Subjects.
if (/[ *>\t\r\n]/.test(PREFIX) || PREFIX.startsWith(".")) {
  fail(`invalid VENOM_PREFIX ${JSON.stringify(PREFIX)}`);
}
if (!Number.isFinite(LIMIT)) {
  fail(`LIMIT must be a finite number, not ${JSON.stringify(process.env.LIMIT)}`);
}

const PULSE_SUBJECT = `${PREFIX}.pulse`; // Subjects(prefix).pulse
const QUEUE_GROUP = `${PREFIX}.${NAME}`; // Subjects(prefix).queue_group(NAME)

// -- logging (stderr; a repeated problem is logged once per 10 s) -------------

const problems = new Map(); // kind -> { last: ms, suppressed: n }

function log(text) {
  process.stderr.write(`${new Date().toISOString()} ${NAME}: ${text}\n`);
}

function problem(kind, detail) {
  const now = Date.now();
  const entry = problems.get(kind);
  if (entry && now - entry.last < 10_000) {
    entry.suppressed += 1;
    return;
  }
  const more = entry && entry.suppressed ? ` (${entry.suppressed} more since last logged)` : "";
  problems.set(kind, { last: now, suppressed: 0 });
  log(`${kind}: ${detail}${more}`);
}

// -- the pulse ------------------------------------------------------------------

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

// Checks what Pulse.schema.json requires (and what this guard reads); fields
// it does not know are ignored, as the protocol asks of every reader.
function decodePulse(data) {
  let pulse;
  try {
    pulse = JSON.parse(utf8.decode(data));
  } catch (err) {
    throw new Error(`not JSON: ${err.message}`);
  }
  if (!isObject(pulse)) throw new Error("not a JSON object");
  for (const key of ["beat", "seed"]) {
    if (!Number.isInteger(pulse[key])) throw new Error(`${key}: expected an integer`);
  }
  for (const key of ["issued_at", "deadline", "t_lambda"]) {
    if (typeof pulse[key] !== "number" || !Number.isFinite(pulse[key])) {
      throw new Error(`${key}: expected a number`);
    }
  }
  if (pulse.schema !== undefined && !Number.isInteger(pulse.schema)) {
    throw new Error("schema: expected an integer");
  }
  if (pulse.features === undefined) {
    pulse.features = {};
  } else if (!isObject(pulse.features)) {
    throw new Error("features: expected an object");
  }
  for (const [key, value] of Object.entries(pulse.features)) {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new Error(`features.${key}: expected a finite number`);
    }
  }
  return pulse;
}

// A GuardVerdict as schemas/messages.py defines it (tag field "type").
function verdict(allow, severity, reason, metric) {
  return {
    type: "guard",
    schema: SCHEMA_VERSION,
    guard: NAME,
    allow,
    severity,
    reason,
    metric,
    blocks: [],
    recommend: "",
  };
}

function judge(features) {
  if (!Object.hasOwn(features, FEATURE)) {
    return verdict(true, "info", "feature missing", 0);
  }
  const value = features[FEATURE];
  if (value > LIMIT) {
    return verdict(false, "critical", `${FEATURE} ${value} > limit ${LIMIT}`, value);
  }
  return verdict(true, "info", "", value);
}

// -- bus ------------------------------------------------------------------------

const replyHeaders = headers();
replyHeaders.set("Venom-Plugin", NAME);

let lastBeat = -1;
let rejected = 0;

function errorHeaders(code, text) {
  const h = headers();
  h.set("Nats-Service-Error", text.replace(/[\r\n]+/g, " ").slice(0, 512));
  h.set("Nats-Service-Error-Code", String(code));
  h.set("Venom-Plugin", NAME);
  return h;
}

function onPulse(err, msg) {
  if (err) {
    problem("subscription error", err.message);
    return;
  }
  let pulse;
  try {
    pulse = decodePulse(msg.data);
  } catch (exc) {
    rejected += 1;
    const text = `malformed pulse: ${exc.message}`;
    problem("malformed pulse", `${exc.message} (subject ${msg.subject}, reply ${msg.reply || "-"})`);
    if (msg.reply) {
      try {
        msg.respond(Empty, { headers: errorHeaders(400, text) });
      } catch (exc2) {
        problem("reply not sent", exc2.message);
      }
    }
    return;
  }
  lastBeat = pulse.beat;
  if (!msg.reply) return;
  try {
    msg.respond(encoder.encode(JSON.stringify(judge(pulse.features))), {
      headers: replyHeaders,
    });
  } catch (exc) {
    problem("reply not sent", exc.message);
  }
}

async function watchStatus(nc) {
  for await (const s of nc.status()) {
    if (["disconnect", "reconnect", "error", "ldm"].includes(s.type)) {
      log(`connection ${s.type}: ${typeof s.data === "string" ? s.data : JSON.stringify(s.data)}`);
    }
  }
}

async function main() {
  const nc = await connect({
    servers: NATS_URL,
    name: `venom-${NAME}`,
    maxReconnectAttempts: -1, // reconnect forever (SPEC 5.4)
    reconnectTimeWait: 500,
  });
  watchStatus(nc).catch(() => {});

  const service = await nc.services.add({
    name: `venom-${NAME}`,
    version: VERSION,
    description: `venom ${ROLE} plugin ${NAME} (Node.js): vetoes ${FEATURE} > ${LIMIT}`,
    metadata: {
      "venom.plugin": NAME,
      "venom.role": ROLE,
      "venom.prefix": PREFIX,
      "venom.schema": String(SCHEMA_VERSION),
    },
    statsHandler: async () => ({ last_beat: lastBeat, rejected, role: ROLE }),
  });
  // The pulse is a service endpoint, so `$SRV.STATS` counts it. Its queue group
  // goes on the endpoint, not on the service: nats.js 2.29 validates the
  // service-wide `queue` option as a plain name (no dots), but venom's queue
  // groups are `<prefix>.<plugin>`; the endpoint option is passed to the
  // subscription as it is. The check below makes a nats.js that changes this
  // fail loudly at start rather than answer in the wrong queue group (which
  // would make replicas answer a beat twice). The fallback then is a plain
  // `nc.subscribe(PULSE_SUBJECT, { queue: QUEUE_GROUP, callback })` with the
  // service kept for discovery only.
  service.addEndpoint("pulse", { subject: PULSE_SUBJECT, queue: QUEUE_GROUP, handler: onPulse });
  const endpoint = service.info().endpoints.find((e) => e.name === "pulse");
  if (!endpoint || endpoint.queue_group !== QUEUE_GROUP || endpoint.subject !== PULSE_SUBJECT) {
    throw new Error(`pulse endpoint not in queue group ${QUEUE_GROUP}: ${JSON.stringify(endpoint)}`);
  }
  await nc.flush();

  let stopping = false;
  const stop = async (signal) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: draining`);
    try {
      await service.stop();
      await nc.drain();
    } catch (exc) {
      log(`drain failed: ${exc.message}`);
      await nc.close();
    }
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));

  log(
    `answering ${PULSE_SUBJECT} (queue ${QUEUE_GROUP}) on ${nc.getServer()}: ` +
      `veto when ${FEATURE} > ${LIMIT}`,
  );
  process.stdout.write("ready\n");

  const err = await nc.closed();
  if (err) {
    log(`connection closed: ${err.message}`);
    return 1;
  }
  if (!stopping) {
    log("connection closed");
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    log(`fatal: ${err.message}`);
    process.exit(1);
  },
);
