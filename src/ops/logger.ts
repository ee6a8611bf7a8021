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

export function createLogger(level: string, dest?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "didgate" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    dest ?? pino.destination({ dest: 1, sync: false }),
  );
}
