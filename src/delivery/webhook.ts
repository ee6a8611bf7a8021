/**
 * Webhook delivery (docs/delivery.md): a signed POST per the Standard Webhooks scheme, through
 * Node's built-in fetch (undici inside: keep-alive connection pooling per origin by default) or
 * node:http with a keep-alive Agent, with a timeout, redirects not followed (neither transport
 * follows them), and the answer classified into an AttemptResult. Only to allowed addresses
 * (ssrf.ts): internal ones are refused unless webhooks.allow_private lists them; URLs with
 * credentials (user:password@) are refused.
 *
 * Signing: `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
 * The key is the base64-decoded part of a `whsec_…` secret; a secret without that prefix is used as
 * its UTF-8 bytes (documented in docs/delivery.md). Secrets are never logged.
 */
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import { AddressPolicy } from "./ssrf.js";
import type { AttemptResult } from "./types.js";

// ---------------------------------------------------------------- signing

const WHSEC = "whsec_";

/** The HMAC key of a secret: `whsec_<base64>` → the decoded bytes, anything else → its UTF-8 bytes. */
export function secretKey(secret: string): Buffer {
  if (secret.startsWith(WHSEC)) return Buffer.from(secret.slice(WHSEC.length), "base64");
  return Buffer.from(secret, "utf8");
}

/** `v1,<base64 signature>` of one message. */
export function signWebhook(key: Buffer, id: string, timestampS: number, body: string | Buffer): string {
  const h = createHmac("sha256", key);
  h.update(id);
  h.update(".");
  h.update(String(timestampS));
  h.update(".");
  h.update(body);
  return "v1," + h.digest("base64");
}

export interface VerifyOptions {
  /** Largest allowed distance between the webhook-timestamp and now (seconds). Default 300. */
  toleranceS?: number;
  /** Now, in seconds (for tests). */
  nowS?: number;
}

type HeaderSource = { get(name: string): string | null } | Record<string, string | string[] | undefined>;

function header(h: HeaderSource, name: string): string | undefined {
  if (typeof (h as { get?: unknown }).get === "function") {
    const v = (h as { get(name: string): string | null }).get(name);
    return v ?? undefined;
  }
  const v = (h as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Verify a received webhook (what a receiver does): the timestamp is within the tolerance and one
 * of the space-separated `v1,` signatures matches. Returns false for anything missing or malformed.
 * `headers`: a fetch Headers object or node:http's IncomingHttpHeaders (lower-case names).
 */
export function verifyWebhook(secret: string | Buffer, headers: HeaderSource, body: string | Buffer, opts: VerifyOptions = {}): boolean {
  const id = header(headers, "webhook-id");
  const ts = header(headers, "webhook-timestamp");
  const sigs = header(headers, "webhook-signature");
  if (!id || !ts || !sigs) return false;
  const tsNum = Number(ts);
  if (!Number.isInteger(tsNum)) return false;
  const nowS = opts.nowS ?? Math.floor(Date.now() / 1000);
  const tol = opts.toleranceS ?? 300;
  if (Math.abs(nowS - tsNum) > tol) return false;
  const key = typeof secret === "string" ? secretKey(secret) : secret;
  const expected = Buffer.from(signWebhook(key, id, tsNum, body).slice(3), "base64");
  for (const s of sigs.split(" ")) {
    if (!s.startsWith("v1,")) continue;
    const got = Buffer.from(s.slice(3), "base64");
    if (got.length === expected.length && timingSafeEqual(got, expected)) return true;
  }
  return false;
}

// ---------------------------------------------------------------- answers

/** Retry-After (delta-seconds or HTTP-date) → ms from `nowMs`; undefined when absent or invalid. */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (v.length === 0) return undefined;
  let digits = true;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) {
      digits = false;
      break;
    }
  }
  if (digits) return Number(v) * 1000;
  // An HTTP-date starts with a day name ("Sun, 06 Nov 1994 08:49:37 GMT"); Date.parse alone takes "-5".
  const c0 = v.charCodeAt(0) | 0x20;
  if (c0 < 97 || c0 > 122) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - nowMs);
}

