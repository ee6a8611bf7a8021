/**
 * "Is this address one of ours?": a transport, IP and port that reach one of our listeners. A
 * listener on a wildcard address (0.0.0.0, ::) is reached on every local interface address and on
 * loopback. Used to refuse route targets that would send a call back to ourselves (a loop).
 */
import net from "node:net";
import os from "node:os";
import type { TransportKind } from "./transport.js";

export interface LocalEndpoint {
  readonly transport: TransportKind;
  /** Bound address (IPv6 without brackets). */
  readonly address: string;
  readonly port: number;
  /** Advertised host (Via / Record-Route), IPv6 with or without brackets. */
  readonly advertisedHost?: string;
  readonly advertisedPort?: number;
}

function strip(h: string): string {
  return h.length > 1 && h.charCodeAt(0) === 91 ? h.slice(1, -1).toLowerCase() : h.toLowerCase();
}

function isLoopback(a: string): boolean {
  return a === "::1" || (net.isIPv4(a) && a.startsWith("127."));
}

/** Addresses of the local interfaces (lower-case, IPv6 without zone). */
export function localInterfaceAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      const pct = a.address.indexOf("%");
      out.add((pct >= 0 ? a.address.slice(0, pct) : a.address).toLowerCase());
    }
  }
  return out;
}

/** A predicate over (transport, IP, port) for a set of listeners. */
export function ownAddressMatcher(endpoints: readonly LocalEndpoint[], ifaces: ReadonlySet<string> = localInterfaceAddresses()): (t: TransportKind, address: string, port: number) => boolean {
  const eps = endpoints.map((e) => ({
    transport: e.transport,
    address: strip(e.address),
    port: e.port,
    ahost: e.advertisedHost === undefined ? null : strip(e.advertisedHost),
    aport: e.advertisedPort ?? e.port,
    wildcard: e.address === "0.0.0.0" || e.address === "::",
  }));
  return (t, address, port) => {
    const a = strip(address.startsWith("::ffff:") && address.indexOf(".") > 0 ? address.slice(7) : address);
    for (const e of eps) {
      if (e.transport !== t) continue;
      if (port === e.port && (a === e.address || (e.wildcard && (ifaces.has(a) || isLoopback(a))))) return true;
      if (e.ahost !== null && port === e.aport && a === e.ahost) return true;
    }
    return false;
  };
}
