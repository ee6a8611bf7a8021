/**
 * The configuration schema (README.md "Configuration"), validated once at start. Every object is strict:
 * an unknown key is an error naming its path. Defaults make the bundled config short.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { parseRedisUrl } from "../redis/endpoint.js";
import { cidrContains, parseCidr, parseHostPort, parseListenUrl } from "../util/net.js";
import { registrarSchema } from "./registrar.js";

const cidr = z.string().refine((s) => parseCidr(s) !== undefined, {
  message: 'must be an IP address or CIDR like "203.0.113.0/24" or "2001:db8::/32"',
});
const hostPort = z.string().refine((s) => parseHostPort(s) !== undefined, {
  message: 'must be "HOST:PORT" (IPv6 as "[::1]:PORT"), port 0-65535',
});
const listenUrl = z.string().refine((s) => parseListenUrl(s) !== undefined, {
  message: 'must be "udp://HOST:PORT", "tcp://HOST:PORT" or "tls://HOST:PORT"',
});
const port = z.number().int().min(1).max(65535);
const countryCode = z.string().regex(/^[1-9]\d{0,2}$/, "must be a country calling code of 1 to 3 digits, like \"1\" or \"44\"");
const smppStatus = z.number().int().min(0).max(0xffffffff);
const redisUrl = z.string().refine((s) => {
  try {
    parseRedisUrl(s);
    return true;
  } catch {
    return false;
  }
}, { message: "must be a URL redis://HOST:PORT[/DB], rediss://…, redis-sentinel://HOST:PORT,HOST:PORT/MASTER or redis-cluster://HOST:PORT,…" });

const tlsFiles = z
  .object({
    cert: z.string().min(1),
    key: z.string().min(1),
    ca: z.string().min(1).optional(),
  })
  .strict();

const name64 = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 letters, digits, '_', '.', '-'");
const sipUri = z.string().regex(/^sips?:[^\s<>"]+$/i, 'must be a SIP URI like "sip:203.0.113.10:5060" or "sip:carrier.example.net;transport=tcp"');
/** Header names a carrier may have added to outbound calls (never the ones that make the dialog). */
const FORBIDDEN_ADD = new Set(["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "route", "record-route", "contact", "m", "max-forwards", "content-length", "l", "content-type", "c"]);
const headerName = z.string().regex(/^[A-Za-z0-9!%*_+`'~.-]{1,64}$/, "must be a SIP header name").refine((h) => !FORBIDDEN_ADD.has(h.toLowerCase()), {
  message: "cannot be a header that makes the dialog (Via, From, To, Call-ID, CSeq, Route, Record-Route, Contact, Max-Forwards, Content-*)",
});

export const trunkSchema = z
  .object({
    name: name64,
    /** Where the carrier's calls come from (inbound). A termination-only carrier may have none. */
    sources: z.array(cidr).default([]),
    did_from: z.enum(["ruri", "to"]).default("ruri"),
    country_code: countryCode.optional(),
    national_prefix: z.string().regex(/^\d{0,3}$/).optional(),
    cps: z.number().positive().max(100_000).default(100),
    /** Packets from these addresses may carry the real source in `X-Forwarded-For`-like headers. */
    front_proxy: z.boolean().default(false),
    /** Where outbound calls to this carrier go: one SIP URI, or several tried in order. */
    termination: z.union([sipUri, z.array(sipUri).min(1).max(16)]).optional(),
    /** Outbound calls per second to this carrier; over it, the next carrier is tried at once. */
    termination_cps: z.number().positive().max(100_000).optional(),
    /** Concurrent outbound calls to this carrier (setup and answered). */
    max_calls: z.number().int().positive().optional(),
    /** How the called number is sent: "+E164", or national (country code removed, number_prefix before it). */
    number_format: z.enum(["e164", "national"]).default("e164"),
    number_prefix: z.string().regex(/^[0-9#*]{0,8}$/).default(""),
    /** Headers added to every outbound call to this carrier. */
    headers: z.record(headerName, z.string().max(512).regex(/^[^\r\n]*$/, "must be one line")).default({}),
    /** Answers from this carrier after which the next carrier is tried. */
    failover_on: z.array(z.number().int().min(300).max(699)).default([408, 480, 500, 502, 503, 504]),
    /** How a forwarded call names the number it was forwarded from (RFC 5806 or RFC 7044). */
    forward_header: z.enum(["diversion", "history-info"]).default("diversion"),
  })
  .strict()
  .refine((t) => t.sources.length > 0 || t.termination !== undefined, { message: "a trunk needs sources (inbound), termination (outbound), or both" });

export const customerSchema = z
  .object({
    name: name64,
    /** Caller IDs must be numbers of this tenant (caller_id: owned). */
    tenant: z.string().min(1).max(128),
    /** Source addresses of the customer's calls; with digest too, both must match. */
    sources: z.array(cidr).default([]),
    country_code: countryCode.optional(),
    national_prefix: z.string().regex(/^\d{0,3}$/).optional(),
    /** owned: the calling number must be an active number of the tenant; any: not checked. */
    caller_id: z.enum(["owned", "any"]).default("owned"),
    digest: z.object({ username: z.string().min(1).max(128).regex(/^[^"\\\s]+$/, "must have no quotes, backslashes or spaces"), password: z.string().min(1).max(256) }).strict().optional(),
    cps: z.number().positive().max(100_000).default(10),
    /** Concurrent calls (setup and answered). */
    max_calls: z.number().int().positive().optional(),
  })
  .strict()
  .refine((c) => c.sources.length > 0 || c.digest !== undefined, { message: "a customer needs sources, digest credentials, or both" });

/** A DNS server: "IP", "IP:port" or "[IPv6]:port". */
const dnsServer = z.string().refine(
  (s) => {
    if (isIP(s) !== 0) return true;
    const hp = parseHostPort(s);
    return hp !== undefined && isIP(hp.host) !== 0 && hp.port >= 1;
  },
  { message: 'must be a DNS server address like "192.0.2.53", "192.0.2.53:5353" or "[2001:db8::53]:53"' },
);

export const sipSchema = z
  .object({
    listen: z.array(listenUrl).default(["udp://0.0.0.0:5060", "tcp://0.0.0.0:5060"]),
    /** SIP worker processes (docs/sip.md "Workers"): 1 (one process), N, or "auto" (one per core). */
    workers: z.union([z.number().int().min(1).max(64), z.literal("auto")]).default(1),
    /** Address put in Via/Record-Route when listening on a wildcard address. */
    advertise: z.string().min(1).optional(),
    unknown_source: z.enum(["drop", "reject"]).default("drop"),
    gone_status: z.number().int().min(400).max(699).default(410),
    record_route: z.boolean().default(true),
    /** Signs didgate's Record-Route (in-dialog requests): the same on every edge of a group. */
    dialog_secret: z.string().min(16, "must be at least 16 characters (32 random bytes recommended)").optional(),
    /** Older secrets still accepted on in-dialog requests (rotation). */
    dialog_secret_previous: z.array(z.string().min(16)).default([]),
    tls: tlsFiles.extend({ verify: z.boolean().default(true) }).strict().optional(),
    trunks: z.array(trunkSchema).default([]),
    /** Who may originate calls (outbound). */
    customers: z.array(customerSchema).default([]),
    /** Phones that REGISTER (docs/registrar.md). */
    registrar: registrarSchema.optional(),
    /** Digest authentication of customers (RFC 3261 22, RFC 8760). */
    auth: z
      .object({
        realm: z.string().min(1).max(128).regex(/^[^"\\]+$/).default("didgate"),
        /** Nonce HMAC key: the same on every edge so one edge accepts another's nonces. Default: random per process. */
        secret: z.string().min(16).optional(),
        nonce_ttl_s: z.number().positive().max(3600).default(300),
        /** Challenges offered, in this order (RFC 8760: SHA-256 first; clients that read only the first challenge may need MD5 first). */
        algorithms: z.array(z.enum(["SHA-256", "MD5"])).min(1).max(2).default(["SHA-256", "MD5"]),
      })
      .strict()
      .default({ realm: "didgate", nonce_ttl_s: 300, algorithms: ["SHA-256", "MD5"] }),
    /** A call counts against max_calls at most this long (a lost BYE does not hold a slot forever). */
    max_call_s: z.number().int().positive().default(14_400),
    /** Health checkers (load balancers, monitoring) whose OPTIONS get 200 though they are not trunks. */
    pingers: z.array(cidr).default([]),
    max_inflight_invites: z.number().int().positive().default(2000),
    /**
     * DNS servers for SIP targets given by name (SRV, then A/AAAA): "IP" or "IP:port" ("[IPv6]:port").
     * Unset: the system's resolver (resolv.conf for SRV, getaddrinfo with /etc/hosts for addresses).
     */
    dns_servers: z.array(dnsServer).max(8).optional(),
    /**
     * Seconds a target has to send a provisional response (100 Trying included) before the call
     * moves on to the next target; routes override it with voice.invite_timeout_s. 0: Timer B only.
     */
    invite_timeout_s: z.number().min(0).max(300).default(8),
    flood: z
      .object({
        per_source_pps: z.number().positive().default(20),
        max_sources: z.number().int().positive().default(10_000),
      })
      .strict()
      .default({ per_source_pps: 20, max_sources: 10_000 }),
    /** TCP/TLS listener limits. */
    tcp: z
      .object({
        max_connections: z.number().int().positive().default(10_000),
        /** Connections from sources that are not trunks at most (the rest is kept for trunks). */
        max_untrusted_connections: z.number().int().positive().default(2000),
        max_connections_per_ip: z.number().int().positive().default(64),
        /** Seconds a message may take from its first byte to its last (slow senders are cut off). */
        message_timeout_s: z.number().positive().max(300).default(5),
        idle_timeout_s: z.number().positive().default(120),
        /** Idle timeout of connections from sources that are not trunks. */
        untrusted_idle_timeout_s: z.number().positive().default(30),
      })
      .strict()
      .default({ max_connections: 10_000, max_untrusted_connections: 2000, max_connections_per_ip: 64, message_timeout_s: 5, idle_timeout_s: 120, untrusted_idle_timeout_s: 30 }),
    timers: z
      .object({
        t1_ms: z.number().int().positive().default(500),
        t2_ms: z.number().int().positive().default(4000),
        t4_ms: z.number().int().positive().default(5000),
        /**
         * How long a finished transaction stays to absorb retransmissions over UDP (RFC 3261 timers
         * D and J, RFC 6026 L and M), at most 64 × T1. The RFCs say 64 × T1 (32 s); 5 s is
         * Kamailio's tm default (wt_timer): a finished call's state held 32 s made the heap, and
         * the garbage collector's work, grow with the call rate × 32 s.
         */
        wait_ms: z.number().int().positive().default(5000),
      })
      .strict()
      .default({ t1_ms: 500, t2_ms: 4000, t4_ms: 5000, wait_ms: 5000 }),
    headers: z
      .object({
        trunk: z.string().optional(),
        route_key: z.string().optional(),
        strip: z.array(z.string()).default([]),
      })
      .strict()
      .default({ strip: [] }),
    health: z
      .object({
        enabled: z.boolean().default(false),
        interval_s: z.number().positive().default(10),
        failures: z.number().int().positive().default(3),
        recoveries: z.number().int().positive().default(2),
        alive_codes: z.array(z.number().int()).default([200, 404, 405, 481, 486, 501]),
      })
      .strict()
      .default({ enabled: false, interval_s: 10, failures: 3, recoveries: 2, alive_codes: [200, 404, 405, 481, 486, 501] }),
  })
  .strict();

const peerOptions = {
  country_code: countryCode.optional(),
  /** command_status answered when delivery fails temporarily (default 0x64 ESME_RX_T_APPN). */
  temp_fail_status: smppStatus.optional(),
  /** Statuses in this peer's answers that mean "retry later". */
  temporary_statuses: z.array(smppStatus).optional(),
  /** What data_coding 0 means for this peer. */
  default_alphabet: z.enum(["gsm7", "latin1", "ascii"]).optional(),
  gsm_packing: z.enum(["unpacked", "packed", "auto"]).optional(),
  receipt_id_format: z.enum(["as_is", "hex", "dec"]).optional(),
  message_id_format: z.enum(["as_is", "hex", "dec"]).optional(),
  window: z.number().int().positive().max(10_000).optional(),
  enquire_link_s: z.number().positive().optional(),
  /** A text too long for one short_message: one message_payload PDU, or parts with a UDH or SAR TLVs. */
  long_messages: z.enum(["payload", "udh", "sar"]).optional(),
  /** National language shift tables this peer accepts (3GPP TS 23.038): texts go in 7 bits through them when that saves parts. */
  national_language: z.array(z.enum(["tr", "es", "pt", "bn", "gu", "hi", "kn", "ml", "or", "pa", "ta", "te", "ur"])).optional(),
};

export const smppAccountSchema = z
  .object({
    system_id: z.string().min(1).max(15),
    password: z.string().min(1).max(8, "SMPP 3.4 passwords are at most 8 characters"),
    role: z.enum(["carrier", "app"]),
    sources: z.array(cidr).optional(),
    max_binds: z.number().int().positive().default(8),
    /** app accounts: the tenant whose numbers its submit_sm may send from (docs/sms.md "Sending"). */
    tenant: z.string().min(1).max(64).optional(),
    /** app accounts: alphanumeric senders and short codes it may send from, as written in source_addr. */
    senders: z.array(z.string().min(1).max(20)).max(1000).optional(),
    ...peerOptions,
  })
  .strict()
  .refine((a) => a.role === "app" || (a.tenant === undefined && a.senders === undefined), { message: "tenant and senders are for app accounts only" });

export const smppBindSchema = z
  .object({
    name: z.string().min(1).max(64),
    /** Where didgate connects; not used (and optional) with outbind. */
    host: z.string().min(1).optional(),
    port: port.optional(),
    system_id: z.string().min(1).max(15),
    password: z.string().min(1).max(8, "SMPP 3.4 passwords are at most 8 characters"),
    system_type: z.string().max(12).optional(),
    mode: z.enum(["receiver", "transceiver", "transmitter"]).default("transceiver"),
    tls: z.boolean().default(false),
    tls_verify: z.boolean().default(true),
    /** Extra CA file (PEM) to verify the SMSC's certificate. */
    tls_ca: z.string().min(1).optional(),
    reconnect_min_s: z.number().positive().optional(),
    reconnect_max_s: z.number().positive().optional(),
    /** Outbound messages per second through this bind (each part counts); absent: no limit. */
    tps: z.number().positive().max(100_000).optional(),
    /** The SMSC sets the link up: it connects to smpp.listen and sends outbind with this system_id and password (docs/delivery.md "Outbind"). */
    outbind: z.boolean().default(false),
    /** Addresses an outbind for this bind may come from (default any). */
    outbind_sources: z.array(cidr).optional(),
    ...peerOptions,
  })
  .strict();

export const smppSchema = z
  .object({
    listen: hostPort.nullable().default(null),
    /** Certificate and key files: the server on smpp.listen speaks TLS. */
    tls: tlsFiles.optional(),
    accounts: z.array(smppAccountSchema).default([]),
    binds: z.array(smppBindSchema).default([]),
    /** Largest command_length accepted: 66560 lets a full 65535-byte message_payload fit. */
    max_pdu_bytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(66_560),
    window: z.number().int().positive().max(10_000).default(10),
    response_timeout_s: z.number().positive().default(30),
    enquire_link_s: z.number().positive().default(30),
    /** Seconds delivery may take before the PDU is answered with the temporary status. */
    handler_timeout_s: z.number().positive().default(10),
    bind_timeout_s: z.number().positive().default(10),
    /** Seconds from a PDU's first byte to its last. */
    pdu_timeout_s: z.number().positive().default(5),
    max_connections: z.number().int().positive().default(1000),
    /** Per address, for addresses in no account's sources. */
    max_connections_per_source: z.number().int().positive().default(10),
    /** Connections only addresses in some account's sources may use. */
    reserved_connections: z.number().int().min(0).default(100),
    /** An SMSC's retry seen within this many seconds of the previous copy keeps the message's id (0: off). */
    dedup_window_s: z.number().int().min(0).max(86_400).default(300),
    /**
     * An outbound message whose submit_sm went out before a crash, its answer never seen, is held
     * this many seconds before it is sent again (flagged possible_duplicate): a carrier receipt
     * that comes meanwhile marks it sent (docs/sms.md "In doubt after a crash").
     */
    in_doubt_hold_s: z.number().min(0).max(86_400).default(120),
    /** Messages remembered for that (an LRU). */
    dedup_max_entries: z.number().int().positive().max(10_000_000).default(100_000),
    /** Answers to STOP / START / HELP where a route's sms.optout does not set one ("" sends none; docs/sms.md). */
    optout: z
      .object({
        stop_reply: z.string().max(1600).optional(),
        start_reply: z.string().max(1600).optional(),
        help_reply: z.string().max(1600).optional(),
      })
      .strict()
      .default({}),
    reassembly: z
      .object({
        timeout_s: z.number().positive().default(60),
        max_buffers: z.number().int().positive().default(10_000),
        /** Buffers one app account may have open on one edge; default a quarter of max_buffers (at least 10). Carriers are not counted. */
        max_buffers_per_peer: z.number().int().positive().optional(),
        max_bytes: z.number().int().positive().default(32 * 1024 * 1024),
      })
      .strict()
      .default({ timeout_s: 60, max_buffers: 10_000, max_bytes: 32 * 1024 * 1024 }),
    lockout: z
      .object({
        max_failures: z.number().int().positive().default(5),
        window_s: z.number().positive().default(60),
        duration_s: z.number().positive().default(300),
      })
      .strict()
      .default({ max_failures: 5, window_s: 60, duration_s: 300 }),
  })
  .strict();

export const routesSchema = z
  .object({
    file: z.string().min(1).default("config/routes.yaml"),
    watch: z.boolean().default(true),
    redis: z
      .object({
        url: redisUrl,
        prefix: z.string().default("didgate:"),
        stream_maxlen: z.number().int().positive().default(1_000_000),
        max_shrink_ratio: z.number().min(0).max(1).default(0.5),
        force_reload: z.boolean().default(false),
        /** Snapshot file; default routes.snapshot.json in state_dir. "" turns snapshots off. */
        snapshot: z.string().optional(),
        snapshot_interval_s: z.number().positive().default(30),
      })
      .strict()
      .optional(),
  })
  .strict();

export const webhooksSchema = z
  .object({
    secret: z.string().optional(),
    timeout_ms: z.number().int().positive().default(5000),
    max_age_s: z.number().positive().default(86_400),
    max_in_flight: z.number().int().positive().default(256),
    /**
     * Ranges webhooks may reach although loopback, private (RFC 1918), link-local, unique-local or
     * another special-purpose range (all refused by default), e.g. ["127.0.0.1/32"] for a receiver
     * on the same host.
     */
    allow_private: z.array(cidr).default([]),
  })
  .strict();

/** A number block a tenant token may create keys in: an exact key "+1…" or a prefix "+1512555*". */
const numberBlock = z.string().regex(/^\+\d{1,15}\*?$/, 'must be a route key "+<digits>" or prefix "+<digits>*"');
const tenantName = z.string().min(1).max(128);

/** The HTTP API listener (docs/api.md). Off unless listen is set. */
export const apiSchema = z
  .object({
    listen: hostPort.nullable().default(null),
    /** Certificate and key files: the API speaks HTTPS. */
    tls: tlsFiles.optional(),
    tokens: z
      .array(
        z
          .object({
            token: z.string().min(16, "must be at least 16 characters (a random secret: openssl rand -hex 24)").max(512),
            /** No tenant: an admin token. */
            tenant: tenantName.optional(),
            blocks: z.array(numberBlock).optional(),
          })
          .strict(),
      )
      .default([]),
    /** Number blocks per tenant (added to the blocks of that tenant's tokens). */
    blocks: z.record(tenantName, z.array(numberBlock)).default({}),
    rate_limit: z
      .object({
        per_s: z.number().positive().default(50),
        burst: z.number().int().positive().default(100),
      })
      .strict()
      .default({ per_s: 50, burst: 100 }),
    max_connections: z.number().int().positive().default(256),
    /** Time to receive and answer an ordinary request. */
    request_timeout_s: z.number().positive().default(10),
    /** Time and size limits of one POST /v1/routes/import. */
    import_timeout_s: z.number().positive().default(300),
    import_max_bytes: z.number().int().positive().default(256 * 1024 * 1024),
    /** Approximate length kept of the <prefix>audit stream. */
    audit_maxlen: z.number().int().positive().default(100_000),
  })
  .strict();

const e164 = z.string().regex(/^\+[1-9]\d{0,14}$/, 'must be an E.164 number like "+15125550100"');
const httpsUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === "https:" || u.protocol === "http:") && u.username === "" && u.password === "";
  } catch {
    return false;
  }
}, { message: "must be an https:// URL without user information" });

/** STIR/SHAKEN: verification of inbound Identity and signing of outbound calls. */
export const stirSchema = z
  .object({
    verify: z
      .object({
        /** PEM bundle of the STI-CA roots. */
        trust_anchors: z.string().min(1),
        max_age_s: z.number().positive().max(3600).default(60),
        /** Plain http:// x5u URLs (tests, labs); STI certificates are fetched over HTTPS otherwise. */
        allow_http_x5u: z.boolean().default(false),
        /** How long a call may wait for a certificate fetch; over it the call goes on as No-TN-Validation. */
        budget_ms: z.number().int().positive().max(10_000).default(1000),
        fetch_timeout_ms: z.number().int().positive().max(30_000).default(2000),
        cache_entries: z.number().int().positive().max(1_000_000).default(1000),
        /** Address ranges an x5u may resolve to although loopback/private (refused by default). */
        allow_private: z.array(cidr).default([]),
      })
      .strict()
      .optional(),
    sign: z
      .object({
        /** Where verifiers fetch didgate's certificate (the PASSporT x5u). */
        x5u: httpsUrl,
        /** The P-256 private key (PEM) of that certificate. */
        key: z.string().min(1),
      })
      .strict()
      .optional(),
  })
  .strict();

/** SIP capture (HEP3 to Homer or sngrep). */
export const captureSchema = z
  .object({
    hep: z.string().regex(/^udp:\/\/(\[[0-9A-Fa-f:.]+\]|[^:/\s]+):\d{1,5}$/, 'must be "udp://HOST:PORT"'),
    id: z.number().int().min(0).max(0xffffffff).default(2001),
    auth_key: z.string().min(1).optional(),
    /** Fraction of calls captured, by Call-ID (both legs of a call together). */
    sample: z.number().min(0).max(1).default(1),
    max_in_flight: z.number().int().positive().max(100_000).default(1000),
  })
  .strict();

/** Call and message records. */
export const recordsSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** XADD MAXLEN ~ of <prefix>cdr. */
    stream_maxlen: z.number().int().positive().default(10_000_000),
    /** A JSON-lines copy, rotated by size. */
    jsonl: z
      .object({ path: z.string().min(1), max_bytes: z.number().int().positive().default(100 * 1024 * 1024), keep: z.number().int().min(0).max(100).default(5) })
      .strict()
      .optional(),
    /**
     * A signed `call.completed` webhook per call record (and `message.completed` per message record
     * when `types` lists message), signed with `secret` or else webhooks.secret, through the same
     * address policy as other webhooks (webhooks.allow_private).
     */
    webhook: z
      .object({
        url: z.string().url().regex(/^https?:\/\//, "must be an http(s) URL"),
        secret: z.string().min(1).optional(),
        types: z.array(z.enum(["call", "message"])).min(1).default(["call"]),
        max_age_s: z.number().positive().default(86_400),
      })
      .strict()
      .optional(),
  })
  .strict();

export const configSchema = z
  .object({
    /**
     * Country calling code for national numbers where a trunk or SMPP peer does not set its own
     * (`country_code`), and for `didgate lookup` without --country-code.
     */
    default_country_code: countryCode.optional(),
    sip: sipSchema.default(() => sipSchema.parse({})),
    smpp: smppSchema.default(() => smppSchema.parse({})),
    routes: routesSchema.default(() => routesSchema.parse({})),
    webhooks: webhooksSchema.default(() => webhooksSchema.parse({})),
    api: apiSchema.default(() => apiSchema.parse({})),
    admin: z
      .object({ listen: hostPort.default("127.0.0.1:9464") })
      .strict()
      .default({ listen: "127.0.0.1:9464" }),
    log: z
      .object({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info") })
      .strict()
      .default({ level: "info" }),
    /** Where didgate writes state (the route snapshot); relative paths resolve like the others. */
    state_dir: z.string().min(1).default("var"),
    /** Consumer name of this edge in the shared spool; stable across restarts (default: host name). */
    instance_id: z.string().min(1).max(128).optional(),
    drain: z
      .object({ grace_s: z.number().min(0).default(30) })
      .strict()
      .default({ grace_s: 30 }),
    stir: stirSchema.optional(),
    capture: captureSchema.optional(),
    records: recordsSchema.default(() => recordsSchema.parse({})),
    /** Number lifecycle: days a number stays in quarantine after its released_at (per tenant too). */
    lifecycle: z
      .object({
        quarantine_days: z.number().int().min(0).max(3650).default(90),
        tenants: z.record(z.string().min(1).max(128), z.number().int().min(0).max(3650)).default({}),
      })
      .strict()
      .default({ quarantine_days: 90, tenants: {} }),
    /** Number masking: pools of proxy numbers per tenant. */
    masking: z
      .object({
        pools: z.array(z.object({ name: name64, tenant: z.string().min(1).max(128), numbers: z.array(e164).min(1).max(100_000) }).strict()).default([]),
        max_ttl_s: z.number().int().positive().default(7 * 86_400),
        /** Most pools in all, config and API (bounds the per-pool metric series). */
        max_pools: z.number().int().positive().max(100_000).default(1000),
      })
      .strict()
      .default({ pools: [], max_ttl_s: 7 * 86_400, max_pools: 1000 }),
  })
  .strict()
  .superRefine((c, ctx) => {
    const names = new Set<string>();
    c.sip.trunks.forEach((t, i) => {
      if (names.has(t.name)) ctx.addIssue({ code: "custom", path: ["sip", "trunks", i, "name"], message: `duplicate trunk name ${JSON.stringify(t.name)}` });
      names.add(t.name);
    });
    const cnames = new Set<string>();
    const users = new Set<string>();
    const trunkCidrs = c.sip.trunks.flatMap((t) => t.sources.map((s) => ({ trunk: t.name, cidr: parseCidr(s)! })));
    c.sip.customers.forEach((cu, i) => {
      if (cnames.has(cu.name)) ctx.addIssue({ code: "custom", path: ["sip", "customers", i, "name"], message: `duplicate customer name ${JSON.stringify(cu.name)}` });
      cnames.add(cu.name);
      if (cu.digest) {
        if (users.has(cu.digest.username)) ctx.addIssue({ code: "custom", path: ["sip", "customers", i, "digest", "username"], message: `duplicate digest username ${JSON.stringify(cu.digest.username)}` });
        users.add(cu.digest.username);
      }
      cu.sources.forEach((s, j) => {
        const a = parseCidr(s)!;
        // two CIDRs overlap when one contains the other's base address
        const hit = trunkCidrs.find((t) => cidrContains(t.cidr, { family: a.family, value: a.base }) || cidrContains(a, { family: t.cidr.family, value: t.cidr.base }));
        if (hit) ctx.addIssue({ code: "custom", path: ["sip", "customers", i, "sources", j], message: `${s} overlaps the sources of trunk ${JSON.stringify(hit.trunk)} (${hit.cidr.text}): a source is either a carrier or a customer` });
      });
    });
    if (c.sip.listen.some((l) => l.startsWith("tls://")) && !c.sip.tls) {
      ctx.addIssue({ code: "custom", path: ["sip", "tls"], message: "is required (cert and key files) when sip.listen has a tls:// address" });
    }
    if (c.sip.workers !== 1 && c.routes.redis === undefined) {
      const perProcess = [c.sip.registrar !== undefined ? "sip.registrar" : "", c.masking.pools.length > 0 ? "masking.pools" : "", c.api.listen !== null ? "api.listen" : ""].filter((x) => x !== "");
      if (perProcess.length > 0)
        ctx.addIssue({ code: "custom", path: ["sip", "workers"], message: `more than one worker needs routes.redis when ${perProcess.join(", ")} ${perProcess.length > 1 ? "are" : "is"} on: without Redis their state lives in one process and the other workers would not see it (set sip.workers: 1, or configure routes.redis)` });
    }
    const ids = new Set<string>();
    c.smpp.accounts.forEach((a, i) => {
      if (ids.has(a.system_id)) ctx.addIssue({ code: "custom", path: ["smpp", "accounts", i, "system_id"], message: `duplicate system_id ${JSON.stringify(a.system_id)}` });
      ids.add(a.system_id);
    });
    c.smpp.binds.forEach((b, i) => {
      if (!b.outbind && (b.host === undefined || b.port === undefined)) ctx.addIssue({ code: "custom", path: ["smpp", "binds", i, "host"], message: "host and port are required (unless outbind: true)" });
      if (b.outbind && c.smpp.listen === null) ctx.addIssue({ code: "custom", path: ["smpp", "binds", i, "outbind"], message: "needs smpp.listen: the SMSC connects there" });
      if (!b.outbind && b.outbind_sources !== undefined) ctx.addIssue({ code: "custom", path: ["smpp", "binds", i, "outbind_sources"], message: "only with outbind: true" });
      if (b.outbind && b.tls) ctx.addIssue({ code: "custom", path: ["smpp", "binds", i, "tls"], message: "does not apply to outbind (the SMSC connects to smpp.listen; set smpp.tls there)" });
    });
    const tokens = new Set<string>();
    c.api.tokens.forEach((t, i) => {
      if (tokens.has(t.token)) ctx.addIssue({ code: "custom", path: ["api", "tokens", i, "token"], input: "[redacted]", message: "duplicate token" });
      tokens.add(t.token);
      if (t.blocks !== undefined && t.tenant === undefined) ctx.addIssue({ code: "custom", path: ["api", "tokens", i, "blocks"], input: t.blocks, message: "only a tenant token has number blocks (an admin token may write any key)" });
    });
  });

export type Config = z.infer<typeof configSchema>;
export type ApiConfig = z.infer<typeof apiSchema>;
export type StirConfig = z.infer<typeof stirSchema>;
export type CaptureConfig = z.infer<typeof captureSchema>;
export type TrunkConfig = z.infer<typeof trunkSchema>;
export type CustomerConfig = z.infer<typeof customerSchema>;
export type SmppAccountConfig = z.infer<typeof smppAccountSchema>;
export type SmppBindConfig = z.infer<typeof smppBindSchema>;
