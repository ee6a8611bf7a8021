/**
 * didgate's SMPP server: peers bind with system_id/password from allowed source addresses.
 * carrier accounts send inbound messages; app accounts receive deliver_sm from didgate.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import net, { BlockList, type AddressInfo, type Socket } from "node:net";
import tls from "node:tls";
import type { Logger } from "pino";
import { LRUCache } from "lru-cache";
import type { Clock } from "../util/clock.js";
import { CMD, STATUS, TLV } from "./constants.js";
import { Pdu, tlvCString, tlvU8 } from "./codec.js";
import { isReceipt } from "./message.js";
import type { InboundProcessor, PeerContext } from "./inbound.js";
import type { SmppMetrics } from "./metrics.js";
import { buildMessagePdus, sendAll } from "./outbound.js";
import { encodeQueryResp, isOpCommand, parseOp, type MessageOps } from "./ops.js";
import { SmppSession, normaliseAddress, type SessionHandler } from "./session.js";
import type { OutboundReceipt, OutboundSms, SendResult, SmppAccount, SmppBindConfig, SmppConfig } from "./types.js";

export interface ServerDeps {
  logger: Logger;
  clock: Clock;
  metrics: SmppMetrics;
  inbound: InboundProcessor;
  /** Answers query_sm / cancel_sm / replace_sm of app accounts (absent: ESME_RINVCMDID). */
  ops?: () => MessageOps | undefined;
}

interface Account {
  cfg: SmppAccount;
  digest: Buffer;
  allowed: BlockList | null;
  sessions: SmppSession[];
  rr: number;
  ctx: PeerContext;
}

/** An outbound bind the SMSC sets up with outbind (see SmppClient.adoptOutbind). */
export interface OutbindTarget {
  readonly cfg: SmppBindConfig;
  readonly isBound: boolean;
  adoptOutbind(socket: Socket, remote: string): boolean;
}

interface Outbind {
  target: OutbindTarget;
  digest: Buffer;
  allowed: BlockList | null;
}

export type OutbindOutcome = "accepted" | "unknown_system_id" | "source_not_allowed" | "bad_password" | "locked_out" | "stopped";

interface Failures {
  count: number;
  windowStart: number;
  lockedUntil: number;
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/** Parse "host:port", "[v6]:port" or ":port". */
export function parseListen(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  if (i < 0) throw new Error(`smpp.listen: "${s}" is not host:port`);
  let host = s.slice(0, i);
  const port = Number(s.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`smpp.listen: bad port in "${s}"`);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return { host: host === "" ? "0.0.0.0" : host, port };
}

/** A BlockList of allowed sources, or null for "any". Throws on a bad entry. */
export function allowList(sources: string[] | undefined, what: string): BlockList | null {
  if (sources === undefined || sources.length === 0) return null;
  const bl = new BlockList();
  for (const src of sources) {
    const slash = src.indexOf("/");
    const addr = slash < 0 ? src : src.slice(0, slash);
    const fam = net.isIP(addr);
    if (fam === 0) throw new Error(`${what}: "${src}" is not an IP address or CIDR`);
    const type = fam === 4 ? "ipv4" : "ipv6";
    if (slash < 0) bl.addAddress(addr, type);
    else {
      const bits = Number(src.slice(slash + 1));
      if (!Number.isInteger(bits) || bits < 0 || bits > (fam === 4 ? 32 : 128)) throw new Error(`${what}: bad prefix in "${src}"`);
      bl.addSubnet(addr, bits, type);
    }
  }
  return bl;
}

export function addressAllowed(bl: BlockList | null, addr: string): boolean {
  if (bl === null) return true;
  const fam = net.isIP(addr);
  if (fam === 0) return false;
  return bl.check(addr, fam === 4 ? "ipv4" : "ipv6");
}

function failureKey(ip: string, system_id: string | undefined): string {
  return system_id === undefined ? ip + "\u0000?" : ip + "\u0000=" + system_id;
}

const DUMMY_DIGEST = digest("\u0000didgate-no-such-account\u0000");

export class SmppServer implements SessionHandler {
  private readonly accounts = new Map<string, Account>();
  private readonly sessions = new Set<SmppSession>();
  private readonly failures: LRUCache<string, Failures>;
  private server: net.Server | null = null;
  private nextId = 0;
  private refCounter = 0;
  private readonly maxFailures: number;
  private readonly failureWindowMs: number;
  private readonly lockoutMs: number;
  private readonly maxConnections: number;
  private readonly maxPerSource: number;
  private readonly reservedConnections: number;
  private connTotal = 0;
  private connUnknown = 0;
  private readonly perSource = new Map<string, number>();
  private readonly refusalLog = new LRUCache<string, number>({ max: 1000 });
  private readonly outbinds: Outbind[] = [];

