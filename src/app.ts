/**
 * The one place that wires didgate together: config → logger, metrics, route source (file or
 * Redis), delivery (direct or spooled), the SMPP service and the SIP edge, and the admin HTTP server.
 * No global state: several instances can run in one process on different ports.
 *
 * Lifecycle: start() loads routes, starts delivery, then the listeners, then the admin server.
 * stop() drains: new INVITEs get 503 and new SMPP PDUs a temporary failure, transactions and
 * deliveries in flight get up to drain.grace_s to finish, SMPP sessions are unbound politely.
 */
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { ConfigError, loadConfig, packageRoot, resolvePath, snapshotPath, type LoadedConfig } from "./config/load.js";
import { parseHostPort } from "./util/net.js";
import type { Config } from "./config/schema.js";
import { Delivery } from "./delivery/delivery.js";
import { RedisPartStore } from "./delivery/parts.js";
import { JournalPartStore } from "./delivery/parts-journal.js";
import { spoolConnect } from "./delivery/redis.js";
import { type RedisClient, RedisConnector } from "./redis/client.js";
import { SmppPartStore } from "./edge/sms-parts.js";
import { ReceiptCorrelator } from "./edge/receipts.js";
import { SmppServiceForwarder } from "./edge/sms-forward.js";
import { ReceiptSender } from "./edge/sms-receipts.js";
import { RedisPendingReceipts } from "./edge/receipt-queue.js";
import { SmsEdge } from "./edge/sms.js";
import { bindTps, senderRights, SmsOutbound } from "./edge/sms-outbound.js";
import { SmsMasking } from "./edge/sms-masking.js";
import { MemoryOptOutStore, RedisOptOutStore, type OptOutStore } from "./edge/optout.js";
import { SmsKeywords } from "./edge/sms-keywords.js";
import { VoiceEdge } from "./edge/voice.js";
import { reloadVoice, voiceSettings } from "./config/wire.js";
import { selfTargetCheck } from "./edge/self-targets.js";
import { AdminServer, type Readiness } from "./ops/admin.js";
import { createLogger } from "./ops/logger.js";
import { createRegistry } from "./ops/metrics.js";
import { RouteMetrics } from "./routing/metrics.js";
import { Decider } from "./routing/decide.js";
import { lookupJson } from "./routing/explain.js";
import type { NumberPlan } from "./routing/number.js";
import type { Route } from "./routing/route.js";
import type { OutboundEntry } from "./routing/outbound.js";
import { FileRouteSource } from "./routing/sources/file.js";
import { RedisRouteSource } from "./routing/sources/redis.js";
import { RouteStore, RouteTable } from "./routing/table.js";
import { SmppService } from "./smpp/service.js";
import { startApi, type ApiHandle } from "./api/index.js";
import { registerSessionsApi } from "./api/sessions.js";
import { registerMessagesApi } from "./api/messages.js";
import { MemoryMessageStatusStore, RedisMessageStatusStore, type MessageStatusStore } from "./edge/sms-status.js";
import { MaskingMetrics } from "./masking/metrics.js";
import { MemorySessionStore, RedisSessionStore, type SessionStore } from "./masking/sessions.js";
import { ActivityRecorder } from "./records/activity.js";
import { createPrivateKey } from "node:crypto";
import { AddressPolicy } from "./delivery/ssrf.js";
import { CallRecords } from "./edge/cdr.js";
import { callIdOf, HepSender } from "./ops/hep.js";
import type { CaptureTap, UdpSteer } from "./sip/transport.js";
import { branchTag } from "./workers/steer.js";
import { workerConfig } from "./workers/config.js";
import { DialogSigner, SipStack, type SipStackOptions } from "./sip/index.js";
import { loadDialogSecrets } from "./edge/dialog-secret.js";
import { Counter } from "prom-client";
import { StirPolicy } from "./edge/stir.js";
import { CertCache, parsePemBundle } from "./stir/certs.js";
import { StirSigner } from "./stir/sign.js";
import { StirVerifier } from "./stir/verify.js";
import type { StatusReport } from "./ops/status.js";
import { RecordWriter, type RecordWebhook } from "./records/writer.js";
import { WebhookSender } from "./delivery/webhook.js";
import type { SmppConfig } from "./smpp/types.js";
import { NATIONAL_LANGUAGES } from "./smpp/national.js";
import { registerPoolsApi } from "./api/pools.js";
import { MAX_POOL_NUMBERS } from "./masking/pools.js";
import { NumberStates } from "./records/number-states.js";
import { registerUsersApi } from "./api/users.js";
import { errMessage } from "./util/errors.js";
import { stopComponents, type Component } from "./util/lifecycle.js";

/** This instance is one of several SIP worker processes (sip.workers > 1, src/workers/). */
export interface WorkerRole {
  index: number;
  count: number;
  /** Sees every datagram of the shared UDP socket first; true: passed to its owner. */
  steer: UdpSteer;
  /** Worker 0: the /metrics text of every worker, summed (asked of the primary). */
  clusterMetrics?: () => Promise<string>;
  /** A BYE this worker passed for a call it holds nothing of: told to the other workers. */
  endCallElsewhere?: (callId: string, byCallee: boolean) => void;
  /** Worker 0: the workers that have started (for /readyz and /v1/status). */
  workersUp?: () => number[];
  /** Worker 0: calls in progress on each worker (-1: no answer in time), for /v1/status. */
  clusterCalls?: () => Promise<number[]>;
  /** A CANCEL over UDP whose INVITE is not here: passed to the next worker (SipStackOptions.unmatchedCancel). */
  unmatchedCancel?: SipStackOptions["unmatchedCancel"];
}

export interface DidgateOptions {
  logger?: Logger;
  /** A SIP worker process (sip.workers > 1); undefined: the one process does everything. */
  worker?: WorkerRole;
  /** Epoch ms; injectable for tests. */
  now?: () => number;
  /** Uniform random in [0,1). */
  random?: () => number;
}

/** The package version (package.json). */
export function packageVersion(): string {
  try {
    return String((JSON.parse(readFileSync(resolvePath(packageRoot(), "package.json"), "utf8")) as { version?: string }).version ?? "0");
  } catch {
    return "0";
  }
}

