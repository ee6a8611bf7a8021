/**
 * Target health for the SIP edge (issue #5, part 6).
 *
 * Every target a call is sent to is tracked (bounded LRU). When sip.health.enabled, each tracked
 * target gets an OPTIONS probe every interval_s: `failures` consecutive failures (timeout, transport
 * error, or a status not in alive_codes) mark it down, `recoveries` consecutive successes mark it up.
 * A target that times out (Timer B) or fails at the transport on a real call is marked suspect at
 * once: down until a probe (or a real call) succeeds, or for `suspectMs` when probing is off.
 *
 * With routes.redis, verdicts are shared with the other edges (health-share.ts): `onChange` reports
 * this edge's transitions, `remote()` applies the others' (they expire on their own).
 */
import type { Logger } from "pino";
import { LRUCache } from "lru-cache";
import { SipMessage, randomToken, type ClientTransaction, type ClientTxHandler, type TimerHandle, type TimerTarget } from "../sip/index.js";
import type { ResolvedTarget } from "../sip/resolve.js";
import type { EdgeStack } from "./stack.js";

/** `sip.health` of the config: the probing of targets with OPTIONS. */
export interface HealthConfig {
  enabled: boolean;
  interval_s: number;
  /** Unanswered or failed probes in a row that mark a target down. */
  failures: number;
  /** Good probes in a row that mark it up again. */
  recoveries: number;
  /** Response codes that mean alive. */
  alive_codes: readonly number[];
}

interface Entry {
  readonly target: ResolvedTarget;
  uri: string;
  /** Marked down by probes. */
  down: boolean;
  /** Down until this time (ms) after a timeout on a real call; 0 when not suspect. Infinity: until a success. */
  suspectUntil: number;
  fails: number;
  oks: number;
  probing: boolean;
}

export interface HealthOptions {
  config: HealthConfig;
  logger: Logger;
  now: () => number;
  /** Called with the number of targets down whenever it may have changed. */
  onDownCount?: (n: number) => void;
  /** This edge's verdict on a target changed (down or back up): for sharing with other edges. */
  onChange?: (key: string, down: boolean, ttlMs: number) => void;
  /** How long a suspect target stays down when probing is off (ms). Default 30000. */
  suspectMs?: number;
  max?: number;
}

const TICK = 1;

class Probe implements ClientTxHandler {
  constructor(
    private readonly health: TargetHealth,
    private readonly e: Entry,
  ) {}
  onResponse(res: SipMessage): void {
    if (res.status < 200) return;
    this.health.probeResult(this.e, this.health.aliveCodes.has(res.status), "status " + res.status);
  }
  onTimeout(): void {
    this.health.probeResult(this.e, false, "timeout");
  }
  onTransportError(_tx: ClientTransaction, err: Error): void {
    this.health.probeResult(this.e, false, "transport error: " + err.message);
  }
}

/** What probing needs of the stack: its timers, a listener for the From host, requests. */
export type ProbeStack = Pick<EdgeStack, "timers" | "listenerFor" | "request">;

export class TargetHealth implements TimerTarget {
  private readonly entries: LRUCache<string, Entry>;
  private cfg: HealthConfig;
  aliveCodes: Set<number>;
  private stack: ProbeStack | null = null;
  private timer: TimerHandle = null;
  private downCount = 0;
  private readonly suspectMs: number;
  /** Addresses of the tracked targets, with how many tracked targets have each. */
  private readonly addresses = new Map<string, number>();
  /** Targets other edges hold down: key → until (ms). */
  private readonly remoteDown = new Map<string, number>();

  constructor(private readonly opts: HealthOptions) {
    this.cfg = opts.config;
    this.aliveCodes = new Set(opts.config.alive_codes);
    this.suspectMs = opts.suspectMs ?? 30_000;
    this.entries = new LRUCache({
      max: opts.max ?? 1000,
      dispose: (e) => {
        this.forgetAddress(e.target.address);
        this.recount();
      },
    });
  }

  /** Start probing (when enabled) through this stack. */
  start(stack: ProbeStack): void {
    this.stack = stack;
    this.schedule();
  }

  configure(cfg: HealthConfig): void {
    this.cfg = cfg;
    this.aliveCodes = new Set(cfg.alive_codes);
    if (this.stack !== null) {
      if (this.timer !== null) this.stack.timers.clear(this.timer);
      this.timer = null;
      this.schedule();
    }
  }

  private schedule(): void {
    if (this.stack === null || !this.cfg.enabled) return;
    this.timer = this.stack.timers.set(this.cfg.interval_s * 1000, this, TICK);
  }

  stop(): void {
    if (this.stack !== null && this.timer !== null) this.stack.timers.clear(this.timer);
    this.timer = null;
    this.stack = null;
  }

  /** Every tracked target and whether it is down (status view). */
  list(): Array<{ target: string; state: "up" | "down"; reason: string | null }> {
    const out: Array<{ target: string; state: "up" | "down"; reason: string | null }> = [];
    for (const [key, e] of this.entries.entries()) {
      const local = this.locallyDown(key);
      const remote = this.remotelyDown(key);
      out.push({ target: e.uri, state: local || remote ? "down" : "up", reason: e.down ? "probes failed" : local ? "suspect after a failed call" : remote ? "down on another edge" : null });
    }
    return out;
  }

  /** True when the target should be skipped while another one is up. */
  isDown(key: string): boolean {
    return this.locallyDown(key) || this.remotelyDown(key);
  }

  private locallyDown(key: string): boolean {
    const e = this.entries.peek(key);
    if (e === undefined) return false;
    return e.down || (e.suspectUntil !== 0 && e.suspectUntil > this.opts.now());
  }

