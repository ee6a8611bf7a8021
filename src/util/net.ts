/**
 * Address helpers shared by config validation, SIP trunk ACLs and SMPP account ACLs:
 * IPv4/IPv6 parsing, CIDR matching, listen addresses.
 */
import { BlockList, isIP } from "node:net";

export interface Cidr {
  readonly family: 4 | 6;
  /** Address as a bigint (IPv4-mapped IPv6 is folded to IPv4). */
  readonly base: bigint;
  readonly bits: number;
  readonly text: string;
}

/** Parse an IP address to [family, value]. IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4. */
export function parseIp(addr: string): { family: 4 | 6; value: bigint } | undefined {
  let a = addr;
  if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
  const pct = a.indexOf("%");
  if (pct >= 0) a = a.slice(0, pct);
  const fam = isIP(a);
  if (fam === 4) return { family: 4, value: ipv4Value(a) };
  if (fam !== 6) return undefined;
  const lower = a.toLowerCase();
  if (lower.startsWith("::ffff:") && isIP(lower.slice(7)) === 4) return { family: 4, value: ipv4Value(lower.slice(7)) };
  return { family: 6, value: ipv6Value(lower) };
}

function ipv4Value(a: string): bigint {
  let v = 0n;
  for (const part of a.split(".")) v = (v << 8n) | BigInt(Number(part));
  return v;
}

function ipv6Value(a: string): bigint {
  let head = a;
  let tail = "";
  const dbl = a.indexOf("::");
  if (dbl >= 0) {
    head = a.slice(0, dbl);
    tail = a.slice(dbl + 2);
  }
  const parse = (s: string): number[] => {
    if (s === "") return [];
    const out: number[] = [];
    for (const g of s.split(":")) {
      if (g.includes(".")) {
        const v = Number(ipv4Value(g));
        out.push((v >>> 16) & 0xffff, v & 0xffff);
      } else out.push(parseInt(g, 16));
    }
    return out;
  };
  const h = parse(head);
  const t = parse(tail);
  const groups = dbl >= 0 ? [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t] : h;
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

/** Parse "203.0.113.0/24", "2001:db8::/32" or a plain address (a /32 or /128). */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const addr = slash >= 0 ? text.slice(0, slash) : text;
  const ip = parseIp(addr);
  if (!ip) return undefined;
  const max = ip.family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b)) return undefined;
    bits = Number(b);
    // An IPv4-mapped IPv6 prefix: shift into the IPv4 space.
    if (ip.family === 4 && isIP(addr) === 6) bits -= 96;
    if (bits < 0 || bits > max) return undefined;
  }
  const mask = bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(max - bits);
  return { family: ip.family, base: ip.value & mask, bits, text };
}

/** Whether `ip` is inside `c` (config checks: overlapping sources). */
export function cidrContains(c: Cidr, ip: { family: 4 | 6; value: bigint }): boolean {
  if (c.family !== ip.family) return false;
  const max = c.family === 4 ? 32 : 128;
  const shift = BigInt(max - c.bits);
  return ip.value >> shift === c.base >> shift;
}

/**
 * A set of CIDRs that answers "which entry owns this address": the most specific entry first
 * (an exact address before any CIDR), entries of equal specificity in the order they were added.
 * Entries carry a value (a trunk, an account). Matching is node:net BlockList (which also
 * matches IPv4-mapped IPv6 sources against IPv4 entries); one BlockList per value and prefix length.
 */
export class AddressMatcher<V> {
  /** Most specific first: `spec` is the prefix length in the IPv6 space (IPv4 /n = 96 + n). */
  private readonly rules: { spec: number; list: BlockList; value: V }[] = [];
  private count = 0;

  add(cidrText: string, value: V): boolean {
    const c = parseCidr(cidrText);
    if (!c) return false;
    const spec = c.family === 4 ? 96 + c.bits : c.bits;
    let rule = this.rules.find((r) => r.spec === spec && r.value === value);
    if (!rule) {
      rule = { spec, list: new BlockList(), value };
      let i = this.rules.length;
      while (i > 0 && this.rules[i - 1]!.spec < spec) i--;
      this.rules.splice(i, 0, rule);
    }
    if (c.family === 4) rule.list.addSubnet(ipv4Text(c.base), c.bits, "ipv4");
    else rule.list.addSubnet(ipv6Text(c.base), c.bits, "ipv6");
    this.count++;
    return true;
  }

  match(address: string): V | undefined {
    let a = address;
    if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
    const pct = a.indexOf("%");
    if (pct >= 0) a = a.slice(0, pct);
    const fam = isIP(a);
    if (fam === 0) return undefined;
    const type = fam === 4 ? "ipv4" : "ipv6";
    for (const r of this.rules) if (r.list.check(a, type)) return r.value;
    return undefined;
  }

  get size(): number {
    return this.count;
  }
}

function ipv4Text(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join(".");
}

function ipv6Text(v: bigint): string {
  const g: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) g.push(((v >> s) & 0xffffn).toString(16));
  return g.join(":");
}

export interface HostPort {
  host: string;
  port: number;
}

/** Parse "host:port", "[v6]:port". */
export function parseHostPort(text: string): HostPort | undefined {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end < 0 || text[end + 1] !== ":") return undefined;
    host = text.slice(1, end);
    portText = text.slice(end + 2);
    if (isIP(host) !== 6) return undefined;
  } else {
    const colon = text.lastIndexOf(":");
    if (colon <= 0) return undefined;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) return undefined;
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535) return undefined;
  if (!/^[A-Za-z0-9.\-:_]+$/.test(host)) return undefined;
  return { host, port };
}

export type SipTransportName = "udp" | "tcp" | "tls";

/** Parse "udp://0.0.0.0:5060", "tcp://[::]:5060", "tls://host:5061". */
export function parseListenUrl(text: string): ({ transport: SipTransportName } & HostPort) | undefined {
  const m = /^(udp|tcp|tls):\/\/(.+)$/i.exec(text);
  if (!m) return undefined;
  const hp = parseHostPort(m[2]!);
  if (!hp) return undefined;
  return { transport: m[1]!.toLowerCase() as SipTransportName, ...hp };
}

/** True for loopback addresses (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  const ip = parseIp(host);
  if (!ip) return false;
  if (ip.family === 4) return ip.value >> 24n === 127n;
  return ip.value === 1n;
}
