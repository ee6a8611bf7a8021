/** Usage texts of every command (kept apart so `--help` and usage errors load no command code). */
import { CONFIG_OPTION, type OptionSpec } from "./args.js";

interface Sub {
  usage: string;
  options: OptionSpec;
  min: number;
  max: number;
}

const FORMAT: OptionSpec = { format: { type: "string" } };


export const SERVE_USAGE = `usage: didgate serve [--config FILE]

Run the daemon. SIGTERM/SIGINT drain and exit 0; SIGHUP re-reads the config. With sip.workers > 1
this process is the primary of N SIP workers and passes the signals on to them.
  -c, --config FILE   config file (default config/didgate.yaml, or DIDGATE_CONFIG)
`;

export const LOOKUP_USAGE = `usage: didgate lookup NUMBER [--caller NUMBER] [--at ISO8601] [--country-code CC] [--config FILE]

Print the routing decision for NUMBER as JSON (matched key, kind, state, targets in order, and why),
from the routes file of the config.
  --caller NUMBER        the calling number (caller rules)
  --at ISO8601           the time of the call (schedules); default now
  --country-code CC      how national numbers (no + or 00) become E.164, like a trunk's
                         country_code; default the config's default_country_code
  -c, --config FILE      config file
`;

export const CHECK_CONFIG_USAGE = `usage: didgate check-config [--config FILE]

Validate the config and the routes file; exit 1 listing every error.
  -c, --config FILE   config file
`;

export const ROUTES_SUBCOMMANDS: Record<string, Sub> = {
  import: {
    usage:
      "didgate routes import FILE [--replace] [--atomic] [--format yaml|json|csv] [--config FILE]\n  write every route (and the outbound: table) of FILE; every bad entry is listed as FILE:LINE:COLUMN and the others are imported (exit 1);\n  --atomic imports nothing unless every entry is good; --replace also deletes keys not in FILE; progress on a terminal",
    options: { ...CONFIG_OPTION, ...FORMAT, replace: { type: "boolean" }, atomic: { type: "boolean" } },
    min: 1,
    max: 1,
  },
  set: {
    usage: "didgate routes set [--outbound] KEY JSON [--config FILE]\n  write one route (KEY: +E164, a prefix like +1512*, or *); --outbound: an outbound table entry (carriers by destination)",
    options: { ...CONFIG_OPTION, outbound: { type: "boolean" } },
    min: 2,
    max: 2,
  },
  del: { usage: "didgate routes del [--outbound] KEY [--config FILE]\n  delete one route (--outbound: one outbound entry)", options: { ...CONFIG_OPTION, outbound: { type: "boolean" } }, min: 1, max: 1 },
  export: { usage: "didgate routes export [--format json|yaml|csv] [--config FILE]\n  print the table (re-importable; yaml/json include outbound:)", options: { ...CONFIG_OPTION, ...FORMAT }, min: 0, max: 0 },
  reload: {
    usage: "didgate routes reload [--force] [--config FILE]\n  every running edge reloads the table; --force passes the shrink guard",
    options: { ...CONFIG_OPTION, force: { type: "boolean" } },
    min: 0,
    max: 0,
  },
  functions: { usage: "didgate routes functions [--config FILE]\n  load the didgate Redis Function library (FCALL didgate_set/del/reload)", options: CONFIG_OPTION, min: 0, max: 0 },
};

export const ROUTES_USAGE =
  "usage:\n" +
  Object.values(ROUTES_SUBCOMMANDS)
    .map((s) => "  " + s.usage.replace(/\n/g, "\n  "))
    .join("\n") +
  "\n  -c, --config FILE   config file (routes.redis is where the table lives)\n";

export const DLQ_SUBCOMMANDS: Record<string, { usage: string; options: OptionSpec }> = {
  list: {
    usage: "didgate dlq list [--count N] [--from ID] [--json] [--config FILE]\n  dead letters, oldest first (--from: start at that entry id)",
    options: { ...CONFIG_OPTION, count: { type: "string" }, from: { type: "string" }, json: { type: "boolean" } },
  },
  replay: { usage: "didgate dlq replay ID… | --all [--config FILE]\n  put dead letters back for delivery (fresh attempts, same webhook-id)", options: { ...CONFIG_OPTION, all: { type: "boolean" } } },
  drop: { usage: "didgate dlq drop ID… | --all [--config FILE]\n  delete dead letters", options: { ...CONFIG_OPTION, all: { type: "boolean" } } },
};