  constructor(
    private readonly cfg: SmppConfig,
    private readonly deps: ServerDeps,
  ) {
    for (const a of cfg.accounts ?? []) {
      if (this.accounts.has(a.system_id)) throw new Error(`smpp.accounts: duplicate system_id "${a.system_id}"`);
      this.addAccount(a);
    }
    this.maxFailures = cfg.lockout?.max_failures ?? 5;
    this.failureWindowMs = (cfg.lockout?.window_s ?? 60) * 1000;
    this.lockoutMs = (cfg.lockout?.duration_s ?? 300) * 1000;
    this.failures = new LRUCache<string, Failures>({ max: 10000 });
    this.maxConnections = cfg.max_connections ?? 1000;
    this.maxPerSource = cfg.max_connections_per_source ?? 10;
    this.reservedConnections = Math.min(cfg.reserved_connections ?? 100, this.maxConnections);
  }

  private addAccount(a: SmppAccount): void {
    this.accounts.set(a.system_id, {
      cfg: a,
      digest: digest(a.password),
      allowed: allowList(a.sources, `smpp.accounts[${a.system_id}].sources`),
      sessions: [],
      rr: 0,
      ctx: { name: a.system_id, kind: "account", options: a },
    });
    this.deps.metrics.binds.labels(a.system_id).set(0);
    this.deps.metrics.bindState.labels(a.system_id, "server").set(0);
  }

  /**
   * Apply a new account list (SIGHUP): new accounts are added, changed passwords, sources and
   * options apply to the next bind (and options to live sessions), removed accounts have their
   * sessions unbound. Returns the system_ids added, changed and removed.
   */
  updateAccounts(accounts: readonly SmppAccount[]): { added: string[]; changed: string[]; removed: string[] } {
    const out = { added: [] as string[], changed: [] as string[], removed: [] as string[] };
    const seen = new Set<string>();
    for (const a of accounts) {
      seen.add(a.system_id);
      const old = this.accounts.get(a.system_id);
      if (old === undefined) {
        this.addAccount(a);
        out.added.push(a.system_id);
      } else if (JSON.stringify(old.cfg) !== JSON.stringify(a)) {
        old.cfg = a;
        old.digest = digest(a.password);
        old.allowed = allowList(a.sources, `smpp.accounts[${a.system_id}].sources`);
        old.ctx.options = a;
        out.changed.push(a.system_id);
      }
    }
    for (const [id, acct] of this.accounts) {
      if (seen.has(id)) continue;
      this.accounts.delete(id);
      for (const s of [...acct.sessions]) void s.unbind().catch(() => s.close("account removed", false));
      out.removed.push(id);
    }
    return out;
  }

  /** Outbound binds an SMSC may set up with outbind on this server. */
  addOutbinds(targets: Iterable<OutbindTarget>): void {
    for (const t of targets) {
      this.outbinds.push({ target: t, digest: digest(t.cfg.password), allowed: allowList(t.cfg.outbind_sources, `smpp.binds[${t.cfg.name}].outbind_sources`) });
    }
  }

