/**
 * STI certificates for PASSporT verification: fetched from the x5u URL, checked against the
 * configured trust anchors (STI-CA roots), cached.
 *
 * Fetch: HTTPS only (plain HTTP only when allowed, for tests), certificate-verified TLS, a time
 * budget, a size cap, no redirects, and an address guard applied to the address actually
 * connected to (the resolver's answer), so a name that resolves to an internal address is refused.
 * Cache: a bounded LRU keyed by URL, kept for the response's Cache-Control max-age (clamped), and
 * failures cached briefly so a bad x5u does not cost a fetch per call. Concurrent misses for one
 * URL share one fetch.
 *
 * Chain: the PEM holds the end-entity certificate first and any intermediates after it. Each one
 * must be signed by the next, the last by a trust anchor, and every one valid at the time of use
 * (checked per call from the cached validity window, not only at fetch time).
 */
import { X509Certificate, type KeyObject } from "node:crypto";
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { LRUCache } from "lru-cache";
import { errMessage } from "../util/errors.js";

export type CertFailure = "fetch" | "untrusted" | "expired" | "parse" | "refused";

export interface CertEntry {
  ok: true;
  key: KeyObject;
  /** Validity window of the whole chain (latest notBefore, earliest notAfter), epoch ms. */
  notBefore: number;
  notAfter: number;
  subject: string;
}

export type CertResult = CertEntry | { ok: false; reason: CertFailure; detail: string };

export interface CertCacheOptions {
  /** Trusted roots (PEM bundle parsed). */
  anchors: readonly X509Certificate[];
  allowHttp?: boolean;
  timeoutMs?: number;
  maxBytes?: number;
  maxEntries?: number;
  /** Used when the response has no max-age. */
  defaultTtlMs?: number;
  minTtlMs?: number;
  maxTtlMs?: number;
  /** How long a failure is remembered. */
  failureTtlMs?: number;
  /** May we connect to this IP address? Default: any. */
  allowAddress?: (ip: string) => boolean;
  /** Extra CA certificates for the HTTPS fetch (the server's TLS certificate, not the STI chain). */
  tlsCa?: string | Buffer;
  now?: () => number;
}

export interface CertStats {
  hits: number;
  misses: number;
  fetches: number;
  fetchErrors: number;
}

/** Splits a PEM bundle into certificates; throws on a block that does not parse. */
export function parsePemBundle(pem: string | Buffer): X509Certificate[] {
  const text = typeof pem === "string" ? pem : pem.toString("latin1");
  const out: X509Certificate[] = [];
  const re = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push(new X509Certificate(m[0]));
  return out;
}

/** Checks that chain[0] leads to one of the anchors; returns the failure, or null. */
export function checkChain(chain: readonly X509Certificate[], anchors: readonly X509Certificate[]): string | null {
  if (chain.length === 0) return "no certificate";
  for (let i = 0; i + 1 < chain.length; i++) {
    const c = chain[i]!;
    const up = chain[i + 1]!;
    if (!c.checkIssued(up) || !c.verify(up.publicKey)) return `certificate ${i} is not signed by certificate ${i + 1}`;
  }
  const last = chain[chain.length - 1]!;
  for (const a of anchors) {
    if (last.fingerprint256 === a.fingerprint256) return null;
    if (last.checkIssued(a) && last.verify(a.publicKey)) return null;
  }
  return "chain does not lead to a trust anchor";
}

function maxAgeMs(cc: string | undefined): number | null {
  if (cc === undefined) return null;
  const lc = cc.toLowerCase();
  if (lc.includes("no-store") || lc.includes("no-cache")) return 0;
  const m = /(?:^|[,\s])max-age\s*=\s*"?(\d{1,10})"?/.exec(lc);
  return m ? Number(m[1]) * 1000 : null;
}

export class CertCache {
  private readonly cache: LRUCache<string, { r: CertResult; until: number }>;
  private readonly inflight = new Map<string, Promise<CertResult>>();
  private readonly o: Required<Omit<CertCacheOptions, "tlsCa" | "allowAddress">> & Pick<CertCacheOptions, "tlsCa" | "allowAddress">;
  readonly stats: CertStats = { hits: 0, misses: 0, fetches: 0, fetchErrors: 0 };

  constructor(opts: CertCacheOptions) {
    this.o = {
      anchors: opts.anchors,
      allowHttp: opts.allowHttp ?? false,
      timeoutMs: opts.timeoutMs ?? 2000,
      maxBytes: opts.maxBytes ?? 64 * 1024,
      maxEntries: opts.maxEntries ?? 1000,
      defaultTtlMs: opts.defaultTtlMs ?? 3_600_000,
      minTtlMs: opts.minTtlMs ?? 60_000,
      maxTtlMs: opts.maxTtlMs ?? 86_400_000,
      failureTtlMs: opts.failureTtlMs ?? 30_000,
      now: opts.now ?? Date.now,
      ...(opts.tlsCa !== undefined ? { tlsCa: opts.tlsCa } : {}),
      ...(opts.allowAddress !== undefined ? { allowAddress: opts.allowAddress } : {}),
    };
    this.cache = new LRUCache({ max: this.o.maxEntries });
  }