/** Classify an HTTP status: 2xx delivered, 410 dead, 429 retry (with Retry-After), others retry. */
export function classifyStatus(status: number, retryAfter: string | null | undefined, nowMs: number): AttemptResult {
  if (status >= 200 && status < 300) return DELIVERED;
  if (status === 410) return { kind: "dead", reason: "http 410" };
  if (status === 429) {
    const ms = parseRetryAfter(retryAfter, nowMs);
    return ms === undefined ? { kind: "retry", reason: "http 429" } : { kind: "retry", reason: "http 429", retryAfterMs: ms };
  }
  return { kind: "retry", reason: "http " + status };
}

const DELIVERED: AttemptResult = Object.freeze({ kind: "delivered" }) as AttemptResult;

// ---------------------------------------------------------------- sender

export interface WebhookSenderOptions {
  /** Per-request timeout, connect to end of response (ms). */
  timeoutMs: number;
  /** Global secret (`whsec_…`), used when the route has none. Without any secret, requests go unsigned. */
  secret?: string;
  userAgent?: string;
  /** Wall clock (ms) for webhook-timestamp and Retry-After dates. */
  now?: () => number;
  /** Response bytes read (and discarded) so the connection can be reused; beyond it the body is dropped. */
  maxResponseBytes?: number;
  /**
   * "http" (default): node:http/https with a keep-alive Agent owned by this sender. "fetch": Node's
   * global fetch (undici, its process-wide keep-alive pool). bench/delivery.ts measures http at about
   * 4x fetch's messages/s on Node 20.
   */
  transport?: "fetch" | "http";
  /** Most sockets per origin for the "http" transport (default 256). */
  maxSockets?: number;
  /** Ranges allowed although loopback, private, link-local or special-purpose (webhooks.allow_private). */
  allowPrivate?: readonly string[];
}

export interface WebhookAttempt {
  result: AttemptResult;
  /** The response body of a `200` with a JSON content type, when at most REPLY_MAX_BYTES long. */
  body?: string;
  /** HTTP status, 0 when no response came (timeout, connection error, bad URL). */
  status: number;
  /** Wall time of the attempt (s). */
  durationS: number;
}

/** The outcome class of an attempt, for metrics: 2xx, 3xx, 4xx, 5xx, timeout, error. */
export function statusClass(a: WebhookAttempt): string {
  if (a.status === 0) return a.result.kind === "retry" && a.result.reason === "timeout" ? "timeout" : "error";
  if (a.status < 300) return "2xx";
  if (a.status < 400) return "3xx";
  if (a.status < 500) return "4xx";
  return "5xx";
}

/** Origin and path of a URL, for logs (no query string, no credentials). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return u.origin + u.pathname;
  } catch {
    return "(invalid url)";
  }
}

const INVALID_URL: AttemptResult = Object.freeze({ kind: "dead", reason: "invalid webhook url" }) as AttemptResult;
const DENIED_ADDRESS: AttemptResult = Object.freeze({ kind: "dead", reason: "webhook address not allowed" }) as AttemptResult;
const DENIED_CODE = "EDIDGATE_ADDRESS_DENIED";

interface HttpAnswer {
  status: number;
  retryAfter: string | undefined;
  error: string | undefined;
  body?: string;
}

/** Most bytes of a webhook's JSON answer kept (to read a synchronous reply); a longer one is ignored. */
export const REPLY_MAX_BYTES = 4096;
/** Longest synchronous reply sent (characters). */
export const REPLY_MAX_CHARS = 1600;

/** A 200 answer whose body may carry a reply: JSON by its content type. */
function keepsBody(status: number, contentType: string | null | undefined): boolean {
  return status === 200 && typeof contentType === "string" && /^application\/(?:[\w.+-]*\+)?json\b/i.test(contentType.trim());
}

/**
 * The synchronous reply in a webhook's answer body (`{"reply": "text"}`): its text, or why it is
 * not one (not JSON, no reply, too long). An empty reply or none is `{}`.
 */
export function parseReply(body: string): { reply?: string; error?: string } {
  let j: unknown;
  try {
    j = JSON.parse(body);
  } catch {
    return { error: "answer is not JSON" };
  }
  if (typeof j !== "object" || j === null || Array.isArray(j)) return {};
  const r = (j as Record<string, unknown>).reply;
  if (r === undefined || r === null || r === "") return {};
  if (typeof r !== "string") return { error: "reply is not a string" };
  if (r.length > REPLY_MAX_CHARS) return { error: `reply over ${REPLY_MAX_CHARS} characters` };
  return { reply: r };
}