export class StartError extends Error {
  /** `headline` says what kind of problem it is ("invalid configuration", "Redis unreachable"). */
  constructor(
    readonly errors: string[],
    readonly headline = "invalid configuration",
  ) {
    super(errors.join("\n"));
    this.name = "StartError";
  }
}

/** Drop undefined values (the SMPP layer's options are exact optional properties). */
function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

/** Number plan per SMPP peer (account system_id or bind name), filled into `into`. */
function smppPlans(s: Config["smpp"], into: Map<string, NumberPlan>): Map<string, NumberPlan> {
  into.clear();
  for (const a of s.accounts) if (a.country_code !== undefined) into.set(a.system_id, { countryCode: a.country_code });
  for (const b of s.binds) if (b.country_code !== undefined) into.set(b.name, { countryCode: b.country_code });
  return into;
}

export class Didgate {
  config: Config;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly routeMetrics: RouteMetrics;
  /** didgate_numbers{state}: numbers by the state they answer with now. */
  readonly numberStates: NumberStates;
  readonly store: RouteStore<Route>;
  /** The outbound table: destination prefix to carriers (routes file `outbound:`, Redis `<prefix>outbound`). */
  readonly outboundStore: RouteStore<OutboundEntry>;
  readonly decider: Decider;
  readonly now: () => number;
  /** routes.redis.url parsed once; every Redis connection of this instance is made on it. */
  readonly redis: RedisConnector | undefined;
  private fileSource: FileRouteSource | undefined;
  redisSource: RedisRouteSource | undefined;
  delivery: Delivery | undefined;
  smpp: SmppService | undefined;
  /** Spool mode: the connection of the durable reassembly buffers (and of waiting receipts). */
  private partsRedis: RedisClient | undefined;
  /** Direct mode: the journal of the durable reassembly buffers. */
  private partsJournal: JournalPartStore | undefined;
  private receiptSender: ReceiptSender | undefined;
  sms: SmsEdge | undefined;
  /** Outbound messages from app accounts (README.md "Sending messages"). */
  smsOut: SmsOutbound | undefined;
  /** Who opted out of which number (Redis when configured). */
  optouts: OptOutStore | undefined;
  /** Status histories of API messages (Redis when configured). */
  private messageStatuses: MessageStatusStore | undefined;
  voice: VoiceEdge | undefined;
  readonly receipts = new ReceiptCorrelator();
  private admin: AdminServer | undefined;
  adminAddress: AddressInfo | undefined;
  /** The HTTP API (api.listen); its own Redis connection for writes. */
  api: ApiHandle | undefined;
  private apiRedis: RedisClient | undefined;
  /** Polls the pools other edges changed (masking with Redis). */
  private maskingTimer: NodeJS.Timeout | undefined;
  /** Masking sessions (masking.pools); in Redis when it is configured. */
  masking: SessionStore | undefined;
  private maskingMetrics: MaskingMetrics | undefined;
  /** Call and message records (records.enabled), and number activity. */
  records: RecordWriter | undefined;
  private recordSender: WebhookSender | undefined;
  activity: ActivityRecorder | undefined;
  stir: StirPolicy | undefined;
  cdr: CallRecords | undefined;
  /** SIP capture to a HEP collector (capture.hep). */
  hep: HepSender | undefined;
  /** Connections of the records, activity and masking stores. */
  private extraRedis: RedisClient[] = [];
  private routesLoaded = false;
  private listenersUp = false;
  private stopping = false;
  private stopped: Promise<void> | undefined;

  /** The SIP stack of the voice edge (once started). */
  sipStack: SipStack | undefined;

  constructor(readonly loaded: LoadedConfig, private readonly opts: DidgateOptions = {}) {
    this.config = this.forWorker(loaded.config);
    this.logger = opts.logger ?? createLogger(this.config.log.level);
    this.registry = createRegistry();
    this.routeMetrics = new RouteMetrics(this.registry);
    this.store = new RouteStore<Route>(RouteTable.build<Route>([]));
    this.outboundStore = new RouteStore<OutboundEntry>(RouteTable.build<OutboundEntry>([]));
    const life = this.config.lifecycle;
    this.decider = new Decider({
      ...(opts.random ? { random: opts.random } : {}),
      quarantineDays: life.quarantine_days,
      tenantQuarantineDays: new Map(Object.entries(life.tenants)),
    });
    this.now = opts.now ?? Date.now;
    this.numberStates = new NumberStates({ registry: this.registry, store: this.store, stateOf: (r, t) => this.decider.stateOf(r, t), now: this.now, onError: (err) => this.logger.warn({ err: errMessage(err) }, "counting numbers by state failed") });
    // The schema has validated the URL already.
    this.redis = this.config.routes.redis ? RedisConnector.fromUrl(this.config.routes.redis.url) : undefined;
  }

  path(p: string): string {
    return resolvePath(this.loaded.baseDir, p);
  }

  /** A worker's share of the config (src/workers/config.ts); the config itself in one process. */
  private forWorker(c: Config): Config {
    const w = this.opts.worker;
    return w === undefined ? c : workerConfig(c, w.index, w.count, hostname());
  }

  /** Worker 0 (or the one process) runs SMPP, delivery, the HTTP API and the admin listener. */
  private get leader(): boolean {
    return this.opts.worker === undefined || this.opts.worker.index === 0;
  }

  /** The state directory of this process (workers other than 0: a subdirectory of their own). */
  private stateDir(): string {
    const d = this.path(this.config.state_dir);
    const w = this.opts.worker;
    return w === undefined || w.index === 0 ? d : resolvePath(d, `worker-${w.index}`);
  }

  async start(): Promise<void> {
    try {
      await this.startRoutes();
      // Counted in slices after start: a large table must not hold the listeners back.
      void this.numberStates.start();
      this.startRecords();
      await this.startMasking();
      if (this.leader) {
        await this.startDelivery();
        await this.startSmpp();
      }
      await this.startVoice();
      if (this.leader) {
        await this.startAdmin();
        await this.startApi();
      }
    } catch (err) {
      await this.shutdown(0).catch(() => undefined);
      throw err;
    }
    this.listenersUp = true;
    this.logger.info(
      {
        admin: this.adminAddress,
        routes: this.store.current.size,
        sip: this.voice?.listeners ?? [],
        smpp: this.smpp?.address() ?? null,
        delivery: this.delivery?.mode,
      },
      "didgate started",
    );
  }