  /** The cached result for a URL, if fresh (no fetch). */
  peek(url: string): CertResult | undefined {
    const e = this.cache.get(url);
    if (e === undefined) return undefined;
    if (e.until <= this.o.now()) {
      this.cache.delete(url);
      return undefined;
    }
    return e.r;
  }

  /** The certificate for a URL: from the cache, or fetched (one fetch per URL at a time). */
  get(url: string): Promise<CertResult> {
    const c = this.peek(url);
    if (c !== undefined) {
      this.stats.hits++;
      return Promise.resolve(c);
    }
    this.stats.misses++;
    let p = this.inflight.get(url);
    if (p === undefined) {
      p = this.load(url).finally(() => this.inflight.delete(url));
      this.inflight.set(url, p);
    }
    return p;
  }

  private async load(url: string): Promise<CertResult> {
    this.stats.fetches++;
    const got = await this.fetch(url);
    const now = this.o.now();
    if ("error" in got) {
      this.stats.fetchErrors++;
      const r: CertResult = { ok: false, reason: got.refused ? "refused" : "fetch", detail: got.error };
      this.cache.set(url, { r, until: now + this.o.failureTtlMs });
      return r;
    }
    let r: CertResult;
    try {
      const chain = parsePemBundle(got.body);
      const bad = checkChain(chain, this.o.anchors);
      if (bad !== null) r = { ok: false, reason: "untrusted", detail: bad };
      else {
        let nb = 0;
        let na = Number.MAX_SAFE_INTEGER;
        for (const c of chain) {
          nb = Math.max(nb, Date.parse(c.validFrom));
          na = Math.min(na, Date.parse(c.validTo));
        }
        r = { ok: true, key: chain[0]!.publicKey, notBefore: nb, notAfter: na, subject: chain[0]!.subject };
      }
    } catch (err) {
      r = { ok: false, reason: "parse", detail: errMessage(err) };
    }
    let ttl = got.maxAge ?? this.o.defaultTtlMs;
    ttl = Math.min(this.o.maxTtlMs, Math.max(this.o.minTtlMs, ttl));
    this.cache.set(url, { r, until: now + (r.ok ? ttl : this.o.failureTtlMs) });
    return r;
  }

  private fetch(url: string): Promise<{ body: Buffer; maxAge: number | null } | { error: string; refused?: boolean }> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return Promise.resolve({ error: "not a URL", refused: true });
    }
    if (u.protocol !== "https:" && !(u.protocol === "http:" && this.o.allowHttp)) return Promise.resolve({ error: "x5u must be https", refused: true });
    if (u.username !== "" || u.password !== "") return Promise.resolve({ error: "x5u with userinfo", refused: true });
    const allow = this.o.allowAddress;
    const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    if (isIP(host) !== 0 && allow !== undefined && !allow(host)) return Promise.resolve({ error: "address not allowed", refused: true });
    let refused = false;
    const lookup = (hostname: string, options: object, cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
      dnsLookup(hostname, { ...options, all: true }, (err, addrs) => {
        if (err) return cb(err, "");
        const ok = allow === undefined ? addrs : addrs.filter((a) => allow(a.address));
        if (ok.length === 0) {
          refused = true;
          const e: NodeJS.ErrnoException = new Error("address not allowed");
          e.code = "EACCES";
          return cb(e, "");
        }
        if ((options as { all?: boolean }).all) cb(null, ok);
        else cb(null, ok[0]!.address, ok[0]!.family);
      });
    };
    return new Promise((resolve) => {
      let done = false;
      const finish = (v: { body: Buffer; maxAge: number | null } | { error: string; refused?: boolean }): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        req.destroy();
        resolve(v);
      };
      const opts: https.RequestOptions = { method: "GET", lookup: lookup as never, headers: { accept: "application/pem-certificate-chain, application/x-pem-file, */*" } };
      if (this.o.tlsCa !== undefined) opts.ca = this.o.tlsCa;
      const req = (u.protocol === "https:" ? https : http).request(u, opts, (res) => {
        if (res.statusCode !== 200) return finish({ error: `HTTP ${res.statusCode}` });
        const len = Number(res.headers["content-length"] ?? 0);
        if (len > this.o.maxBytes) return finish({ error: "certificate too large" });
        const parts: Buffer[] = [];
        let n = 0;
        res.on("data", (d: Buffer) => {
          n += d.length;
          if (n > this.o.maxBytes) return finish({ error: "certificate too large" });
          parts.push(d);
        });
        res.on("end", () => finish({ body: Buffer.concat(parts), maxAge: maxAgeMs(res.headers["cache-control"]) }));
        res.on("error", (e) => finish({ error: e.message }));
      });
      const timer = setTimeout(() => finish({ error: "timeout" }), this.o.timeoutMs);
      req.on("error", (e) => finish(refused ? { error: "address not allowed", refused: true } : { error: e.message }));
      req.end();
    });
  }
}
