/**
 * Which addresses a webhook may be sent to. A route's webhook URL comes from whoever writes routes
 * (an API token holder, a Redis writer), so without a guard didgate would POST wherever it is told:
 * to the cloud metadata service (169.254.169.254), to Redis or the admin port on loopback, to hosts
 * on the private network behind it. By default loopback, link-local, private (RFC 1918), shared
 * (RFC 6598), unique-local (RFC 4193) and the other special-purpose ranges of the IANA registries
 * (RFC 6890) are refused; `webhooks.allow_private` lists the ranges to allow anyway (a receiver on
 * the same host or network).
 *
 * The check is made on the address actually connected to: `lookup` (given to every request)
 * resolves the host name and drops the refused addresses before the socket connects, so a name
 * that resolves to an internal address, or changes its answer between a check and the connection
 * (DNS rebinding), never reaches one. IP literals (which Node connects to without a lookup) are
 * checked before the request. URL spellings such as `http://0x7f000001/` or `http://2130706433/`
 * are normalised to 127.0.0.1 by the WHATWG URL parser first.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from "node:dns";
import { BlockList, isIP } from "node:net";

/** Special-purpose ranges refused by default (IANA IPv4/IPv6 Special-Purpose Address Registries). */
const DENIED: readonly string[] = [
  "0.0.0.0/8", // "this network"
  "10.0.0.0/8", // private, RFC 1918
  "100.64.0.0/10", // shared address space (carrier-grade NAT), RFC 6598
  "127.0.0.0/8", // loopback
  "169.254.0.0/16", // link-local (cloud metadata services live here)
  "172.16.0.0/12", // private
  "192.0.0.0/24", // IETF protocol assignments
  "192.168.0.0/16", // private
  "198.18.0.0/15", // benchmarking, RFC 2544
  "224.0.0.0/4", // multicast
  "240.0.0.0/4", // reserved, and the limited broadcast address
  "::/128", // unspecified
  "::1/128", // loopback
  "64:ff9b::/96", // NAT64: reaches IPv4 hosts through a translator, RFC 6052
  "64:ff9b:1::/48", // local-use NAT64, RFC 8215
  "100::/64", // discard-only
  "fc00::/7", // unique-local, RFC 4193
  "fe80::/10", // link-local
  "ff00::/8", // multicast
];

export class AddressDeniedError extends Error {
  readonly code = "EDIDGATE_ADDRESS_DENIED";
  constructor(host: string) {
    super(`${host}: no address allowed for webhooks (loopback, private, link-local or special-purpose; see webhooks.allow_private)`);
    this.name = "AddressDeniedError";
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

function addRange(list: BlockList, cidr: string): void {
  const slash = cidr.indexOf("/");
  let addr = slash >= 0 ? cidr.slice(0, slash) : cidr;
  if (addr.startsWith("[") && addr.endsWith("]")) addr = addr.slice(1, -1);
  const fam = isIP(addr);
  if (fam === 0) throw new Error(`not an IP range: ${JSON.stringify(cidr)}`);
  const prefix = slash >= 0 ? Number(cidr.slice(slash + 1)) : fam === 4 ? 32 : 128;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > (fam === 4 ? 32 : 128)) throw new Error(`bad prefix length in ${JSON.stringify(cidr)}`);
  list.addSubnet(addr, prefix, fam === 4 ? "ipv4" : "ipv6");
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 2.5.5.2), else undefined. */
function mappedIpv4(a: string): string | undefined {
  let s = a.toLowerCase();
  const last = s.lastIndexOf(":");
  let dotted: string | undefined;
  if (s.indexOf(".", last) >= 0) {
    dotted = s.slice(last + 1);
    s = s.slice(0, last + 1) + "0:0";
  }
  const dbl = s.indexOf("::");
  let groups: string[];
  if (dbl >= 0) {
    const head = s.slice(0, dbl).split(":").filter((g) => g !== "");
    const tail = s.slice(dbl + 2).split(":").filter((g) => g !== "");
    groups = [...head, ...new Array<string>(Math.max(0, 8 - head.length - tail.length)).fill("0"), ...tail];
  } else groups = s.split(":");
  if (groups.length !== 8) return undefined;
  for (let i = 0; i < 5; i++) if (parseInt(groups[i]!, 16) !== 0) return undefined;
  if (parseInt(groups[5]!, 16) !== 0xffff) return undefined;
  if (dotted !== undefined) return dotted;
  const hi = parseInt(groups[6]!, 16);
  const lo = parseInt(groups[7]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

export class AddressPolicy {
  private readonly denied = new BlockList();
  private readonly allowed = new BlockList();

  /** `allowPrivate`: CIDRs (or single addresses) allowed even inside a refused range. */
  constructor(allowPrivate: readonly string[] = []) {
    for (const c of DENIED) addRange(this.denied, c);
    for (const c of allowPrivate) addRange(this.allowed, c);
  }

  /**
   * Whether a webhook may connect to this IP address (false for anything that is not one). An
   * IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as the IPv4 address it reaches.
   */
  allows(address: string): boolean {
    let a = address;
    if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
    let fam = isIP(a);
    if (fam === 0) return false;
    if (fam === 6) {
      const v4 = mappedIpv4(a);
      if (v4 !== undefined) {
        a = v4;
        fam = 4;
      }
    }
    const type = fam === 4 ? "ipv4" : "ipv6";
    if (this.allowed.check(a, type)) return true;
    return !this.denied.check(a, type);
  }

  /**
   * A `lookup` for node:net/http: resolves every address of the name and keeps the allowed ones
   * (the socket connects only to those), or fails with AddressDeniedError.
   */
  readonly lookup = (hostname: string, options: LookupOneOptions | LookupAllOptions | number | undefined, callback: LookupCallback): void => {
    const opts = typeof options === "object" && options !== null ? options : {};
    const family = typeof options === "number" ? options : (opts.family as number | undefined);
    dnsLookup(hostname, { ...(family ? { family } : {}), ...(opts.hints !== undefined ? { hints: opts.hints } : {}), all: true }, (err, addresses) => {
      if (err) return callback(err, "");
      const ok = addresses.filter((x) => this.allows(x.address));
      if (ok.length === 0) return callback(new AddressDeniedError(hostname), "");
      if ("all" in opts && opts.all === true) return callback(null, ok);
      callback(null, ok[0]!.address, ok[0]!.family);
    });
  };
}