  /** Start listening; resolves with the bound address. */
  listen(): Promise<AddressInfo> {
    const { host, port } = parseListen(this.cfg.listen ?? "0.0.0.0:2775");
    let srv: net.Server;
    if (this.cfg.tls) {
      // The TCP connection is admitted (or refused) before the handshake, which must end in time.
      const t = tls.createServer({ cert: this.cfg.tls.cert, key: this.cfg.tls.key, handshakeTimeout: (this.cfg.bind_timeout_s ?? 10) * 1000 });
      t.on("connection", (raw: Socket) => void this.admit(raw));
      t.on("secureConnection", (s: tls.TLSSocket) => this.accept(s));
      t.on("tlsClientError", (e: Error) => this.deps.logger.debug({ err: e.message }, "smpp: TLS handshake failed"));
      srv = t;
    } else {
      srv = net.createServer((s: Socket) => {
        if (this.admit(s)) this.accept(s);
      });
    }
    this.server = srv;
    srv.on("error", (e) => this.deps.logger.error({ err: e }, "smpp: server error"));
    return new Promise((resolve, reject) => {
      srv.once("error", reject);
      srv.listen(port, host, () => {
        srv.off("error", reject);
        const a = srv.address() as AddressInfo;
        this.deps.logger.info({ address: a.address, port: a.port, tls: !!this.cfg.tls }, "smpp: listening");
        resolve(a);
      });
    });
  }

  address(): AddressInfo | null {
    const a = this.server?.address();
    return a && typeof a === "object" ? a : null;
  }

  /** Is this address in the `sources` of some account (a configured peer)? */
  private knownSource(ip: string): boolean {
    for (const a of this.accounts.values()) if (a.allowed !== null && addressAllowed(a.allowed, ip)) return true;
    for (const o of this.outbinds) if (o.allowed !== null && addressAllowed(o.allowed, ip)) return true;
    return false;
  }

  /**
   * Admit a new TCP connection, or destroy it. A global cap bounds every connection; unknown
   * sources (in no account's `sources`) have a per-address cap and may not use the capacity
   * reserved for configured peers, so a flood from elsewhere never locks a carrier out.
   */
  private admit(raw: Socket): boolean {
    const ip = normaliseAddress(raw.remoteAddress ?? "");
    const known = this.knownSource(ip);
    const max = this.maxConnections;
    let refuse: "limit" | "source_limit" | null = null;
    if (this.connTotal >= max) refuse = "limit";
    else if (!known) {
      if (this.connUnknown >= Math.max(0, max - this.reservedConnections)) refuse = "limit";
      else if ((this.perSource.get(ip) ?? 0) >= this.maxPerSource) refuse = "source_limit";
    }
    if (refuse !== null) {
      this.deps.metrics.connectionsRefused.labels(refuse).inc();
      this.logRefusal(ip, refuse, known);
      raw.destroy();
      return false;
    }
    this.connTotal++;
    if (!known) {
      this.connUnknown++;
      this.perSource.set(ip, (this.perSource.get(ip) ?? 0) + 1);
    }
    this.deps.metrics.connections.labels(known ? "account" : "unknown").inc();
    raw.once("close", () => {
      this.connTotal--;
      this.deps.metrics.connections.labels(known ? "account" : "unknown").dec();
      if (known) return;
      this.connUnknown--;
      const n = (this.perSource.get(ip) ?? 1) - 1;
      if (n <= 0) this.perSource.delete(ip);
      else this.perSource.set(ip, n);
    });
    return true;
  }

  /** The first refusal per address at warn, then at most one a minute per address (bounded table). */
  private logRefusal(ip: string, reason: string, known: boolean): void {
    if (!this.firstInMinute(ip)) return;
    this.deps.logger.warn({ remote: ip, reason, known_source: known, connections: this.connTotal }, "smpp: connection refused");
  }

  /** True at most once a minute per key (a bounded table): for warn lines a peer can provoke. */
  private firstInMinute(key: string): boolean {
    const now = this.deps.clock.now();
    const last = this.refusalLog.get(key);
    if (last !== undefined && now - last < 60_000) return false;
    this.refusalLog.set(key, now);
    return true;
  }

