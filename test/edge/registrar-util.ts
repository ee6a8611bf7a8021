/** sipp as a phone that registers with didgate's registrar (test/edge/scenarios/phone_register.xml). */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { killAllSipp, startSipp } from "../helpers/sipp.js";
import { Redis } from "ioredis";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import type { Didgate } from "../../src/app.js";
import { SCENARIOS, startUac, type Party } from "./sip-util.js";
import { digestResponse } from "../../src/sip/digest.js";
import { parseOrThrow, type SipMessage } from "../../src/sip/index.js";

/** The phones' address: not a trunk. */
export const PHONE_IP = "127.0.0.8";
export const DOMAIN = "sip.example.net";

/** sipp as a phone on PHONE_IP:port registering (phone_register.xml); resolves when sipp exits. */
export function register(edgePort: number, port: number, o: { user: string; pass: string; expires: number; final: number; transport?: "udp" | "tcp"; ip?: string; /** One REGISTER without credentials (no challenge expected). */ once?: boolean; /** The whole Contact header value (default: the phone's own address). */ contact?: string }): Party {
  const name = o.once === true ? "phone_register_once.xml" : "phone_register.xml";
  let text = fs.readFileSync(path.join(SCENARIOS, name), "latin1");
  const subst: Record<string, string> = { USER: o.user, PASS: o.pass, DOMAIN, EXPIRES: String(o.expires), FINAL: String(o.final), CONTACT: o.contact ?? `<sip:${o.user}@[local_ip]:[local_port];transport=[transport]>` };
  for (const [k, v] of Object.entries(subst)) text = text.split(`@${k}@`).join(v);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "didgate-scn-"));
  const f = path.join(dir, name);
  fs.writeFileSync(f, text, "latin1");
  const args = ["-sf", f, `127.0.0.1:${edgePort}`, "-i", o.ip ?? PHONE_IP, "-p", String(port), "-t", o.transport === "tcp" ? "t1" : "u1", "-m", "1", "-trace_msg", "-trace_err", "-timeout", "10s", "-timeout_error"];
  const proc = startSipp({ args, timeoutMs: 15_000 });
  return {
    proc,
    done: proc.done,
    trace: () => [],
    received: () => [],
    receivedResponses: () => [],
  };
}


const PHONE_FROM = `"Alice Phone" <sip:@FROMUSER@@${DOMAIN}>;tag=[pid]SIPpTag00[call_number]`;

/** The phone's ACK of the 200 and, `holdMs` later, its BYE (through didgate's Record-Route). */
const ackBye = (holdMs: number): string => `<send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: ${PHONE_FROM}
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Contact: <sip:phone@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="${holdMs}"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: ${PHONE_FROM}
      [last_To:]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Contact: <sip:phone@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>`;

/** The ACK of a non-2xx final answer: hop by hop, the second INVITE's branch (message 4). */
const ACK_FAIL = `<send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-4];rport
      From: ${PHONE_FROM}
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="200"/>`;

/**
 * sipp as a registered user's phone on PHONE_IP calling out through the edge (phone_call.xml):
 * From `from` (default the user) at DOMAIN, 407 answered with user/pass, then `final`; after a 200
 * the phone ACKs and hangs up (`holdMs` later).
 */
export function phoneCall(edgePort: number, o: { user: string; pass: string; from?: string; service: string; final: number; headers?: string; /** ms between the ACK and the BYE of an answered call */ holdMs?: number }): Promise<Party> {
  return startUac("phone_call.xml", "udp", edgePort, {
    service: o.service,
    ip: PHONE_IP,
    subst: { USER: o.user, PASS: o.pass, FROMUSER: o.from ?? o.user, DOMAIN, HEADERS: o.headers ?? "User-Agent: sipp-phone", FINAL: String(o.final), REST: o.final === 200 ? ackBye(o.holdMs ?? 200) : ACK_FAIL },
  });
}

