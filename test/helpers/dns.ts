/**
 * A small authoritative DNS server on a loopback UDP port, for tests of names in SIP targets: it
 * answers A, AAAA and SRV from a table, NXDOMAIN for names it does not know, and can hold the
 * answers for a name back for a while (a slow resolver). Records every question it gets.
 *
 *   const dns = await startDns({ "_sip._udp.pbx.test": { srv: [{ port: 5070, target: "pbx.test" }] }, "pbx.test": { a: ["127.0.0.1"] } });
 *   dns.delay("_sip._udp.pbx.test", 1000); dns.server; // "127.0.0.1:PORT"
 *   await dns.close();
 */
import dgram from "node:dgram";

export interface DnsRecords {
  a?: string[];
  aaaa?: string[];
  srv?: Array<{ priority?: number; weight?: number; port: number; target: string }>;
}

export interface TestDns {
  /** "127.0.0.1:PORT", for sip.dns_servers. */
  readonly server: string;
  /** Questions received, "TYPE name" (e.g. "SRV _sip._udp.pbx.test"), in order. */
  readonly questions: string[];
  /** Answers for `name` leave `ms` after the question. */
  delay(name: string, ms: number): void;
  close(): Promise<void>;
}

const TYPES: Record<number, string> = { 1: "A", 28: "AAAA", 33: "SRV" };

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, "").split(".").filter((l) => l !== "");
  return Buffer.concat([...parts.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "ascii")])), Buffer.from([0])]);
}

/** The question's name, type and where the question section ends; null when it cannot be read. */
function readQuestion(q: Buffer): { name: string; type: number; end: number } | null {
  if (q.length < 12 || q.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let i = 12;
  while (i < q.length) {
    const n = q[i]!;
    if (n === 0) break;
    if (n > 63 || i + 1 + n > q.length) return null;
    labels.push(q.toString("ascii", i + 1, i + 1 + n));
    i += 1 + n;
  }
  if (i + 5 > q.length) return null;
  return { name: labels.join(".").toLowerCase(), type: q.readUInt16BE(i + 1), end: i + 5 };
}

function answer(q: Buffer, zone: Record<string, DnsRecords>): Buffer | null {
  const qq = readQuestion(q);
  if (qq === null) return null;
  const rec = zone[qq.name];
  const rrs: Buffer[] = [];
  const rr = (type: number, rdata: Buffer): void => {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(0xc00c, 0); // the question's name
    h.writeUInt16BE(type, 2);
    h.writeUInt16BE(1, 4); // IN
    h.writeUInt32BE(30, 6); // TTL
    h.writeUInt16BE(rdata.length, 10);
    rrs.push(h, rdata);
  };
  if (rec !== undefined) {
    if (qq.type === 1) for (const a of rec.a ?? []) rr(1, Buffer.from(a.split(".").map(Number)));
    if (qq.type === 28)
      for (const a of rec.aaaa ?? []) {
        const b = Buffer.alloc(16);
        const full = a.includes("::") ? expand6(a) : a;
        full.split(":").forEach((g, k) => b.writeUInt16BE(parseInt(g, 16), k * 2));
        rr(28, b);
      }
    if (qq.type === 33)
      for (const s of rec.srv ?? []) {
        const h = Buffer.alloc(6);
        h.writeUInt16BE(s.priority ?? 10, 0);
        h.writeUInt16BE(s.weight ?? 10, 2);
        h.writeUInt16BE(s.port, 4);
        rr(33, Buffer.concat([h, encodeName(s.target)]));
      }
  }
  const head = Buffer.alloc(12);
  head.writeUInt16BE(q.readUInt16BE(0), 0); // id
  head.writeUInt16BE(0x8180 | (rec === undefined ? 3 : 0), 2); // QR RD RA, NXDOMAIN for unknown names
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(rrs.length / 2, 6);
  return Buffer.concat([head, q.subarray(12, qq.end), ...rrs]);
}

function expand6(a: string): string {
  const [l, r] = a.split("::") as [string, string];
  const left = l === "" ? [] : l.split(":");
  const right = r === "" ? [] : r.split(":");
  return [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right].join(":");
}

export async function startDns(zone: Record<string, DnsRecords>): Promise<TestDns> {
  const sock = dgram.createSocket("udp4");
  const delays = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  const questions: string[] = [];
  sock.on("message", (q, rinfo) => {
    const qq = readQuestion(q);
    if (qq === null) return;
    questions.push(`${TYPES[qq.type] ?? qq.type} ${qq.name}`);
    const a = answer(q, zone);
    if (a === null) return;
    const ms = delays.get(qq.name) ?? 0;
    const send = (): void => sock.send(a, rinfo.port, rinfo.address);
    if (ms <= 0) return send();
    const t = setTimeout(() => {
      timers.delete(t);
      send();
    }, ms);
    timers.add(t);
  });
  await new Promise<void>((resolve) => sock.bind(0, "127.0.0.1", resolve));
  return {
    server: `127.0.0.1:${sock.address().port}`,
    questions,
    delay: (name, ms) => void delays.set(name.toLowerCase(), ms),
    close: async () => {
      for (const t of timers) clearTimeout(t);
      await new Promise<void>((resolve) => sock.close(() => resolve()));
    },
  };
}
