/** A plain UDP SIP peer for edge tests: sends text, records what it receives. */
import dgram from "node:dgram";
import net from "node:net";
import { parseMessage, SipMessage } from "../../src/sip/index.js";

export class Peer {
  readonly got: SipMessage[] = [];
  private constructor(private readonly sock: dgram.Socket, readonly address: string, readonly port: number) {}
  static async start(address = "127.0.0.1", port = 0): Promise<Peer> {
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.bind(port, address, () => r()));
    const p = new Peer(sock, address, sock.address().port);
    sock.on("message", (b) => {
      const m = parseMessage(b);
      if (m instanceof SipMessage) p.got.push(m);
    });
    return p;
  }
  /** Send SIP text (LF line ends become CRLF) or raw bytes. */
  send(port: number, text: string | Buffer): void {
    this.sock.send(typeof text === "string" ? Buffer.from(text.replace(/\r?\n/g, "\r\n")) : text, port, "127.0.0.1");
  }
  close(): Promise<void> {
    return new Promise((r) => this.sock.close(() => r()));
  }
}

let n = 0;
export interface ReqOpts {
  extra?: string[];
  toTag?: string;
  fromTag?: string;
  callId?: string;
  cseq?: number;
  body?: string;
}

/** A request from `from` (Via, From, To, Call-ID, CSeq, Max-Forwards, Contact). */
export function request(method: string, ruri: string, from: { address: string; port: number }, o: ReqOpts = {}): string {
  n++;
  const body = o.body ?? "";
  return [
    `${method} ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${from.address}:${from.port};branch=z9hG4bK-r${n}-${from.port};rport`,
    `From: <sip:+15125551111@${from.address}>;tag=${o.fromTag ?? "f" + n}`,
    `To: <${ruri}>${o.toTag ? `;tag=${o.toTag}` : ""}`,
    `Call-ID: ${o.callId ?? `c${n}-${from.port}@test`}`,
    `CSeq: ${o.cseq ?? 1} ${method}`,
    "Max-Forwards: 70",
    `Contact: <sip:caller@${from.address}:${from.port}>`,
    ...(o.extra ?? []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    "",
    body,
  ].join("\r\n");
}

/** A response to `req` as a UAS at `contact` would send it (Vias, Record-Route echoed). */
export function response(req: SipMessage, status: string, o: { toTag?: string; contact?: string; vias?: string[]; extra?: string[] } = {}): string {
  return [
    `SIP/2.0 ${status}`,
    ...(o.vias ?? req.vias).map((v) => `Via: ${v}`),
    ...req.recordRoutes.map((r) => `Record-Route: ${r}`),
    `From: ${req.get("from")}`,
    `To: ${req.get("to")}${o.toTag ? `;tag=${o.toTag}` : ""}`,
    `Call-ID: ${req.callId}`,
    `CSeq: ${req.get("cseq")}`,
    ...(o.contact ? [`Contact: <${o.contact}>`] : []),
    ...(o.extra ?? []),
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Open a TCP connection from a given local address (127.0.0.x) to a port. */
export function connectFrom(localAddress: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}
