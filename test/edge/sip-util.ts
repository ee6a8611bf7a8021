/**
 * Helpers for the SIP edge tests: sipp as carrier (UAC) and as destination (UAS) with message
 * traces parsed back into SipMessages, a silent UDP destination that records what it gets, and
 * access to the running VoiceEdge of an app.
 */
import dgram from "node:dgram";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseMessage, SipMessage } from "../../src/sip/index.js";
import { expect } from "vitest";
import { describeResult, freePort, sippReady, startSipp, type SippProcess, type SippResult } from "../helpers/sipp.js";

export const SCENARIOS = path.resolve(path.dirname(new URL(import.meta.url).pathname), "scenarios");

export type Tp = "udp" | "tcp";

export interface Traced {
  dir: "sent" | "received";
  msg: SipMessage;
}

/** Parse sipp's -trace_msg log into messages in order. */
export function parseSippTrace(text: string | undefined): Traced[] {
  if (!text) return [];
  const out: Traced[] = [];
  const re = /^(?:UDP|TCP|TLS) message (received|sent) [[(](\d+)[\])]? ?bytes\)? ?:?\n\n/gm;
  const heads: Array<{ dir: "sent" | "received"; start: number; end: number }> = [];
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) heads.push({ dir: m[1] as "sent" | "received", start: m.index, end: m.index + m[0].length });
  for (let i = 0; i < heads.length; i++) {
    const h = heads[i]!;
    const stop = i + 1 < heads.length ? heads[i + 1]!.start : text.length;
    let body = text.slice(h.end, stop);
    const sep = body.lastIndexOf("\n-----------------------------------------------");
    if (sep >= 0) body = body.slice(0, sep);
    body = body.replace(/\r?\n/g, "\r\n").replace(/^(\r\n)+/, "");
    // header section ends at the first empty line; keep the body as is
    const r = parseMessage(Buffer.from(body, "latin1"), { stream: false });
    if (r instanceof SipMessage) out.push({ dir: h.dir, msg: r });
  }
  return out;
}

function scenarioFile(name: string, subst: Record<string, string> = {}): string {
  const src = path.join(SCENARIOS, name);
  if (Object.keys(subst).length === 0) return src;
  let text = fs.readFileSync(src, "latin1");
  for (const [k, v] of Object.entries(subst)) text = text.split(`@${k}@`).join(v);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "didgate-scn-"));
  const f = path.join(dir, name);
  fs.writeFileSync(f, text, "latin1");
  return f;
}

export interface Party {
  proc: SippProcess;
  done: Promise<SippResult>;
  /** Messages in the trace (call after done). */
  trace(): Traced[];
  received(method?: string): SipMessage[];
  receivedResponses(): SipMessage[];
}

function party(proc: SippProcess): Party {
  const trace = (): Traced[] => parseSippTrace(proc.readFile("_messages.log"));
  return {
    proc,
    done: proc.done,
    trace,
    received: (method?: string) => trace().filter((t) => t.dir === "received" && t.msg.isRequest && (method === undefined || t.msg.method === method)).map((t) => t.msg),
    receivedResponses: () => trace().filter((t) => t.dir === "received" && !t.msg.isRequest).map((t) => t.msg),
  };
}

/** sipp as a destination on ip:port (default 127.0.0.1). */
export function startUas(scenario: string, transport: Tp, port: number, subst: Record<string, string> = {}, timeoutS = 20, ip = "127.0.0.1"): Party {
  const args = ["-sf", scenarioFile(scenario, subst), "-i", ip, "-p", String(port), "-t", transport === "udp" ? "u1" : "t1", "-m", "1", "-trace_msg", "-trace_err", "-timeout", `${timeoutS}s`, "-timeout_error"];
  return party(startSipp({ args, timeoutMs: (timeoutS + 5) * 1000 }));
}

export interface UacOptions {
  service: string;
  caller?: string;
  mf?: number;
  ip?: string;
  subst?: Record<string, string>;
  timeoutS?: number;
  calls?: number;
  rate?: number;
  /** More sipp arguments (e.g. -cid_str to choose the Call-ID). */
  args?: string[];
}

/** sipp as a carrier sending to the edge at 127.0.0.1:edgePort. */
export async function startUac(scenario: string, transport: Tp, edgePort: number, o: UacOptions): Promise<Party> {
  const t = o.timeoutS ?? 15;
  await sippReady(); // every destination started so far is listening before the call leaves
  const port = await freePort(o.ip ?? "127.0.0.1");
  const args = [
    "-sf", scenarioFile(scenario, o.subst), `127.0.0.1:${edgePort}`, "-s", o.service,
    "-key", "caller", o.caller ?? "+15125559999", "-key", "mf", String(o.mf ?? 70),
    "-i", o.ip ?? "127.0.0.1", "-p", String(port), "-t", transport === "udp" ? "u1" : "t1",
    "-m", String(o.calls ?? 1), "-trace_msg", "-trace_err", "-timeout", `${t}s`, "-timeout_error",
  ];
  if (o.rate !== undefined) args.push("-r", String(o.rate));
  if (o.args !== undefined) args.push(...o.args);
  return party(startSipp({ args, timeoutMs: (t + 5) * 1000 }));
}

/** A UDP destination that never answers; records the requests it gets. */
export class SilentUdp {
  readonly got: SipMessage[] = [];
  private constructor(private readonly sock: dgram.Socket, readonly port: number) {}
  static async start(): Promise<SilentUdp> {
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    const s = new SilentUdp(sock, sock.address().port);
    sock.on("message", (b) => {
      const m = parseMessage(b);
      if (m instanceof SipMessage) s.got.push(m);
    });
    return s;
  }
  close(): Promise<void> {
    return new Promise((r) => this.sock.close(() => r()));
  }
}

export function statuses(msgs: SipMessage[]): number[] {
  return msgs.map((m) => m.status);
}

/** A sipp party ended its scenario cleanly (exit 0); else the failure names it with sipp's own account. */
export async function ok(p: Party, what: string): Promise<void> {
  const r = await p.done;
  expect(r.code, `${what}: ${describeResult(r, p.proc)}`).toBe(0);
}