  private accept(socket: Socket): void {
    const c = this.cfg;
    const session = new SmppSession(
      socket,
      "smsc",
      {
        maxPduLength: c.max_pdu_bytes ?? 65536,
        windowOut: c.window ?? 10,
        windowIn: c.window_in ?? 100,
        responseTimeoutMs: (c.response_timeout_s ?? 30) * 1000,
        enquireLinkMs: (c.enquire_link_s ?? 30) * 1000,
        bindTimeoutMs: (c.bind_timeout_s ?? 10) * 1000,
        pduTimeoutMs: (c.pdu_timeout_s ?? 5) * 1000,
        clock: this.deps.clock,
        logger: this.deps.logger,
      },
      this,
      ++this.nextId,
    );
    this.sessions.add(session);
    this.deps.logger.debug({ session: session.id, remote: session.remoteAddress }, "smpp: connection");
  }

  // SessionHandler ----------------------------------------------------------------------------

  onRequest(session: SmppSession, pdu: Pdu): void {
    if (pdu.command_id === CMD.outbind) {
      this.outbind(session, pdu);
      return;
    }
    if (pdu.command_id === CMD.bind_receiver || pdu.command_id === CMD.bind_transmitter || pdu.command_id === CMD.bind_transceiver) {
      this.bind(session, pdu);
      return;
    }
    const acct = session.context as Account | undefined;
    if (acct === undefined) {
      session.respond(pdu, STATUS.ESME_RINVBNDSTS);
      return;
    }
    if (isOpCommand(pdu.command_id)) {
      this.op(session, pdu, acct);
      return;
    }
    if (acct.cfg.role !== "carrier" && !(acct.cfg.may_submit === true && (pdu.command_id === CMD.submit_sm || pdu.command_id === CMD.data_sm))) {
      // An app account receives messages from didgate; it sends only when it may submit (a tenant
      // or senders: README.md "Sending messages").
      session.respond(pdu, STATUS.ESME_RX_R_APPN);
      return;
    }
    if (acct.cfg.role !== "carrier" && isReceipt(pdu.esm_class)) {
      // an app's submit typed as a receipt or an acknowledgement (esm_class bits 2-5) is no message
      // didgate sends on: refused, not answered ESME_ROK and dropped
      session.respond(pdu, STATUS.ESME_RINVESMCLASS);
      return;
    }
    this.deps.inbound.handle(session, pdu, acct.ctx);
  }

  /** query_sm / cancel_sm / replace_sm: only an app account that may submit, about its own messages. */
  private op(session: SmppSession, pdu: Pdu, acct: Account): void {
    const ops = this.deps.ops?.();
    if (ops === undefined || acct.cfg.role === "carrier" || acct.cfg.may_submit !== true) {
      session.respondOp(pdu, STATUS.ESME_RINVCMDID);
      return;
    }
    const req = parseOp(pdu.command_id, pdu.body);
    if (req === null) {
      session.respondOp(pdu, STATUS.ESME_RINVMSGLEN);
      return;
    }
    const account = acct.cfg.system_id;
    const fail = pdu.command_id === CMD.query_sm ? STATUS.ESME_RQUERYFAIL : pdu.command_id === CMD.cancel_sm ? STATUS.ESME_RCANCELFAIL : STATUS.ESME_RREPLACEFAIL;
    const run = async (): Promise<void> => {
      if (pdu.command_id === CMD.query_sm) {
        const a = await ops.query(account, req.message_id);
        session.respondOp(pdu, a.status, encodeQueryResp(pdu.sequence_number, req.message_id, a));
      } else if (pdu.command_id === CMD.cancel_sm) {
        session.respondOp(pdu, await ops.cancel(account, req));
      } else {
        session.respondOp(pdu, await ops.replace(account, req));
      }
    };
    run().catch((err: unknown) => {
      this.deps.logger.warn({ peer: account, err: err instanceof Error ? err.message : String(err) }, "smpp: query/cancel/replace failed");
      session.respondOp(pdu, fail);
    });
  }

  onClose(session: SmppSession, reason: string): void {
    this.sessions.delete(session);
    const acct = session.context as Account | undefined;
    if (acct !== undefined) {
      const i = acct.sessions.indexOf(session);
      if (i >= 0) acct.sessions.splice(i, 1);
      this.deps.metrics.binds.labels(acct.cfg.system_id).set(acct.sessions.length);
      this.deps.metrics.bindState.labels(acct.cfg.system_id, "server").set(acct.sessions.length > 0 ? 1 : 0);
    }
    // a session that never bound (a scanner, a refused bind) closes at debug: its refusal was logged
    const line = { session: session.id, peer: session.peer, remote: session.remoteAddress, reason };
    if (acct !== undefined) this.deps.logger.info(line, "smpp: session closed");
    else this.deps.logger.debug(line, "smpp: session closed");
  }

