/**
 * Logs a dependency outage (Redis, say) as transitions instead of once per failed attempt: one
 * warning when it starts, reminders with a doubling interval while it lasts, one info line when
 * it ends. A loop that retries every second logs a handful of lines an hour, not 3600.
 */
import type { Logger } from "pino";

export interface OutageMessages {
  /** Logged at warn on the first failure. */
  down: string;
  /** Logged at warn as a reminder while it lasts. */
  still: string;
  /** Logged at info on the first success after failures. */
  back: string;
}

export interface OutageLogOptions {
  now?: () => number;
  /** First reminder after this long (ms). Default 30 s. */
  firstReminderMs?: number;
  /** Reminders at most this far apart (ms). Default 10 min. */
  maxReminderMs?: number;
}

export class OutageLog {
  private down = false;
  private since = 0;
  private failures = 0;
  private interval = 0;
  private nextReminder = 0;
  private lastError = "";
  private readonly now: () => number;
  private readonly firstMs: number;
  private readonly maxMs: number;

  constructor(
    private readonly logger: Logger,
    private readonly msgs: OutageMessages,
    opts: OutageLogOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.firstMs = opts.firstReminderMs ?? 30_000;
    this.maxMs = opts.maxReminderMs ?? 600_000;
  }

  get isDown(): boolean {
    return this.down;
  }

  /** The error of the last failure while down. */
  get error(): string | undefined {
    return this.down ? this.lastError : undefined;
  }

  failure(err: string, fields: Record<string, unknown> = {}): void {
    const t = this.now();
    this.failures++;
    this.lastError = err;
    if (!this.down) {
      this.down = true;
      this.since = t;
      this.interval = this.firstMs;
      this.nextReminder = t + this.interval;
      this.logger.warn({ ...fields, err }, this.msgs.down);
      return;
    }
    if (t >= this.nextReminder) {
      this.logger.warn({ ...fields, err, down_s: Math.round((t - this.since) / 1000), failures: this.failures }, this.msgs.still);
      this.interval = Math.min(this.interval * 2, this.maxMs);
      this.nextReminder = t + this.interval;
    }
  }

  success(fields: Record<string, unknown> = {}): void {
    if (!this.down) return;
    this.logger.info({ ...fields, down_s: Math.round((this.now() - this.since) / 1000), failures: this.failures }, this.msgs.back);
    this.down = false;
    this.failures = 0;
  }
}
