/**
 * Route targets that are didgate itself: a call sent there comes straight back and loops (RFC 3261
 * 16.3 step 4). Checked when a route file is loaded, against the configured SIP listeners (a
 * wildcard listener covers every local address); names other than "localhost" are not resolved
 * here (at call time a target resolving to our own listener is skipped, 482 when none is left).
 */
import net from "node:net";
import type { Config } from "../config/schema.js";
import type { Route, Target } from "../routing/route.js";
import type { RouteTable } from "../routing/table.js";
import { ownAddressMatcher, type LocalEndpoint } from "../sip/local.js";
import { parseListenUrl, type TransportKind } from "../sip/transport.js";
import { parseUri, uriTransport } from "../sip/index.js";

/** The listen endpoints of a sip config (listeners on port 0 are left out: their port is not known yet). */
export function configuredEndpoints(sip: Config["sip"]): LocalEndpoint[] {
  const out: LocalEndpoint[] = [];
  let ahost: string | undefined;
  let aport: number | undefined;
  if (sip.advertise !== undefined) {
    try {
      const a = parseListenUrl("udp://" + sip.advertise);
      ahost = a.host;
      if (sip.advertise.lastIndexOf(":") > sip.advertise.lastIndexOf("]")) aport = a.port;
    } catch {
      ahost = undefined;
    }
  }
  for (const url of sip.listen) {
    let u;
    try {
      u = parseListenUrl(url);
    } catch {
      continue;
    }
    if (u.port === 0) continue;
    const host = u.host === "*" ? "0.0.0.0" : u.host;
    out.push({ transport: u.transport, address: host, port: u.port, ...(ahost !== undefined ? { advertisedHost: ahost, advertisedPort: aport ?? u.port } : {}) });
  }
  return out;
}

/**
 * A per-entry check: the errors of one route whose targets include didgate itself (empty when
 * none do); undefined when there is nothing to check. The route file's loader thread runs it on
 * each entry as it validates them.
 */
export function selfTargetEntryCheck(sip: Config["sip"]): ((key: string, r: Route) => string[]) | undefined {
  const eps = configuredEndpoints(sip);
  if (eps.length === 0) return undefined;
  const own = ownAddressMatcher(eps);
  const isSelf = (uri: string): boolean => {
    const u = parseUri(uri);
    if (u === null || !u.isSip) return false;
    const t: TransportKind | null = uriTransport(u);
    if (t === null) return false;
    const maddr = u.param("maddr");
    const host = typeof maddr === "string" ? maddr.replace(/^\[|\]$/g, "") : u.hostname;
    const port = u.port ?? (t === "tls" ? 5061 : 5060);
    if (host === "localhost") return own(t, "127.0.0.1", port) || own(t, "::1", port);
    return net.isIP(host) !== 0 && own(t, host, port);
  };
  const seen = new Map<string, boolean>();
  const NONE: string[] = [];
  return (key, r) => {
    const v = r.voice;
    if (v === undefined) return NONE;
    let errors = NONE;
    const check = (targets: readonly Target[]): void => {
      for (const x of targets) {
        let self = seen.get(x.uri);
        if (self === undefined) {
          self = isSelf(x.uri);
          if (seen.size < 100_000) seen.set(x.uri, self);
        }
        if (self) {
          if (errors === NONE) errors = [];
          errors.push(`${key}: voice target ${x.uri} is didgate itself (sip.listen): calls to it would loop`);
        }
      }
    };
    check(v.targets);
    for (const w of v.schedule) check(w.targets);
    for (const c of v.callers) check(c.targets);
    return errors;
  };
}

/** A table check listing every route whose targets include didgate itself; undefined when there is nothing to check. */
export function selfTargetCheck(sip: Config["sip"]): ((table: RouteTable<Route>) => string[]) | undefined {
  const entry = selfTargetEntryCheck(sip);
  if (entry === undefined) return undefined;
  return (table) => {
    const errors: string[] = [];
    for (const [key, r] of table.entries()) {
      for (const e of entry(key, r)) if (errors.length < 100) errors.push(e);
    }
    return errors;
  };
}
