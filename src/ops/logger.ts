/**
 * pino JSON logs to stdout. Secrets never appear: the redact list covers every config key that
 * holds one, wherever a config object or a peer description gets logged.
 */
import { pino, type Logger, type DestinationStream } from "pino";

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

/**
 * stdout, buffered: one write per LOG_BUFFER_BYTES or per LOG_FLUSH_MS instead of one per line.
 * pino flushes it synchronously when the process exits (process.exit, a crash, the end of the
 * event loop), so a graceful stop loses nothing, and pino writes a fatal line (with what is
 * buffered before it) synchronously.
 */
export function bufferedStdout(): ReturnType<typeof pino.destination> {
  return pino.destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS });
}

export function createLogger(level: string, dest?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "didgate" },
      timestamp: pino.stdTimeFunctions.isoTime,
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