export class WebhookSender {
  private readonly timeoutMs: number;
  private readonly defaultKey: Buffer | undefined;
  private readonly keys = new Map<string, Buffer>();
  /** url → parsed URL, or null when not usable. */
  private readonly urls = new Map<string, URL | null>();
  private readonly userAgent: string;
  private readonly now: () => number;
  private readonly maxResponseBytes: number;
  private readonly transport: "fetch" | "http";
  private readonly httpAgent: HttpAgent | undefined;
  private readonly httpsAgent: HttpsAgent | undefined;
  readonly policy: AddressPolicy;

  constructor(opts: WebhookSenderOptions) {
    this.policy = new AddressPolicy(opts.allowPrivate ?? []);
    this.timeoutMs = opts.timeoutMs;
    this.defaultKey = opts.secret ? secretKey(opts.secret) : undefined;
    this.userAgent = opts.userAgent ?? "didgate";
    this.now = opts.now ?? Date.now;
    this.maxResponseBytes = opts.maxResponseBytes ?? 65_536;
    this.transport = opts.transport ?? "http";
    if (this.transport === "http") {
      const a = { keepAlive: true, maxSockets: opts.maxSockets ?? 256, maxFreeSockets: opts.maxSockets ?? 256, scheduling: "lifo" as const };
      this.httpAgent = new HttpAgent(a);
      this.httpsAgent = new HttpsAgent(a);
    }
  }

  /** True when requests without a per-route secret are signed. */
  get signed(): boolean {
    return this.defaultKey !== undefined;
  }

  /** Close pooled connections (http transport). */
  close(): void {
    this.httpAgent?.destroy();
    this.httpsAgent?.destroy();
  }

  private keyFor(secret: string | undefined): Buffer | undefined {
    if (!secret) return this.defaultKey;
    let k = this.keys.get(secret);
    if (k === undefined) {
      if (this.keys.size >= 10_000) this.keys.clear();
      k = secretKey(secret);
      this.keys.set(secret, k);
    }
    return k;
  }

  private parsedUrl(url: string): URL | null {
    let u = this.urls.get(url);
    if (u === undefined) {
      try {
        const p = new URL(url);
        u = (p.protocol === "http:" || p.protocol === "https:") && p.username === "" && p.password === "" ? p : null;
      } catch {
        u = null;
      }
      if (this.urls.size >= 10_000) this.urls.clear();
      this.urls.set(url, u);
    }
    return u;
  }