  private remotelyDown(key: string): boolean {
    if (this.remoteDown.size === 0) return false;
    const until = this.remoteDown.get(key);
    if (until === undefined) return false;
    if (until > this.opts.now()) return true;
    this.remoteDown.delete(key);
    return false;
  }

  /** Another edge's verdict (health-share.ts). */
  remote(key: string, down: boolean, ttlMs: number): void {
    if (down) {
      if (this.remoteDown.size >= 10_000 && !this.remoteDown.has(key)) return;
      this.remoteDown.set(key, this.opts.now() + ttlMs);
      this.opts.logger.info({ target: key }, "sip target down (reported by another edge)");
    } else this.remoteDown.delete(key);
    this.recount();
  }

  /** How long another edge should hold a target down on our word. */
  private shareTtl(): number {
    return this.cfg.enabled ? Math.max(5000, this.cfg.interval_s * 1000 * (this.cfg.recoveries + 1)) : this.suspectMs;
  }

  private changed(key: string, wasDown: boolean): void {
    const now = this.locallyDown(key);
    if (now !== wasDown) this.opts.onChange?.(key, now, this.shareTtl());
  }

  get down(): number {
    return this.downCount;
  }

  /** A call is being sent to this target: track it for probing. */
  track(t: ResolvedTarget, uri: string): void {
    const e = this.entries.get(t.key);
    if (e === undefined) this.add(t, { target: t, uri, down: false, suspectUntil: 0, fails: 0, oks: 0, probing: false });
  }

  private add(t: ResolvedTarget, e: Entry): void {
    this.entries.set(t.key, e);
    this.addresses.set(t.address, (this.addresses.get(t.address) ?? 0) + 1);
  }

  private forgetAddress(a: string): void {
    const n = (this.addresses.get(a) ?? 1) - 1;
    if (n <= 0) this.addresses.delete(a);
    else this.addresses.set(a, n);
  }

  /** True when a target a call was sent to (still tracked) has this address (its OPTIONS pings get 200). */
  knowsAddress(address: string): boolean {
    return this.addresses.has(address);
  }

  /** A real call timed out or failed at the transport: down at once. */
  suspect(t: ResolvedTarget, uri: string, why: string): void {
    let e = this.entries.get(t.key);
    if (e === undefined) {
      e = { target: t, uri, down: false, suspectUntil: 0, fails: 0, oks: 0, probing: false };
      this.add(t, e);
    }
    const was = this.isDown(t.key);
    const wasLocal = this.locallyDown(t.key);
    e.suspectUntil = this.cfg.enabled ? Infinity : this.opts.now() + this.suspectMs;
    e.oks = 0;
    if (!was) this.opts.logger.warn({ target: t.key, reason: why }, "sip target suspect");
    this.changed(t.key, wasLocal);
    this.recount();
  }

  /** A real call got a response from the target: it is alive. */
  alive(key: string): void {
    // An answer is first-hand evidence: it also overrides another edge's verdict here.
    if (this.remoteDown.delete(key)) this.recount();
    const e = this.entries.peek(key);
    if (e === undefined || (!e.down && e.suspectUntil === 0)) return;
    const wasLocal = this.locallyDown(key);
    e.down = false;
    e.suspectUntil = 0;
    e.fails = 0;
    this.opts.logger.info({ target: key }, "sip target up (answered a call)");
    this.changed(key, wasLocal);
    this.recount();
  }

  onTimer(): void {
    this.timer = null;
    const stack = this.stack;
    if (stack === null || !this.cfg.enabled) return;
    for (const e of this.entries.values()) {
      if (e.probing) continue;
      e.probing = true;
      const t = e.target;
      const req = SipMessage.request("OPTIONS", e.uri, [
        ["Max-Forwards", "70"],
        ["From", "<sip:didgate@" + (stack.listenerFor(t.transport, t.address)?.sentBy ?? "127.0.0.1") + ">;tag=" + randomToken(4)],
        ["To", "<" + e.uri + ">"],
        ["Call-ID", randomToken(10)],
        ["CSeq", "1 OPTIONS"],
        ["Content-Length", "0"],
      ]);
      stack.request(req, { transport: t.transport, host: t.address, port: t.port }, new Probe(this, e));
    }
    this.schedule();
  }

  /** @internal */
  probeResult(e: Entry, ok: boolean, why: string): void {
    e.probing = false;
    const wasDown = this.isDown(e.target.key);
    const wasLocal = this.locallyDown(e.target.key);
    if (ok) {
      e.fails = 0;
      e.oks++;
      if (wasDown && e.oks >= this.cfg.recoveries) {
        e.down = false;
        e.suspectUntil = 0;
        this.opts.logger.info({ target: e.target.key }, "sip target up");
      }
    } else {
      e.oks = 0;
      e.fails++;
      if (!e.down && e.fails >= this.cfg.failures) {
        e.down = true;
        this.opts.logger.warn({ target: e.target.key, reason: why }, "sip target down");
      }
    }
    this.changed(e.target.key, wasLocal);
    if (wasDown !== this.isDown(e.target.key)) this.recount();
  }

  private recount(): void {
    let n = 0;
    if (this.entries !== undefined) for (const k of this.entries.keys()) if (this.isDown(k)) n++;
    if (this.remoteDown !== undefined) for (const k of this.remoteDown.keys()) if (!this.entries.has(k) && this.remotelyDown(k)) n++;
    this.downCount = n;
    this.opts.onDownCount?.(n);
  }
}