  private async startRoutes(): Promise<void> {
    const redis = this.config.routes.redis;
    if (redis && this.redis) {
      const snapshot = snapshotPath(this.config, this.loaded.baseDir);
      const { url: _url, ...routesRedis } = redis;
      this.redisSource = new RedisRouteSource({
        connector: this.redis,
        redis: { ...routesRedis, snapshot },
        store: this.store,
        outboundStore: this.outboundStore,
        logger: this.logger,
        registry: this.registry,
        routeMetrics: this.routeMetrics,
        snapshotPath: snapshot,
        now: this.now,
      });
      try {
        await this.redisSource.start();
      } catch (err) {
        throw new StartError([`routes.redis: ${errMessage(err)}`], "cannot start: Redis unreachable");
      }
      this.routesLoaded = true;
      return;
    }
    const file = this.path(this.config.routes.file);
    const check = selfTargetCheck(this.config.sip);
    this.fileSource = new FileRouteSource({
      now: this.now,
      path: file,
      watch: this.config.routes.watch,
      store: this.store,
      outboundStore: this.outboundStore,
      logger: this.logger,
      metrics: this.routeMetrics,
      ...(check ? { check, selfTargets: this.config.sip } : {}),
    });
    const r = await this.fileSource.load();
    if (!r.ok) throw new StartError(r.errors);
    this.routesLoaded = true;
  }

  private smppWanted(): boolean {
    const s = this.config.smpp;
    return s.listen !== null || s.binds.length > 0;
  }

  private async startDelivery(): Promise<void> {
    if (!this.smppWanted()) return;
    const redis = this.config.routes.redis;
    const wh = this.config.webhooks;
    this.delivery = new Delivery({
      ...(redis && this.redis ? { redis: { connector: this.redis, prefix: redis.prefix } } : {}),
      webhooks: {
        ...(wh.secret !== undefined ? { secret: wh.secret } : {}),
        timeout_ms: wh.timeout_ms,
        max_age_s: wh.max_age_s,
        max_in_flight: wh.max_in_flight,
        allow_private: wh.allow_private,
      },
      logger: this.logger,
      registry: this.registry,
      forwarder: new SmppServiceForwarder(() => this.smpp, this.receipts, () => this.smsOut),
      // The final outcome of a message whose submitter asked for a receipt (registered_delivery).
      onFinal: (job, outcome) => (job.body.type === "message.outbound" ? this.smsOut?.onFinal(job, outcome) : this.sms?.onFinal(job, outcome)),
      // Spooled jobs name the number whose route signs them; its secret is looked up at delivery.
      secrets: (number) => this.store.current.lookup(number)?.sms?.webhookSecret,
      instanceId: this.config.instance_id ?? hostname(),
      // Answer the SMSC before its own timeout: a little under the handler timeout.
      direct_wait_ms: Math.max(100, this.config.smpp.handler_timeout_s * 1000 - 500),
      ...(this.opts.now ? { now: this.opts.now } : {}),
    });
    await this.delivery.start();
  }

  private smppConfig(s: Config["smpp"] = this.config.smpp): SmppConfig {
    const peer = (p: (typeof s.accounts)[number] | (typeof s.binds)[number]) =>
      defined({
        temp_fail_status: p.temp_fail_status,
        temporary_statuses: p.temporary_statuses,
        default_alphabet: p.default_alphabet,
        gsm_packing: p.gsm_packing,
        receipt_id_format: p.receipt_id_format,
        message_id_format: p.message_id_format,
        window: p.window,
        enquire_link_s: p.enquire_link_s,
        long_messages: p.long_messages,
        national_language: p.national_language?.map((l) => NATIONAL_LANGUAGES[l]!),
      });
    const cfg: SmppConfig = {
      accounts: s.accounts.map((a) => defined({ system_id: a.system_id, password: a.password, role: a.role, sources: a.sources, max_binds: a.max_binds, may_submit: a.role === "app" && (a.tenant !== undefined || (a.senders?.length ?? 0) > 0) ? true : undefined, ...peer(a) })),
      binds: s.binds.map((b) =>
        defined({
          name: b.name,
          host: b.host ?? "",
          port: b.port ?? 0,
          system_id: b.system_id,
          password: b.password,
          mode: b.mode,
          system_type: b.system_type,
          tls: b.tls,
          tls_verify: b.tls_verify,
          tls_ca: b.tls_ca ? readFileSync(this.path(b.tls_ca)) : undefined,
          reconnect_min_s: b.reconnect_min_s,
          reconnect_max_s: b.reconnect_max_s,
          tps: b.tps,
          outbind: b.outbind || undefined,
          outbind_sources: b.outbind_sources,
          ...peer(b),
        }),
      ),
      max_pdu_bytes: s.max_pdu_bytes,
      window: s.window,
      response_timeout_s: s.response_timeout_s,
      enquire_link_s: s.enquire_link_s,
      handler_timeout_s: s.handler_timeout_s,
      bind_timeout_s: s.bind_timeout_s,
      pdu_timeout_s: s.pdu_timeout_s,
      max_connections: s.max_connections,
      max_connections_per_source: s.max_connections_per_source,
      reserved_connections: s.reserved_connections,
      lockout: { ...s.lockout },
      reassembly: { ...s.reassembly },
    };
    if (s.listen !== null) cfg.listen = s.listen;
    if (s.tls) cfg.tls = { cert: readFileSync(this.path(s.tls.cert)), key: readFileSync(this.path(s.tls.key)) };
    return cfg;
  }