export const DLQ_USAGE =
  "usage:\n" +
  Object.values(DLQ_SUBCOMMANDS)
    .map((s) => "  " + s.usage.replace(/\n/g, "\n  "))
    .join("\n") +
  "\n  -c, --config FILE   config file (the spool and its dead letters live in routes.redis)\n";

export const MESSAGES_SUBCOMMANDS: Record<string, { usage: string; options: OptionSpec; n: number }> = {
  pending: {
    usage: "didgate messages pending [--count N] [--json] [--config FILE]\n  messages waiting for delivery: queued, being delivered, or waiting for a retry, with age and last error",
    options: { ...CONFIG_OPTION, count: { type: "string" }, json: { type: "boolean" } },
    n: 0,
  },
  show: {
    usage: "didgate messages show ID [--json] [--config FILE]\n  where message ID (the webhook-id, msg_…) is: waiting, retrying or dead-lettered",
    options: { ...CONFIG_OPTION, json: { type: "boolean" } },
    n: 1,
  },
};

export const MESSAGES_USAGE =
  "usage:\n" +
  Object.values(MESSAGES_SUBCOMMANDS)
    .map((s) => "  " + s.usage.replace(/\n/g, "\n  "))
    .join("\n") +
  "\n  -c, --config FILE   config file (the spool lives in routes.redis)\n";

export const STATUS_USAGE = `usage: didgate status [--json] [--config FILE]

Ask the running daemon (its admin listener, admin.listen) for GET /v1/status: ready, routes and
sync state, trunks, targets, SMPP binds, the spool. Exit 0 when ready, 1 when not ready or
unreachable. The messages waiting for delivery one by one: didgate messages pending.
  --json              the answer as JSON
  -c, --config FILE   config file
`;

export const USERS_SUBCOMMANDS: Record<string, { usage: string; options: OptionSpec; min: number; max: number }> = {
  show: {
    usage:
      "didgate users show USER [--json] [--config FILE]\n  a registrar user and its registered contacts, asked of the running daemon's admin listener (admin.listen):\n  each contact with the source address, port and transport of its REGISTER, the edge holding it, its expiry,\n  q, +sip.instance and reg-id (with routes.redis every edge sees every edge's bindings)",
    options: { ...CONFIG_OPTION, json: { type: "boolean" } },
    min: 1,
    max: 1,
  },
  list: {
    usage: "didgate users list [--tenant T] [--json] [--config FILE]\n  the users of sip.registrar.users (source config) and those kept in routes.redis (source api): user, tenant, caller_id",
    options: { ...CONFIG_OPTION, tenant: { type: "string" }, json: { type: "boolean" } },
    min: 0,
    max: 0,
  },
  set: {
    usage:
      "didgate users set USER --tenant T --password-file FILE [--caller-id +E164] [--config FILE]\n  create or replace a user kept in routes.redis (as PUT /v1/users/USER): the password (8-256 characters, the\n  file's first line) is stored only as digest HA1s of the registrar realm; every edge sees it within 2 s",
    options: { ...CONFIG_OPTION, tenant: { type: "string" }, "password-file": { type: "string" }, "caller-id": { type: "string" } },
    min: 1,
    max: 1,
  },
  delete: {
    usage: "didgate users delete USER [--config FILE]\n  delete a user kept in routes.redis and its registrations (as DELETE /v1/users/USER)",
    options: { ...CONFIG_OPTION },
    min: 1,
    max: 1,
  },
};

export const USERS_USAGE =
  "usage:\n" +
  Object.values(USERS_SUBCOMMANDS)
    .map((s) => "  " + s.usage.replace(/\n/g, "\n  "))
    .join("\n") +
  "\n  -c, --config FILE   config file (sip.registrar; users kept in routes.redis)\nExit 1 for an unknown user, a user of the config file (set, delete), no answer or a Redis error; 2 for usage.\n";

