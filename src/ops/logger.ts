/**
 * pino JSON logs to stdout. Secrets never appear: the redact list covers every config key that
 * holds one, wherever a config object or a peer description gets logged.
 */
import { pino, type Logger, type DestinationStream } from "pino";
import { isoCache } from "../util/iso-time.js";

export type { Logger };

export const REDACT_PATHS = [
  "password",
  "*.password",
  "*.*.password",
  "secret",
  "*.secret",
  "*.*.secret",
  "webhook_secret",
  "*.webhook_secret",
  "dialog_secret",
  "*.dialog_secret",
  "dialog_secret_previous",
  "*.dialog_secret_previous",
  "authorization",
  "*.authorization",
  "headers.authorization",
];

/** Log lines are buffered up to this many bytes... */
export const LOG_BUFFER_BYTES = 4096;
/** ...and written at least this often (ms): a line is at most this late on stdout. */
export const LOG_FLUSH_MS = 100;

type Destination = ReturnType<typeof pino.destination>;

/** Buffered destinations still open: written out when the process exits. */
const openDestinations = new Set<Destination>();
let exitHooked = false;

function flushAtExit(d: Destination): void {
  openDestinations.add(d);
  d.on("close", () => openDestinations.delete(d));
  if (exitHooked) return;
  exitHooked = true;
  process.on("exit", () => {
    for (const s of openDestinations) {
      try {
        s.flushSync();
      } catch {
        /* nothing more can be done while exiting */
      }
    }
  });
}

/**
 * stdout, buffered: one write per LOG_BUFFER_BYTES or per LOG_FLUSH_MS instead of one per line.
 * The writes are synchronous, so lines come out in order however the process ends: what is
 * buffered is written when the process exits (process.exit, a crash, the end of the event loop),
 * a graceful stop loses nothing, and pino writes a fatal line (with what is buffered before it)
 * at once.
 */
export function bufferedStdout(): Destination {
  const d = pino.destination({ dest: 1, sync: true, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS });
  flushAtExit(d);
  return d;
}

/**
 * pino's isoTime (`,"time":"2026-12-06T05:03:01.123Z"`, the same text) with the part up to the
 * seconds built once per second: no Date object and toISOString per line.
 */
export function isoTimeCached(now: () => number = Date.now): () => string {
  const iso = isoCache();
  return () => ',"time":"' + iso(now()) + '"';
}

export function createLogger(level: string, dest?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "didgate" },
      timestamp: isoTimeCached(),
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    dest ?? bufferedStdout(),
  );
}

const plain = new WeakMap<Logger, Logger>();

/**
 * A child of `log` that writes the same lines without the redaction pass, at the same level as
 * `log`: for fixed lines on hot paths whose fields are known to hold no secret (the per-call
 * line). Redaction walks every object logged against REDACT_PATHS, several microseconds a line.
 */
export function unredacted(log: Logger): Logger {
  let c = plain.get(log);
  if (c === undefined) {
    c = log.child({}, { redact: [] });
    plain.set(log, c);
  } else if (c.level !== log.level) c.level = log.level;
  return c;
}