  private async startSmpp(): Promise<void> {
    if (!this.smppWanted() || !this.delivery) return;
    const plans = smppPlans(this.config.smpp, new Map());
    // Acknowledged parts of concatenated messages are kept durably (a restart loses none): in Redis
    // in spool mode, in a journal in state_dir in direct mode.
    const redis = this.config.routes.redis;
    let partStore: SmppPartStore | undefined;
    if (this.delivery.mode === "spool" && redis && this.redis) {
      const client = spoolConnect(this.redis, "didgate-parts")("enqueue");
      this.partsRedis = client;
      client.on("error", (err: Error) => this.logger.debug({ err: err.message }, "reassembly parts redis error"));
      if (client.status !== "ready") {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 2000); // not ready by then: parts get a temporary failure until it is
          client.once("ready", () => (clearTimeout(t), resolve()));
        });
      }
      const r = this.config.smpp.reassembly;
      partStore = new SmppPartStore(new RedisPartStore({ client, prefix: redis.prefix, timeoutMs: r.timeout_s * 1000, maxBuffers: r.max_buffers }));
    } else {
      const r = this.config.smpp.reassembly;
      const path = resolvePath(this.path(this.config.state_dir), "sms-parts.journal");
      let journal: JournalPartStore;
      try {
        journal = new JournalPartStore({ path, timeoutMs: r.timeout_s * 1000, maxBuffers: r.max_buffers, maxBytes: r.max_bytes });
        await journal.open();
      } catch (err) {
        throw new StartError([`state_dir: cannot use the reassembly journal ${path}: ${errMessage(err)}`]);
      }
      this.partsJournal = journal;
      const held = await journal.size();
      if (held > 0 || journal.skippedAtReplay > 0) this.logger.info({ path, buffers: held, unreadable_lines: journal.skippedAtReplay }, "reassembly journal replayed");
      partStore = new SmppPartStore(journal);
    }
    const sender = new ReceiptSender({
      send: (peer, r) => this.smpp?.sendReceipt(peer, r) ?? Promise.resolve({ outcome: "temporary", message_ids: [], error: "not_bound" }),
      logger: this.logger,
      registry: this.registry,
      now: this.now,
      readyPeers: () => this.smpp?.receivingAccounts() ?? [],
      // Spool mode: receipts wait in Redis, so the edge the submitter is bound to sends them.
      ...(this.partsRedis && redis ? { pending: new RedisPendingReceipts(this.partsRedis, redis.prefix) } : {}),
    });
    this.receiptSender = sender;
    const receiptsOut = {
      sender,
      isCarrierAccount: (peer: string) => this.smpp?.accountRole(peer) === "carrier",
      isBind: (name: string) => this.smpp?.clients.has(name) ?? false,
    };
    this.optouts = this.partsRedis && redis ? new RedisOptOutStore(this.partsRedis, redis.prefix) : new MemoryOptOutStore();
    this.messageStatuses = this.partsRedis && redis ? new RedisMessageStatusStore(this.partsRedis, redis.prefix) : new MemoryMessageStatusStore();
    const out = new SmsOutbound({ store: this.store, outbound: this.outboundStore, smpp: () => this.smpp, delivery: this.delivery, optouts: this.optouts, rights: senderRights(this.config.smpp.accounts, new Map()), plans, tps: bindTps(this.config.smpp.binds), receipts: this.receipts, receiptSender: sender, statuses: this.messageStatuses, ...(this.partsRedis && redis ? { shared: { redis: this.partsRedis, prefix: redis.prefix } } : {}), logger: this.logger, registry: this.registry, now: this.now, maxAgeMs: this.config.webhooks.max_age_s * 1000, inDoubtHoldMs: this.config.smpp.in_doubt_hold_s * 1000, ...(this.config.sip.dialog_secret !== undefined ? { textKey: this.config.sip.dialog_secret } : {}), stateOf: (r, t) => this.decider.stateOf(r, t), ...(this.records ? { records: this.records } : {}) });
    this.smsOut = out;
    const keywords = new SmsKeywords({ store: this.store, optouts: this.optouts, send: (m) => out.sendAuto(m), texts: () => this.config.smpp.optout, logger: this.logger, registry: this.registry });
    const sms = new SmsEdge({ keywords, store: this.store, delivery: this.delivery, logger: this.logger, registry: this.registry, plans, receipts: this.receipts, receiptsOut, onOutboundReceipt: (s, r) => out.onReceipt(s, r), findOutbound: async (b, id, r) => (await out.findShared(b, id)) ?? (r !== undefined ? await out.matchInDoubt(r) : undefined), sharedClash: (b, id) => out.sharedClash(b, id), now: this.now, dedup: { windowMs: this.config.smpp.dedup_window_s * 1000, max: this.config.smpp.dedup_max_entries }, stateOf: (r, t) => this.decider.stateOf(r, t), ...(this.records ? { records: this.records } : {}), ...(this.activity ? { activity: this.activity } : {}), ...(this.masking ? { masking: this.smsMasking(this.masking, out, receiptsOut.isCarrierAccount) } : {}) });
    this.sms = sms;
    const isApp = (m: { peer: string; peer_kind: string }) => m.peer_kind === "account" && this.smpp?.accountRole(m.peer) === "app";
    this.smpp = new SmppService({
      config: this.smppConfig(),
      logger: this.logger,
      registry: this.registry,
      // An app account's submit_sm is an outbound message; a receipt from an app is not ours to route.
      onMessage: (m) => (isApp(m) ? out.onSubmit(m) : sms.onMessage(m)),
      onReceipt: (r) => (isApp(r) ? undefined : sms.onReceipt(r)),
      ops: () => this.smsOut?.ops,
      ...(partStore ? { partStore } : {}),
    });
    await this.smpp.start();
    sender.start();
    out.start();
  }

  /** Messages to pool numbers through masking sessions, queued on the outbound path. */
  private smsMasking(store: SessionStore, out: SmsOutbound, isCarrierAccount: (peer: string) => boolean): SmsMasking {
    return new SmsMasking({ store, routes: this.store, outbound: out, isCarrierAccount, logger: this.logger, now: this.now, ...(this.maskingMetrics ? { metrics: this.maskingMetrics } : {}), ...(this.records ? { records: this.records } : {}), ...(this.activity ? { activity: this.activity } : {}) });
  }

  private async startVoice(): Promise<void> {
    if (this.config.sip.listen.length === 0) return;
    this.stir = this.buildStir();
    this.hep = this.buildCapture();
    if (this.records) this.cdr = new CallRecords({ writer: this.records, edge: this.config.instance_id ?? hostname(), now: this.now, maxCallMs: this.config.sip.max_call_s * 1000 });
    const signer = this.dialogSigner();
    const stackOptions = this.sipStackOptions(this.hep ? this.captureTap(this.hep) : undefined);
    this.voice = new VoiceEdge({
      createStack: async (handler) => (this.sipStack = await SipStack.create(stackOptions, handler)),
      signer,
      settings: voiceSettings(this.config),
      store: this.store,
      outbound: this.outboundStore,
      decider: this.decider,
      logger: this.logger,
      registry: this.registry,
      now: this.now,
      ...(this.redis ? { redis: this.redis } : {}),
      ...(this.stir ? { stir: this.stir } : {}),
      ...(this.cdr ? { cdr: this.cdr } : {}),
      ...(this.activity ? { activity: this.activity } : {}),
      ...(this.opts.worker?.endCallElsewhere ? { endElsewhere: this.opts.worker.endCallElsewhere } : {}),
      ...(this.masking ? { masking: { store: this.masking, ...(this.maskingMetrics ? { metrics: this.maskingMetrics } : {}) } } : {}),
    });
    await this.voice.start();
  }

  /**
   * The Record-Route signer of sip.dialog_secret (and _previous); without one, a secret kept in
   * the state directory (src/edge/dialog-secret.ts).
   */
  private dialogSigner(): DialogSigner {
    const s = this.config.sip;
    return new DialogSigner(
      loadDialogSecrets({
        secret: s.dialog_secret,
        previous: s.dialog_secret_previous,
        stateDir: this.path(this.config.state_dir),
        logger: this.logger,
        shared: this.config.routes.redis !== undefined,
      }),
    );
  }

  /** Workers: a CANCEL is passed round only when the voice edge admits its source (VoiceEdge.mayPassCancel). */
  private passCancel(uc: NonNullable<SipStackOptions["unmatchedCancel"]>): NonNullable<SipStackOptions["unmatchedCancel"]> {
    return (bytes, m, src) => this.voice !== undefined && this.voice.mayPassCancel(src) && uc(bytes, m, src);
  }

  /** config.sip as the SIP stack's options, its TLS files read (relative to the config file). */
  private sipStackOptions(capture: CaptureTap | undefined): SipStackOptions {
    const s = this.config.sip;
    const tls = s.tls ? { cert: readFileSync(this.path(s.tls.cert)), key: readFileSync(this.path(s.tls.key)) } : undefined;
    const ca = s.tls?.ca ? readFileSync(this.path(s.tls.ca)) : undefined;
    const listen = s.listen.map((url) => (s.advertise ? { url, advertise: s.advertise } : url));
    const w = this.opts.worker;
    return {
      listen,
      ...(w ? { branchTag: branchTag(w.index) } : {}),
      ...(w?.unmatchedCancel ? { unmatchedCancel: this.passCancel(w.unmatchedCancel) } : {}),
      ...(tls ? { tls } : {}),
      logger: this.logger,
      registry: this.registry,
      t1: s.timers.t1_ms,
      t2: s.timers.t2_ms,
      t4: s.timers.t4_ms,
      wait: s.timers.wait_ms,
      autoTrying: false,
      transport: {
        ...(capture ? { capture } : {}),
        ...(w ? { steer: w.steer, sharedListen: true } : {}),
        tlsVerify: s.tls?.verify ?? true,
        ...(ca ? { tlsCa: ca } : {}),
        maxConnections: s.tcp.max_connections,
        maxUntrustedConnections: Math.min(s.tcp.max_untrusted_connections, s.tcp.max_connections),
        maxConnectionsPerIp: s.tcp.max_connections_per_ip,
        messageTimeoutMs: s.tcp.message_timeout_s * 1000,
        idleTimeoutMs: s.tcp.idle_timeout_s * 1000,
        untrustedIdleTimeoutMs: s.tcp.untrusted_idle_timeout_s * 1000,
      },
    };
  }

  /** The HEP sender (capture.hep) and its metric. */
  private buildCapture(): HepSender | undefined {
    const c = this.config.capture;
    if (c === undefined) return undefined;
    const m = /^udp:\/\/\[?([^\]]+?)\]?:(\d+)$/.exec(c.hep)!;
    const sender = new HepSender({ host: m[1]!, port: Number(m[2]), captureId: c.id, sample: c.sample, maxInFlight: c.max_in_flight, ...(c.auth_key ? { authKey: c.auth_key } : {}) });
    const last = { sent: 0, dropped: 0, errors: 0, sampledOut: 0 };
    const counter = new Counter({
      name: "didgate_capture_packets_total",
      help: "SIP messages mirrored as HEP3, by result",
      labelNames: ["result"],
      registers: [this.registry],
      collect() {
        const k = sender.counters;
        const step = (key: keyof typeof last, result: string): void => {
          if (k[key] > last[key]) this.inc({ result }, k[key] - last[key]);
          last[key] = k[key];
        };
        step("sent", "sent");
        step("dropped", "dropped");
        step("errors", "error");
        step("sampledOut", "sampled_out");
      },
    });
    void counter;
    return sender;
  }

  private captureTap(h: HepSender): CaptureTap {
    return (transport, srcAddress, srcPort, dstAddress, dstPort, buf) => h.capture(transport, srcAddress, srcPort, dstAddress, dstPort, buf, callIdOf(buf));
  }

  /** STIR/SHAKEN from config: trust anchors and signing key read here, at the border. */
  private buildStir(): StirPolicy | undefined {
    const s = this.config.stir;
    if (s === undefined || (s.verify === undefined && s.sign === undefined)) return undefined;
    let verifier: StirVerifier | undefined;
    let certs: CertCache | undefined;
    let signer: StirSigner | undefined;
    if (s.verify) {
      const v = s.verify;
      let anchors;
      try {
        anchors = parsePemBundle(readFileSync(this.path(v.trust_anchors)));
      } catch (err) {
        throw new StartError([`stir.verify.trust_anchors: cannot read ${this.path(v.trust_anchors)}: ${errMessage(err)}`]);
      }
      if (anchors.length === 0) throw new StartError([`stir.verify.trust_anchors: no certificate in ${this.path(v.trust_anchors)}`]);
      const policy = new AddressPolicy(v.allow_private);
      certs = new CertCache({ anchors, allowHttp: v.allow_http_x5u, timeoutMs: v.fetch_timeout_ms, maxEntries: v.cache_entries, allowAddress: (ip) => policy.allows(ip), now: this.now });
      verifier = new StirVerifier({ certs, maxAgeS: v.max_age_s, now: this.now });
    }
    if (s.sign) {
      let key;
      try {
        key = createPrivateKey(readFileSync(this.path(s.sign.key)));
      } catch (err) {
        throw new StartError([`stir.sign.key: cannot read a private key from ${this.path(s.sign.key)}: ${errMessage(err)}`]);
      }
      if (key.asymmetricKeyType !== "ec") throw new StartError([`stir.sign.key: must be an EC P-256 key (ES256), got ${key.asymmetricKeyType}`]);
      signer = new StirSigner({ key, x5u: s.sign.x5u, now: this.now });
    }
    return new StirPolicy({ ...(verifier ? { verifier } : {}), ...(certs ? { certs } : {}), ...(signer ? { signer } : {}), ...(s.verify ? { budgetMs: s.verify.budget_ms } : {}), registry: this.registry });
  }

  private async startAdmin(): Promise<void> {
    const hp = parseHostPort(this.config.admin.listen)!;
    const cm = this.opts.worker?.clusterMetrics;
    this.admin = new AdminServer({
      registry: this.registry,
      ...(cm ? { metrics: cm } : {}),
      logger: this.logger,
      readiness: () => this.readiness(),
      status: () => this.status(),
      user: async (name) => this.voice?.registrar?.show(name),
      lookup: (number, caller, atMs, countryCode) => this.lookup(number, caller, atMs, countryCode),
    });
    this.adminAddress = await this.admin.listen(hp.host, hp.port);
  }

  // ---- HTTP API ----------------------------------------------------------------------------------

  private async startApi(): Promise<void> {
    const api = this.config.api;
    if (api.listen === null) return;
    const redis = this.config.routes.redis;
    if (redis && this.redis) {
      // Writes fail fast (503) while Redis is unreachable instead of queueing.
      this.apiRedis = this.redis.client({ name: "didgate-api", redis: { enableOfflineQueue: false, commandTimeout: 5000, maxRetriesPerRequest: 0 } });
      this.apiRedis.on("error", (err: Error) => this.logger.debug({ err: err.message }, "api redis error"));
      await this.apiRedis.connect().catch(() => undefined);
    }
    this.api = await startApi({
      config: api,
      ...(api.tls ? { tls: { cert: readFileSync(this.path(api.tls.cert)), key: readFileSync(this.path(api.tls.key)) } } : {}),
      ...(redis && this.apiRedis ? { redis: { client: this.apiRedis, prefix: redis.prefix, streamMaxlen: redis.stream_maxlen } } : {}),
      store: this.store,
      lookup: (number, caller, atMs) => this.lookup(number, caller, atMs),
      logger: this.logger,
      registry: this.registry,
      now: this.now,
      register: [
        (app) => {
          const store = this.masking;
          if (store === undefined) return;
          registerSessionsApi(app, { store, poolTenant: (n) => store.poolInfo(n)?.tenant, maxTtlS: this.config.masking.max_ttl_s, ...(this.maskingMetrics ? { metrics: this.maskingMetrics } : {}) });
          registerPoolsApi(app, { store, configPools: new Set(this.config.masking.pools.map((p) => p.name)), maxPools: this.config.masking.max_pools, maxNumbers: MAX_POOL_NUMBERS });
        },
        (app) => {
          const out = this.smsOut;
          const statuses = this.messageStatuses;
          if (out === undefined || statuses === undefined) return;
          registerMessagesApi(app, { submit: (r) => out.submitHttp(r), statuses, mode: () => this.delivery?.mode ?? "direct" });
        },
        (app) => {
          const r = this.voice?.registrar;
          if (r !== undefined) registerUsersApi(app, r, this.logger);
        },
      ],
    });
    const index = this.api.index;
    this.redisSource?.on("delta", (_id: string, _op: string, key: string) => index.noteChanged(key));
  }

  /** A Redis connection of its own for a store (null when Redis is not configured). */
  private ownRedis(name: string): RedisClient | undefined {
    if (this.redis === undefined) return undefined;
    const c = this.redis.client({ name, redis: { maxRetriesPerRequest: 1, enableOfflineQueue: true } });
    c.on("error", (err: Error) => this.logger.debug({ err: err.message, connection: name }, "redis error"));
    void c.connect().catch(() => undefined);
    this.extraRedis.push(c);
    return c;
  }

  // ---- records, activity, masking ----------------------------------------------------------------

  private startRecords(): void {
    const r = this.config.records;
    const prefix = this.config.routes.redis?.prefix ?? "didgate:";
    const stateDir = this.stateDir();
    if (r.enabled) {
      const redis = this.ownRedis("didgate-records");
      this.records = new RecordWriter({
        stateDir,
        ...(redis ? { redis } : {}),
        stream: `${prefix}cdr`,
        maxlen: r.stream_maxlen,
        ...(r.jsonl ? { jsonl: { path: this.path(r.jsonl.path), maxBytes: r.jsonl.max_bytes, keep: r.jsonl.keep } } : {}),
        ...(r.webhook ? { webhook: this.recordWebhook(r.webhook) } : {}),
        logger: this.logger,
        registry: this.registry,
      });
    }
    const redis = this.ownRedis("didgate-activity");
    this.activity = new ActivityRecorder({ ...(redis ? { redis, prefix } : { file: resolvePath(stateDir, "activity.json") }), logger: this.logger, now: this.now });
  }

  private recordWebhook(w: NonNullable<Config["records"]["webhook"]>): RecordWebhook {
    const wh = this.config.webhooks;
    this.recordSender = new WebhookSender({ timeoutMs: wh.timeout_ms, ...(wh.secret ? { secret: wh.secret } : {}), now: this.now, allowPrivate: wh.allow_private, maxSockets: 16 });
    return { sender: this.recordSender, url: w.url, ...(w.secret ? { secret: w.secret } : {}), types: w.types, maxAgeMs: w.max_age_s * 1000, now: this.now };
  }

  private async startMasking(): Promise<void> {
    const m = this.config.masking;
    // On with pools in the config, or with the API (pools can be created there).
    if (m.pools.length === 0 && this.config.api.listen === null) return;
    const redis = this.ownRedis("didgate-masking");
    const prefix = this.config.routes.redis?.prefix ?? "didgate:";
    const store: SessionStore = redis ? new RedisSessionStore(redis, prefix, this.now) : new MemorySessionStore(this.now);
    for (const p of m.pools) {
      try {
        await store.setPool(p.name, p.tenant, p.numbers);
      } catch (err) {
        throw new StartError([`masking.pools ${p.name}: cannot store the pool in Redis: ${errMessage(err)}`]);
      }
    }
    if (redis) {
      // Pools created or changed through the API on any edge: one GET every 2 s when none changed.
      await store.refreshPools().catch(() => undefined);
      this.maskingTimer = setInterval(() => void store.refreshPools().catch(() => undefined), 2000);
      this.maskingTimer.unref();
    }
    this.masking = store;
    this.maskingMetrics = new MaskingMetrics(this.registry, store);
  }

  /** The status view (admin GET /v1/status, `didgate status`). */
  async status(): Promise<StatusReport> {
    const ready = this.readiness();
    const t = this.store.current;
    const rs = this.redisSource?.status();
    const routes: StatusReport["routes"] = { source: this.redisSource ? "redis" : "file", entries: t.size, version: String(t.version) };
    if (rs !== undefined) {
      const state = rs.refusing ? "refusing (shrink guard)" : rs.stale ? "stale (from snapshot)" : rs.connected ? "connected" : "disconnected";
      routes.sync = { state, lag_ms: null, last_error: rs.lastError ?? null };
    } else routes.last_error = this.fileSource?.lastError?.[0] ?? null;
    const v = this.voice?.status();
    // SIP workers: calls are held by every worker (worker 0 answers for all)
    const cc = this.opts.worker?.clusterCalls;
    let workers: { up: number; calls: number } | undefined;
    if (cc !== undefined) {
      const per = await cc();
      workers = { up: per.filter((c) => c >= 0).length, calls: per.reduce((a, c) => a + Math.max(0, c), 0) };
      if (v !== undefined) v.calls = workers.calls;
    }
    const smpp = this.smpp;
    let delivery: StatusReport["delivery"] = null;
    if (this.delivery) {
      const st = this.delivery.spool ? await this.delivery.spool.stats().catch(() => undefined) : undefined;
      delivery = { mode: this.delivery.mode, depth: st?.depth ?? null, oldest_age_s: st ? Math.round(st.oldestAgeS) : null, retry: st?.retry ?? null, dead_letters: st?.deadLetters ?? null };
    }
    return {
      instance: this.config.instance_id ?? hostname(),
      version: packageVersion(),
      node: process.versions.node,
      uptime_s: Math.round(process.uptime()),
      ready: ready.ready,
      routes,
      sip: this.voice
        ? { listeners: this.voice.listeners, trunks: v!.trunks, customers: [], targets: v!.targets, calls_in_progress: v!.calls }
        : null,
      smpp: smpp
        ? {
            listen: smpp.address() ? { address: smpp.address()!.address, port: smpp.address()!.port } : null,
            sessions: smpp.sessionCount,
            binds: smpp.bindStates().map((b) => ({ ...b, window: b.window ?? this.config.smpp.window })),
          }
        : null,
      delivery,
      workers: this.opts.worker?.count ?? 1,
      ...(workers !== undefined ? { workers_up: workers.up } : {}),
    };
  }

  readiness(): Readiness {
    const t = this.store.current;
    const delivery = this.delivery?.health();
    const reasons: string[] = [];
    if (!this.routesLoaded) reasons.push("route table not loaded");
    if (!this.listenersUp) reasons.push("listeners not up");
    if (this.stopping) reasons.push("draining");
    if (delivery && !delivery.ok) reasons.push(delivery.reason);
    const w = this.opts.worker;
    const up = w?.workersUp?.();
    if (w !== undefined && up !== undefined && up.length < w.count) reasons.push(`SIP workers not all up (${up.length} of ${w.count})`);
    const ready = reasons.length === 0;
    return {
      ready,
      ...(ready ? {} : { reasons }),
      checks: {
        routes: this.redisSource
          ? { loaded: this.routesLoaded, ...this.redisSource.status() }
          : { loaded: this.routesLoaded, source: "file", entries: t.size, version: t.version, stale: false, lastError: this.fileSource?.lastError },
        listeners: { up: this.listenersUp, sip: this.voice?.listeners ?? [], smpp: this.smpp?.address() ?? null },
        delivery: this.delivery ? { mode: this.delivery.mode, accepting: delivery?.ok ?? false, ...(delivery && !delivery.ok ? { reason: delivery.reason } : {}) } : null,
        draining: this.stopping,
        ...(w !== undefined && up !== undefined ? { workers: { count: w.count, up } } : {}),
      },
    };
  }

  /** National numbers are read with `countryCode`, else the config's default_country_code (as a trunk without its own reads them). */
  lookup(number: string, caller: string | undefined, atMs: number = this.now(), countryCode: string | undefined = this.config.default_country_code) {
    const plan = countryCode !== undefined ? { countryCode } : {};
    const r = lookupJson(this.store.current, this.decider, caller === undefined ? { number, atMs, plan } : { number, caller, atMs, plan });
    this.routeMetrics.lookups.inc({ outcome: r.ok ? String(r.json.outcome) : "invalid" });
    return r;
  }

  /**
   * SIGHUP: re-read the config file and apply what can change live (trunks, limits, SMPP
   * accounts, log level, webhook and drain settings). What cannot (listen addresses, the route
   * source, binds) is refused with a log line and keeps its running value.
   */
  reload(): { applied: string[]; refused: string[] } {
    const applied: string[] = [];
    const refused: string[] = [];
    if (!this.loaded.path) return { applied, refused: ["no config file to reload"] };
    let next: Config;
    try {
      next = this.forWorker(loadConfig(this.loaded.path).config);
    } catch (err) {
      const errors = err instanceof ConfigError ? err.errors : [errMessage(err)];
      this.logger.error({ errors }, "config reload refused: invalid config; keeping the running one");
      return { applied, refused: errors };
    }
    const cur = this.config;
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    if (next.log.level !== cur.log.level) {
      this.logger.level = next.log.level;
      applied.push("log.level");
    }
    const sip = reloadVoice(this.voice, cur, next);
    refused.push(...sip.refused);
    applied.push(...sip.applied);
    if (!same(cur.smpp.accounts, next.smpp.accounts)) {
      if (this.smpp) {
        const r = this.smpp.updateAccounts(this.smppConfig(next.smpp).accounts ?? []);
        if (this.sms) smppPlans({ ...next.smpp, binds: cur.smpp.binds }, this.sms.plans);
        if (this.smsOut) senderRights(next.smpp.accounts, this.smsOut.rights);
        applied.push(`smpp.accounts (added ${r.added.length}, changed ${r.changed.length}, removed ${r.removed.length})`);
      } else refused.push("smpp.accounts: SMPP is not running");
    }
    if (!same(cur.smpp.optout, next.smpp.optout)) applied.push("smpp.optout");
    for (const key of ["listen", "tls", "binds", "max_pdu_bytes"] as const) {
      if (!same(cur.smpp[key], next.smpp[key])) refused.push(`smpp.${key}: needs a restart`);
    }
    if (!same(cur.routes, next.routes)) refused.push("routes: the route source needs a restart");
    if (!same(cur.admin, next.admin)) refused.push("admin.listen: needs a restart");
    if (!same(cur.webhooks, next.webhooks)) refused.push("webhooks: needs a restart");
    if (!same(cur.api, next.api)) refused.push("api: needs a restart");
    // Keep the running values of what was refused; take the rest.
    this.config = {
      ...next,
      sip: this.voice ? next.sip : cur.sip,
      smpp: { ...cur.smpp, accounts: next.smpp.accounts, optout: next.smpp.optout },
      routes: cur.routes,
      admin: cur.admin,
      webhooks: cur.webhooks,
      api: cur.api,
    };
    if (refused.length > 0) this.logger.warn({ refused }, "config reload: some settings need a restart and were not changed");
    this.logger.info({ applied }, "config reloaded");
    return { applied, refused };
  }

  /**
   * What stop() drains and closes, in order (src/util/lifecycle.ts: every drain first, then every
   * close). New SMS get the temporary status at once; SIP transactions in flight finish, and the
   * edge lingers while in-dialog requests still come (VoiceEdge.drain); SMPP answers what is in
   * flight and unbinds (at most 10 s); delivery finishes what it is sending. Then the listeners,
   * stores and connections close.
   */
  private components(): Component[] {
    const { voice, sms, smsOut, smpp, delivery, receiptSender, partsRedis, partsJournal, fileSource, redisSource, admin, api, apiRedis, cdr, hep, activity, records, recordSender, maskingTimer } = this;
    const remaining = (deadline: number) => Math.max(0, deadline - this.now());
    const closing = (name: string, close: (() => unknown) | false | undefined): Component[] => (close ? [{ name, close: async () => void (await close()) }] : []);
    return [
      {
        name: "sms",
        drain: async () => {
          sms?.drain();
          smsOut?.drain();
        },
      },
      ...(voice ? [{ name: "sip", drain: (d: number) => voice.drain(d), close: () => voice.close() }] : []),
      ...(smpp ? [{ name: "smpp", drain: (d: number) => smpp.drain(Math.min(remaining(d), 10_000)), close: () => smpp.close() }] : []),
      ...closing("receipts", receiptSender && (() => receiptSender.stop())),
      ...closing("sms-outbound", smsOut && (() => smsOut.stop())),
      ...closing("parts-redis", partsRedis && (() => partsRedis.disconnect())),
      ...closing("parts-journal", partsJournal && (() => partsJournal.close())),
      ...(delivery ? [{ name: "delivery", drain: (d: number) => delivery.drain(remaining(d)), close: () => delivery.close() }] : []),
      ...closing("routes-file", fileSource && (() => fileSource.close())),
      ...closing("routes-redis", redisSource && (() => redisSource.close())),
      ...closing("admin", admin && (() => admin.close())),
      ...closing("api", api && (() => api.close())),
      ...closing("api-redis", apiRedis && (() => apiRedis.disconnect())),
      ...closing("cdr", cdr && (() => cdr.close())),
      ...closing("hep", hep && (() => hep.close())),
      ...closing("activity", activity && (() => activity.close())),
      ...closing("records", records && (() => records.close(1000))),
      ...closing("records-webhook", recordSender && (() => recordSender.close())),
      ...closing("masking-pools", maskingTimer && (() => clearInterval(maskingTimer))),
      ...closing("number-states", () => this.numberStates.stop()),
      ...closing("redis", () => {
        for (const c of this.extraRedis) c.disconnect();
      }),
    ];
  }

  /** Drain and stop (SIGTERM). Idempotent. */
  stop(graceMs: number = this.config.drain.grace_s * 1000): Promise<void> {
    this.stopped ??= this.shutdown(graceMs);
    return this.stopped;
  }

  private async shutdown(graceMs: number): Promise<void> {
    this.stopping = true;
    this.logger.info({ grace_ms: graceMs }, "didgate draining");
    await stopComponents(this.components(), this.now() + graceMs, this.logger);
    this.logger.info("didgate stopped");
    await new Promise<void>((resolve) => {
      try {
        this.logger.flush((err?: Error) => {
          void err;
          resolve();
        });
      } catch {
        resolve();
      }
    });
  }
}