export const STIR_USAGE = `usage: didgate stir verify IDENTITY --from NUMBER --to NUMBER [--anchors FILE] [--max-age S] [--allow-http] [--allow-private CIDR,...] [--json] [--config FILE]

Decode a SIP Identity header (a SHAKEN PASSporT) and verify it as didgate would for an inbound
call from NUMBER to NUMBER: the certificate is fetched from its x5u and checked against the trust
anchors (--anchors, else stir.verify.trust_anchors of the config). Exit 0 when it passes.
  --from NUMBER       the calling number (orig.tn must match)
  --to NUMBER         the called number (dest.tn must match)
  --anchors FILE      PEM bundle of trusted STI-CA roots
  --max-age S         how old iat may be (default stir.verify.max_age_s, else 60)
  --allow-http        fetch an http:// x5u (labs, tests)
  --allow-private C   loopback or private ranges the x5u may be fetched from (default
                      stir.verify.allow_private of the config, else none)
  --json              the decoded PASSporT and the verdict as JSON
  -c, --config FILE   config file
`;

export const NUMBERS_USAGE = `usage: didgate numbers report [--inactive-days N] [--soon-days N] [--at ISO8601] [--json] [--config FILE]

Numbers (exact route keys) by lifecycle state at a time, with released_at, port_date and the
quarantine days applied; numbers whose quarantine ends within --soon-days (default 14); numbers
available for recycling; active numbers without a call or message for --inactive-days (default
30). Reads the route source and the activity of the config (Redis, else the file and state_dir).
  --inactive-days N   days without traffic that make an active number inactive
  --soon-days N       horizon of "quarantine ending soon"
  --at ISO8601        the time to report at (default now)
  --json              the report as JSON
  -c, --config FILE   config file
`;

export const SESSIONS_SUBCOMMANDS: Record<string, { usage: string; options: OptionSpec; min: number; max: number }> = {
  list: {
    usage: "didgate sessions list [--pool NAME] [--count N] [--json] [--config FILE]\n  sessions alive, per pool (config and Redis, or one pool), soonest expiry first",
    options: { ...CONFIG_OPTION, pool: { type: "string" }, count: { type: "string" }, json: { type: "boolean" } },
    min: 0,
    max: 0,
  },
  show: {
    usage: "didgate sessions show ID [--json] [--config FILE]\n  one session: parties, proxy number, pool, tenant, expiry",
    options: { ...CONFIG_OPTION, json: { type: "boolean" } },
    min: 1,
    max: 1,
  },
  create: {
    usage: "didgate sessions create --pool NAME A B [--ttl-s N] [--json] [--config FILE]\n  a session between the E.164 numbers A and B on a proxy number of the pool (default ttl 3600 s)",
    options: { ...CONFIG_OPTION, pool: { type: "string" }, "ttl-s": { type: "string" }, json: { type: "boolean" } },
    min: 2,
    max: 2,
  },
  delete: {
    usage: "didgate sessions delete ID [--config FILE]\n  end a session now: calls and messages to the proxy number stop going through it",
    options: { ...CONFIG_OPTION },
    min: 1,
    max: 1,
  },
};

export const SESSIONS_USAGE =
  "usage:\n" +
  Object.values(SESSIONS_SUBCOMMANDS)
    .map((s) => "  " + s.usage.replace(/\n/g, "\n  "))
    .join("\n") +
  "\n  -c, --config FILE   config file (masking.pools; other pools and the sessions live in routes.redis)\n";

export const POOLS_SUBCOMMANDS: Record<string, Sub> = {
  list: {
    usage: "didgate pools list [--json] [--config FILE]\n  masking pools: name, tenant, how many numbers, source (config or api), sessions alive",
    options: { ...CONFIG_OPTION, json: { type: "boolean" } },
    min: 0,
    max: 0,
  },
  show: {
    usage: "didgate pools show NAME [--json] [--config FILE]\n  one pool and its numbers",
    options: { ...CONFIG_OPTION, json: { type: "boolean" } },
    min: 1,
    max: 1,
  },
  set: {
    usage: "didgate pools set NAME --tenant T NUMBER... [--json] [--config FILE]\n  create or replace a pool kept in Redis (not one of masking.pools); every edge uses it within seconds",
    options: { ...CONFIG_OPTION, tenant: { type: "string" }, json: { type: "boolean" } },
    min: 2,
    max: 100_000,
  },
  delete: {
    usage: "didgate pools delete NAME [--config FILE]\n  remove a pool kept in Redis that has no live session",
    options: { ...CONFIG_OPTION },
    min: 1,
    max: 1,
  },
};

export const POOLS_USAGE =
  "usage:\n" +
  Object.values(POOLS_SUBCOMMANDS)
    .map((s) => "  " + s.usage.replace(/\n/g, "\n  "))
    .join("\n") +
  "\n  -c, --config FILE   config file (masking.pools are read-only here; the others live in routes.redis)\n";
