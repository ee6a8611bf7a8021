/**
 * Target resolution (RFC 3263 without NAPTR): a target SIP URI becomes transport, IP and port.
 *   - transport from ";transport=" (sips: tls), else udp;
 *   - an IP host is used as is (port as given or 5060/5061);
 *   - a name with an explicit port: A/AAAA (node:dns lookup, preferring a family we can send from;
 *     with `servers`, queried from those servers instead of getaddrinfo);
 *   - a name without a port: SRV _sip._udp / _sip._tcp / _sips._tcp, lowest priority then weight,
 *     its target's A/AAAA; no SRV record: A/AAAA of the name on the default port.
 * Results are cached (bounded LRU; names for `ttlMs`). Resolution never throws.
 */
import dns from "node:dns";
import net from "node:net";
import { LRUCache } from "lru-cache";
import { parseUri, type SipUri } from "./uri.js";
import type { TransportKind } from "./transport.js";
import { errMessage } from "../util/errors.js";
import { FifoCache } from "../util/fifo-cache.js";

export interface ResolvedTarget {
  readonly transport: TransportKind;
  readonly address: string;
  readonly port: number;
  /** "udp:10.0.0.1:5060": health and connection key. */
  readonly key: string;
}

export type ResolveResult = ResolvedTarget | { error: string };

export interface ResolverOptions {
  /** Whether we can send over IPv4 / IPv6 for this transport. */
  canSend(transport: TransportKind, family: 4 | 6): boolean;
  ttlMs?: number;
  max?: number;
  /** DNS timeout per try (ms). */
  timeoutMs?: number;
  /** DNS servers ("IP", "IP:port", "[IPv6]:port") for SRV and A/AAAA; default: the system's. */
  servers?: readonly string[];
}

function defaultPort(t: TransportKind): number {
  return t === "tls" ? 5061 : 5060;
}

export function targetKey(transport: TransportKind, address: string, port: number): string {
  return transport + ":" + (address.indexOf(":") >= 0 ? "[" + address + "]" : address) + ":" + port;
}

/** Transport of a parsed SIP URI, or null for an unsupported one. */
export function uriTransport(u: SipUri, dflt: TransportKind = "udp"): TransportKind | null {
  if (u.scheme === "sips") return "tls";
  const tp = u.param("transport");
  if (typeof tp !== "string") return dflt;
  const l = tp.toLowerCase();
  return l === "udp" || l === "tcp" || l === "tls" ? l : null;
}

export class TargetResolver {
  /** URIs with an IP address: the answer never changes, so the oldest goes first (a lookup is a Map get). */
  private readonly ipCache: FifoCache<string, ResolvedTarget>;
  private readonly nameCache: LRUCache<string, ResolvedTarget>;
  private readonly resolver: dns.promises.Resolver;

  constructor(private readonly opts: ResolverOptions) {
    const max = opts.max ?? 10_000;
    this.ipCache = new FifoCache(max);
    this.nameCache = new LRUCache({ max: Math.min(max, 2000), ttl: opts.ttlMs ?? 30_000 });
    this.resolver = new dns.promises.Resolver({ timeout: opts.timeoutMs ?? 2000, tries: 2 });
    if (opts.servers !== undefined && opts.servers.length > 0) this.resolver.setServers([...opts.servers]);
  }

  /** Synchronous answer when the URI needs no DNS (or is cached); undefined when DNS is needed. */
  resolveSync(uri: string, dflt: TransportKind = "udp"): ResolveResult | undefined {
    const ck = dflt === "udp" ? uri : dflt + " " + uri;
    const c = this.ipCache.get(ck) ?? this.nameCache.get(ck);
    if (c !== undefined) return c;
    const u = parseUri(uri);
    if (u === null || !u.isSip) return { error: "not a SIP URI" };
    const t = uriTransport(u, dflt);
    if (t === null) return { error: "unsupported transport " + String(u.param("transport")) };
    const maddr = u.param("maddr");
    const host = typeof maddr === "string" ? maddr.replace(/^\[|\]$/g, "") : u.hostname;
    const fam = net.isIP(host);
    if (fam !== 0) {
      const port = u.port ?? defaultPort(t);
      const r: ResolvedTarget = { transport: t, address: host, port, key: targetKey(t, host, port) };
      this.ipCache.set(ck, r);
      return r;
    }
    return undefined;
  }

  /** Resolve (DNS when needed). */
  async resolve(uri: string, dflt: TransportKind = "udp"): Promise<ResolveResult> {
    const s = this.resolveSync(uri, dflt);
    if (s !== undefined) return s;
    const u = parseUri(uri)!;
    const t = uriTransport(u, dflt)!;
    // ;maddr= overrides the host (RFC 3261 19.1.1), a name as well as an address: the next-hop
    // checks of in-dialog requests (hopOfUri) name the maddr too
    const maddr = u.param("maddr");
    const host = typeof maddr === "string" && maddr !== "" ? maddr.replace(/^\[|\]$/g, "") : u.hostname;
    try {
      let port = u.port;
      let name = host;
      if (port === undefined && host !== "localhost") {
        const srv = await this.srv(t, host);
        if (srv !== null) {
          name = srv.name;
          port = srv.port;
        }
      }
      const address = await this.lookup(name, t);
      if (address === null) return { error: "no address for " + name };
      const p = port ?? defaultPort(t);
      const r: ResolvedTarget = { transport: t, address, port: p, key: targetKey(t, address, p) };
      this.nameCache.set(dflt === "udp" ? uri : dflt + " " + uri, r);
      return r;
    } catch (e) {
      return { error: errMessage(e) };
    }
  }

  private async srv(t: TransportKind, host: string): Promise<{ name: string; port: number } | null> {
    const q = (t === "tls" ? "_sips._tcp." : t === "tcp" ? "_sip._tcp." : "_sip._udp.") + host;
    try {
      const recs = await this.resolver.resolveSrv(q);
      if (recs.length === 0) return null;
      recs.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
      const r = recs[0]!;
      return { name: r.name, port: r.port };
    } catch {
      return null;
    }
  }

  private async lookup(name: string, t: TransportKind): Promise<string | null> {
    if (this.opts.servers !== undefined && this.opts.servers.length > 0) return this.query(name, t);
    const all = await dns.promises.lookup(name, { all: true });
    let fallback: string | null = null;
    for (const a of all) {
      const fam = a.family === 6 ? 6 : 4;
      if (this.opts.canSend(t, fam)) return a.address;
      if (fallback === null) fallback = a.address;
    }
    return fallback;
  }

  /** A/AAAA from the configured servers: the family we can send from first. */
  private async query(name: string, t: TransportKind): Promise<string | null> {
    const order: (4 | 6)[] = this.opts.canSend(t, 4) ? [4, 6] : [6, 4];
    let fallback: string | null = null;
    for (const fam of order) {
      const a = await (fam === 4 ? this.resolver.resolve4(name) : this.resolver.resolve6(name)).catch(() => [] as string[]);
      if (a.length === 0) continue;
      if (this.opts.canSend(t, fam)) return a[0]!;
      fallback ??= a[0]!;
    }
    return fallback;
  }
}