  onPdu(session: SmppSession, direction: "in" | "out", command_id: number, status: number): void {
    this.deps.metrics.pdu(session.peer, direction, command_id, status);
  }

  // Bind ------------------------------------------------------------------------------------

  private bind(session: SmppSession, pdu: Pdu): void {
    const ip = session.remoteAddress;
    const now = this.deps.clock.now();
    const log = this.deps.logger;
    const acct = this.accounts.get(pdu.system_id);
    // Failures count per (address, account): guesses at one account never lock another one (a
    // carrier's real bind from the same address keeps working). Every unknown system_id from an
    // address shares one bucket, so scanning names fills one entry, not one per name.
    const fkey = failureKey(ip, acct?.cfg.system_id);
    const f = this.failures.get(fkey);
    if (f !== undefined && f.lockedUntil > now) {
      this.deps.metrics.bindFailures.labels("locked_out").inc();
      // a locked-out peer may keep trying as fast as it connects: one line a minute per lockout
      if (this.firstInMinute("locked\u0000" + fkey)) log.warn({ remote: ip, system_id: pdu.system_id.slice(0, 64) }, "smpp: bind refused, locked out (logged once a minute while it lasts)");
      session.respondBind(pdu, STATUS.ESME_RBINDFAIL, "");
      return;
    }
    // Always one constant-time comparison, whether the account exists or not.
    const given = digest(pdu.password);
    const pwOk = timingSafeEqual(given, acct !== undefined ? acct.digest : DUMMY_DIGEST) && acct !== undefined;
    let reason = "";
    if (acct === undefined) reason = "unknown_system_id";
    else if (!addressAllowed(acct.allowed, ip)) reason = "source_not_allowed";
    else if (!pwOk) reason = "bad_password";
    if (reason !== "") {
      this.countFailure(fkey, ip, now);
      this.deps.metrics.bindFailures.labels(reason).inc();
      log.warn({ remote: ip, system_id: pdu.system_id, reason }, "smpp: bind refused");
      // One answer for every refusal (unknown system_id, wrong password, source not allowed,
      // locked out): the peer cannot tell which accounts exist.
      session.respondBind(pdu, STATUS.ESME_RBINDFAIL, "");
      return;
    }
    const a = acct!;
    const okType =
      a.cfg.role === "carrier"
        ? pdu.command_id === CMD.bind_transmitter || pdu.command_id === CMD.bind_transceiver
        : pdu.command_id === CMD.bind_receiver || pdu.command_id === CMD.bind_transceiver;
    if (!okType) {
      this.deps.metrics.bindFailures.labels("bind_type").inc();
      log.warn({ remote: ip, system_id: a.cfg.system_id, role: a.cfg.role }, "smpp: bind refused, bind type not allowed for role");
      session.respondBind(pdu, STATUS.ESME_RBINDFAIL, "");
      return;
    }
    if (a.sessions.length >= (a.cfg.max_binds ?? 8)) {
      this.deps.metrics.bindFailures.labels("max_binds").inc();
      log.warn({ remote: ip, system_id: a.cfg.system_id }, "smpp: bind refused, too many binds");
      session.respondBind(pdu, STATUS.ESME_RALYBND, "");
      return;
    }
    if (this.deps.inbound.draining) {
      session.respondBind(pdu, STATUS.ESME_RBINDFAIL, "");
      return;
    }
    this.failures.delete(fkey);
    session.peer = a.cfg.system_id;
    session.context = a;
    a.sessions.push(session);
    session.setWindows(a.cfg.window, a.cfg.window_in);
    if (a.cfg.enquire_link_s !== undefined) session.setEnquireLink(a.cfg.enquire_link_s * 1000);
    session.respondBind(pdu, STATUS.ESME_ROK, "didgate");
    this.deps.metrics.binds.labels(a.cfg.system_id).set(a.sessions.length);
    this.deps.metrics.bindState.labels(a.cfg.system_id, "server").set(1);
    log.info({ session: session.id, peer: a.cfg.system_id, remote: ip, state: session.state }, "smpp: bound");
  }