  /**
   * POST `bodyText` (JSON) to `url`, signed with `secret` (or the global secret), as message `id`.
   * Never throws: every failure is an AttemptResult. `timeoutMs` overrides the default timeout.
   */
  async send(url: string, id: string, bodyText: string, secret?: string, timeoutMs?: number): Promise<WebhookAttempt> {
    const started = performance.now();
    const u = this.parsedUrl(url);
    if (u === null) return { result: INVALID_URL, status: 0, durationS: 0 };
    // An IP literal is connected to without a lookup: check it here.
    const literal = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    if (isIP(literal) !== 0 && !this.policy.allows(literal)) return { result: DENIED_ADDRESS, status: 0, durationS: 0 };
    const ts = Math.floor(this.now() / 1000);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "user-agent": this.userAgent,
      "webhook-id": id,
      "webhook-timestamp": String(ts),
    };
    const key = this.keyFor(secret);
    if (key !== undefined) headers["webhook-signature"] = signWebhook(key, id, ts, bodyText);
    const limit = timeoutMs ?? this.timeoutMs;
    let status = 0;
    let result: AttemptResult;
    let body: string | undefined;
    if (this.transport === "http") {
      const a = await this.postHttp(u, headers, bodyText, limit);
      status = a.status;
      result = a.error === DENIED_CODE ? DENIED_ADDRESS : a.error !== undefined ? { kind: "retry", reason: a.error } : classifyStatus(status, a.retryAfter, this.now());
      if (a.body !== undefined) body = a.body;
    } else {
      const signal = AbortSignal.timeout(limit);
      try {
        // fetch offers no lookup hook without undici's own Agent: check the name's addresses
        // first (a name whose answer changes in between is not caught; the http transport is
        // the default and checks the address it connects to).
        if (isIP(literal) === 0) {
          const addrs = await dnsLookup(literal, { all: true });
          if (!addrs.some((x) => this.policy.allows(x.address))) return { result: DENIED_ADDRESS, status: 0, durationS: (performance.now() - started) / 1000 };
        }
        const res = await fetch(url, { method: "POST", headers, body: bodyText, redirect: "manual", signal });
        status = res.status;
        result = classifyStatus(status, res.headers.get("retry-after"), this.now());
        // A failure while reading the rest of the body does not change what the status said.
        body = await this.discard(res, keepsBody(status, res.headers.get("content-type"))).catch(() => undefined);
      } catch (err) {
        result = { kind: "retry", reason: fetchErrorReason(err, signal) };
      }
    }
    const out: WebhookAttempt = { result, status, durationS: (performance.now() - started) / 1000 };
    if (body !== undefined) out.body = body;
    return out;
  }

  /**
   * Read and drop the response body (bounded) so undici can put the connection back in the pool;
   * with `keep`, its text when it is at most REPLY_MAX_BYTES.
   */
  private async discard(res: Response, keep: boolean): Promise<string | undefined> {
    const b = res.body;
    if (b === null) return undefined;
    const reader = b.getReader();
    let n = 0;
    const kept: Uint8Array[] = [];
    for (;;) {
      const r = await reader.read();
      if (r.done) return keep && n <= REPLY_MAX_BYTES ? Buffer.concat(kept).toString("utf8") : undefined;
      n += r.value.byteLength;
      if (keep && n <= REPLY_MAX_BYTES) kept.push(r.value);
      if (n > this.maxResponseBytes) {
        await reader.cancel().catch(() => undefined);
        return undefined;
      }
    }
  }

  /** node:http transport: resolves with the status (and Retry-After) once the response has ended, or an error reason. */
  private postHttp(u: URL, headers: Record<string, string>, body: string, timeoutMs: number): Promise<HttpAnswer> {
    const buf = Buffer.from(body, "utf8");
    headers["content-length"] = String(buf.length);
    const https = u.protocol === "https:";
    const maxBytes = this.maxResponseBytes;
    return new Promise<HttpAnswer>((resolve) => {
      let done = false;
      const finish = (a: HttpAnswer): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(a);
      };
      const req = (https ? httpsRequest : httpRequest)(
        {
          protocol: u.protocol,
          hostname: u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname,
          port: u.port || (https ? 443 : 80),
          path: u.pathname + u.search,
          method: "POST",
          headers,
          agent: https ? this.httpsAgent : this.httpAgent,
          // The socket connects only to addresses the policy allows (checked after resolution).
          lookup: this.policy.lookup as never,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          const ra = res.headers["retry-after"];
          let n = 0;
          // the answer to a message may carry a synchronous reply: keep a short JSON body
          const keep = keepsBody(status, res.headers["content-type"]);
          const kept: Buffer[] = [];
          res.on("data", (c: Buffer) => {
            n += c.length;
            if (keep && n <= REPLY_MAX_BYTES) kept.push(c);
            if (n > maxBytes) {
              // Too much to read: the status decides; drop the connection.
              finish({ status, retryAfter: ra, error: undefined });
              res.destroy();
            }
          });
          res.on("end", () => finish(keep && n <= REPLY_MAX_BYTES ? { status, retryAfter: ra, error: undefined, body: Buffer.concat(kept).toString("utf8") } : { status, retryAfter: ra, error: undefined }));
          res.on("error", () => finish({ status, retryAfter: ra, error: undefined }));
          res.on("aborted", () => finish({ status, retryAfter: ra, error: undefined }));
        },
      );
      const timer = setTimeout(() => {
        finish({ status: 0, retryAfter: undefined, error: "timeout" });
        req.destroy();
      }, timeoutMs);
      req.on("error", (err: NodeJS.ErrnoException) =>
        finish({ status: 0, retryAfter: undefined, error: err.code === DENIED_CODE ? DENIED_CODE : "connect " + (err.code ?? err.message) }),
      );
      req.end(buf);
    });
  }
}

function fetchErrorReason(err: unknown, signal: AbortSignal): string {
  if (signal.aborted) return "timeout";
  const e = err as { name?: string; cause?: { code?: string; name?: string; message?: string }; message?: string };
  if (e?.name === "TimeoutError" || e?.name === "AbortError") return "timeout";
  const c = e?.cause;
  if (c?.code) return "connect " + c.code;
  if (c?.name === "ConnectTimeoutError") return "timeout";
  return "error " + (c?.message ?? e?.message ?? String(err));
}