/** A phone over TCP (a plain socket: it must get its call over the connection it registered on). */
export class TcpPhone {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  readonly got: SipMessage[] = [];
  /** "\r\n" keep-alive answers received. */
  pongs = 0;
  closed = false;
  private constructor(readonly sock: net.Socket) {
    sock.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        while (this.buf.length >= 2 && this.buf[0] === 13 && this.buf[1] === 10) {
          this.pongs++;
          this.buf = this.buf.subarray(2);
        }
        const end = this.buf.indexOf("\r\n\r\n");
        if (end < 0) break;
        const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(this.buf.subarray(0, end).toString("latin1"))?.[1] ?? "0");
        if (this.buf.length < end + 4 + len) break;
        this.got.push(parseOrThrow(this.buf.subarray(0, end + 4 + len)));
        this.buf = this.buf.subarray(end + 4 + len);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on("close", () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on("error", () => undefined);
  }
  static connect(port: number): Promise<TcpPhone> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port, localAddress: PHONE_IP }, () => resolve(new TcpPhone(s)));
      s.once("error", reject);
    });
  }
  get local(): string {
    return `${PHONE_IP}:${this.sock.localPort}`;
  }
  send(lines: string[]): void {
    this.sock.write(lines.join("\r\n") + "\r\n\r\n");
  }
  /** The next message that matches, waiting up to 10 s. */
  async next(pred: (m: SipMessage) => boolean): Promise<SipMessage> {
    const until = Date.now() + 10_000;
    for (;;) {
      const i = this.got.findIndex(pred);
      if (i >= 0) return this.got.splice(i, 1)[0]!;
      if (this.closed || Date.now() > until) throw new Error("tcp phone: no such message" + (this.closed ? " (connection closed)" : ""));
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }
  register(user: string, cseq: number, contact: string, auth?: string): void {
    this.send([
      `REGISTER sip:${DOMAIN} SIP/2.0`,
      `Via: SIP/2.0/TCP ${this.local};branch=z9hG4bK-reg${cseq};rport`,
      `From: <sip:${user}@${DOMAIN}>;tag=tcpphone`,
      `To: <sip:${user}@${DOMAIN}>`,
      `Call-ID: tcp-phone-${user}`,
      `CSeq: ${cseq} REGISTER`,
      `Contact: <${contact}>`,
      "Expires: 300",
      ...(auth !== undefined ? [`Authorization: ${auth}`] : []),
      "Content-Length: 0",
    ]);
  }
  /** REGISTER, 401, REGISTER with credentials: the answer to the second one. */
  async registerWithDigest(user: string, password: string, contact: string): Promise<SipMessage> {
    this.register(user, 1, contact);
    const ch = await this.next((m) => !m.isRequest && m.status === 401);
    this.register(user, 2, contact, digestAnswer(ch.getAll("www-authenticate")[0]!, user, password));
    return this.next((m) => !m.isRequest && m.cseq?.seq === 2);
  }
  close(): void {
    this.sock.destroy();
  }
}

export function digestAnswer(challenge: string, user: string, password: string): string {
  const nonce = /nonce="([^"]+)"/.exec(challenge)![1]!;
  const alg = /algorithm=([A-Z0-9-]+)/.exec(challenge)![1] as "MD5" | "SHA-256";
  const realm = /realm="([^"]+)"/.exec(challenge)![1]!;
  const uri = `sip:${DOMAIN}`;
  const r = digestResponse(alg, user, realm, password, "REGISTER", uri, nonce, "auth", 1, "0a4f113b");
  return `Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${r}", algorithm=${alg}, qop=auth, nc=00000001, cnonce="0a4f113b"`;
}

/** A response of the phone to `req` (Via and Record-Route copied, a To tag added). */
export function answerTo(req: SipMessage, status: string, extra: string[] = []): string[] {
  return [
    `SIP/2.0 ${status}`,
    ...req.getAll("via").map((v) => `Via: ${v}`),
    ...req.getAll("record-route").map((v) => `Record-Route: ${v}`),
    `From: ${req.get("from")}`,
    `To: ${req.get("to")}${req.toTag === undefined ? ";tag=tcpphone-callee" : ""}`,
    `Call-ID: ${req.callId}`,
    `CSeq: ${req.cseq!.seq} ${req.cseq!.method}`,
    ...extra,
    "Content-Length: 0",
  ];
}

/** The sum of a metric's values whose labels include `labels` (0 when it has none). */
export async function metricValue(app: Didgate, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === name);
  let sum = 0;
  for (const v of (m?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>) {
    if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value;
  }
  return sum;
}

/** A real redis-server for edges that share it (routes.redis), a client, and a writer of routes under `prefix`. */
export async function sharedRedis(prefix: string): Promise<{ redis: TestRedis; client: Redis; writer: RedisRouteWriter }> {
  const redis = await startRedis();
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  client.on("error", () => undefined);
  return { redis, client, writer: new RedisRouteWriter(client, { prefix, streamMaxlen: 1000 }) };
}

/** Ends what a test of edges on one Redis started: sipp, the edges, the client, the redis-server. */
export async function stopShared(edges: ReadonlyArray<{ app: Didgate }>, shared: { redis: TestRedis; client: Redis } | undefined): Promise<void> {
  await killAllSipp();
  for (const e of edges) await e.app.stop(0);
  shared?.client.disconnect();
  await shared?.redis.stop();
}