  /**
   * An SMSC's outbind: when its system_id and password are an outbind bind's, from an allowed
   * address, the connection becomes that bind's session (didgate binds back as receiver). Anything
   * else closes the connection, with no answer (outbind has none): the peer cannot tell an unknown
   * system_id from a wrong password. Failures count towards the same lockout as binds.
   */
  private outbind(session: SmppSession, pdu: Pdu): void {
    const ip = session.remoteAddress;
    const now = this.deps.clock.now();
    const given = digest(pdu.password);
    let match: Outbind | undefined;
    let known = false;
    let sourceOk = false;
    for (const o of this.outbinds) {
      if (o.target.cfg.system_id !== pdu.system_id) continue;
      known = true;
      if (!addressAllowed(o.allowed, ip)) continue;
      sourceOk = true;
      // One constant-time comparison per candidate; a free one first, else the first (its link is replaced).
      if (!timingSafeEqual(given, o.digest)) continue;
      if (match === undefined || (match.target.isBound && !o.target.isBound)) match = o;
    }
    // As many comparisons for an unknown system_id as for a known one with one candidate.
    if (!known) timingSafeEqual(given, DUMMY_DIGEST);
    const fkey = failureKey(ip, known ? "\u0001outbind=" + pdu.system_id : undefined);
    const f = this.failures.get(fkey);
    let reason: OutbindOutcome = match !== undefined ? "accepted" : !known ? "unknown_system_id" : !sourceOk ? "source_not_allowed" : "bad_password";
    if (f !== undefined && f.lockedUntil > now) reason = "locked_out";
    else if (reason === "accepted" && this.deps.inbound.draining) reason = "stopped";
    if (reason === "accepted" && match !== undefined) {
      this.failures.delete(fkey);
      const socket = session.detach("outbind");
      if (match.target.adoptOutbind(socket, ip)) {
        this.deps.metrics.outbinds.labels("accepted").inc();
        return;
      }
      socket.destroy();
      reason = "stopped";
    } else if (reason !== "locked_out" && reason !== "stopped") {
      this.countFailure(fkey, ip, now);
    }
    this.deps.metrics.outbinds.labels(reason).inc();
    if (this.firstInMinute("outbind\u0000" + ip)) {
      this.deps.logger.warn({ remote: ip, system_id: pdu.system_id, reason }, "smpp: outbind refused, connection closed (more from this address: at most one line a minute)");
    }
    // No answer: outbind has none, and the peer learns nothing about which part was wrong.
    session.close("outbind refused", false);
  }

  private countFailure(key: string, ip: string, now: number): void {
    let f = this.failures.get(key);
    if (f === undefined || now - f.windowStart > this.failureWindowMs) {
      f = { count: 0, windowStart: now, lockedUntil: 0 };
      this.failures.set(key, f);
    }
    f.count++;
    if (f.count >= this.maxFailures) {
      f.lockedUntil = now + this.lockoutMs;
      this.deps.logger.warn({ remote: ip, failures: f.count, lockout_ms: this.lockoutMs }, "smpp: address locked out for this system_id");
    }
  }

  /** Entries in the failure table (bounded: an LRU of at most 10,000). */
  get lockoutEntries(): number {
    return this.failures.size;
  }

  // Sending to apps ---------------------------------------------------------------------------

  /** Number of sessions of this account that can take deliver_sm now. */
  boundCount(system_id: string): number {
    const a = this.accounts.get(system_id);
    if (a === undefined) return 0;
    let n = 0;
    for (const s of a.sessions) if (s.canSendMessages) n++;
    return n;
  }

  /** system_ids of accounts with a session here that can take deliver_sm now. */
  *receivingAccounts(): Iterable<string> {
    for (const [id, a] of this.accounts) if (a.sessions.some((s) => s.canSendMessages)) yield id;
  }

  accountRole(system_id: string): "carrier" | "app" | undefined {
    return this.accounts.get(system_id)?.cfg.role;
  }

  hasAccount(system_id: string): boolean {
    return this.accounts.has(system_id);
  }

  /**
   * The account's bind a deliver_sm goes to: of those that can receive, the one with the fewest
   * requests outstanding, round robin among equals. A bind that stopped answering (its window
   * full of unanswered requests) is passed over while another one answers.
   */
  private pick(a: Account): SmppSession | null {
    const n = a.sessions.length;
    let best: SmppSession | null = null;
    let bestAt = 0;
    for (let i = 0; i < n; i++) {
      const s = a.sessions[(a.rr + i) % n]!;
      if (!s.canSendMessages) continue;
      if (best === null || s.outstanding < best.outstanding) {
        best = s;
        bestAt = i;
      }
    }
    if (best !== null) a.rr = (a.rr + bestAt + 1) % n;
    return best;
  }

  /** deliver_sm to a bound account (pick()). */
  async deliver(system_id: string, msg: OutboundSms): Promise<SendResult> {
    const a = this.accounts.get(system_id);
    if (a === undefined) return { outcome: "permanent", message_ids: [], error: "unknown_account" };
    if (this.deps.inbound.draining) return { outcome: "temporary", message_ids: [], error: "draining" };
    const session = this.pick(a);
    if (session === null) return { outcome: "temporary", message_ids: [], error: "not_bound" };
    let pdus: Pdu[];
    try {
      pdus = buildMessagePdus(CMD.deliver_sm, msg, msg.reference ?? this.refCounter++ & 0xffff, a.cfg.long_messages, {
        languages: a.cfg.national_language,
        saved: (n) => this.deps.metrics.nationalPartsSaved.labels(a.cfg.system_id).inc(n),
      });
    } catch (e) {
      return { outcome: "permanent", message_ids: [], error: (e as Error).message };
    }
    const s = session;
    return sendAll(pdus, (p) => s.request(p), a.cfg);
  }

  /**
   * A delivery receipt (deliver_sm, esm_class 0x04) to a bound account, on a session that can
   * receive (a transceiver or receiver bind). "temporary" with error not_bound when there is none.
   */
  async sendReceipt(system_id: string, r: OutboundReceipt): Promise<SendResult> {
    const a = this.accounts.get(system_id);
    if (a === undefined) return { outcome: "permanent", message_ids: [], error: "unknown_account" };
    const s = this.pick(a);
    if (s === null) return { outcome: "temporary", message_ids: [], error: "not_bound" };
    const p = new Pdu(CMD.deliver_sm);
    p.source_addr = r.source.addr;
    p.source_addr_ton = r.source.ton;
    p.source_addr_npi = r.source.npi;
    p.destination_addr = r.destination.addr;
    p.dest_addr_ton = r.destination.ton;
    p.dest_addr_npi = r.destination.npi;
    p.esm_class = 0x04;
    p.short_message = Buffer.from(r.text.slice(0, 255), "latin1");
    p.tlvs = [tlvCString(TLV.receipted_message_id, r.message_id), tlvU8(TLV.message_state, r.message_state)];
    return sendAll([p], (q) => s.request(q), a.cfg);
  }

  /** All live sessions (for metrics and drain). */
  allSessions(): Iterable<SmppSession> {
    return this.sessions;
  }

  /** Stop accepting connections; unbind every session politely. */
  async drain(timeoutMs: number): Promise<void> {
    const srv = this.server;
    if (srv !== null) srv.close();
    await Promise.race([
      Promise.all([...this.sessions].map((s) => s.unbind())),
      new Promise<void>((r) => this.deps.clock.setTimeout(r, timeoutMs)),
    ]);
    this.close();
  }

  /** Close everything now. */
  close(): Promise<void> {
    for (const s of [...this.sessions]) s.close("server closing", false);
    const srv = this.server;
    this.server = null;
    if (srv === null || !srv.listening) return Promise.resolve();
    return new Promise((r) => srv.close(() => r()));
  }
}
