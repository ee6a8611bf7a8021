/**
 * sip.workers: 2, a real `didgate serve` (node:cluster): both workers read the one UDP socket, so
 * any datagram may land on either; the one that does not own it hands it over (Via branch tag for
 * responses, hash of the Call-ID for requests). Raw UDP peers as carrier and destination, sipp for
 * the TCP call, redis-server for the shared route table. What proves the hand-off: the summed
 * didgate_sip_worker_handoffs_total of /metrics, by method, and every call still completing.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import YAML from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SipMessage } from "../../src/sip/index.js";
import { parseMessage, SipMessage as Msg } from "../../src/sip/index.js";
import { branchWorker, callIdWorker } from "../../src/workers/steer.js";
import { tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { freePort, killAllSipp } from "../helpers/sipp.js";
import { ok, startUac, startUas } from "./sip-util.js";
import { connectFrom, Peer, response, sleep } from "./udp-peer.js";

const run = promisify(execFile);

interface Daemon {
  child: ChildProcess;
  out(): string;
  admin: string;
  cfg: string;
  stop(): Promise<number | null>;
}

async function startDaemon(dir: string, config: Record<string, unknown>, onSpawn?: (d: Daemon) => Promise<void>): Promise<Daemon> {
  const adminPort = await freePort();
  const cfg = join(dir, "didgate.yaml");
  writeFileSync(cfg, YAML.stringify({ admin: { listen: `127.0.0.1:${adminPort}` }, state_dir: join(dir, "state"), log: { level: "info" }, ...config }));
  const child = spawn(process.execPath, ["dist/src/cli.js", "serve", "--config", cfg], { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "" } });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
  const d: Daemon = {
    child,
    out: () => out,
    admin: `http://127.0.0.1:${adminPort}`,
    cfg,
    stop: async () => {
      child.kill("SIGTERM");
      return exited;
    },
  };
  await onSpawn?.(d);
  await waitFor(() => out.includes('"didgate workers started"') || (child.exitCode !== null ? Promise.reject(new Error(out)) : undefined), 20_000);
  return d;
}

/** The log lines (parsed) with this message. */
function logLines(d: Daemon, msg: string): Array<Record<string, unknown>> {
  return d
    .out()
    .split("\n")
    .filter((l) => l.includes(`"${msg}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Sum of a metric's samples in /metrics text whose labels include `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "{") && !line.startsWith(name + " ")) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

async function metrics(d: Daemon): Promise<string> {
  const r = await fetch(d.admin + "/metrics");
  expect(r.status).toBe(200);
  return r.text();
}

let seq = 0;
/** A request from the carrier with a fixed Via (a CANCEL must carry its INVITE's). */
function req(method: string, ruri: string, from: Peer, callId: string, o: { branch: string; fromTag: string; toTag?: string; cseq?: number; route?: string }): string {
  return [
    `${method} ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${from.address}:${from.port};branch=${o.branch};rport`,
    `From: <sip:+15125551111@${from.address}>;tag=${o.fromTag}`,
    `To: <${ruri}>${o.toTag ? `;tag=${o.toTag}` : ""}`,
    `Call-ID: ${callId}`,
    `CSeq: ${o.cseq ?? 1} ${method}`,
    "Max-Forwards: 70",
    `Contact: <sip:caller@${from.address}:${from.port}>`,
    ...(o.route ? [`Route: ${o.route}`] : []),
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

/** Call-IDs alternating between the workers that own them (0, 1, 0, ...). */
function callIds(prefix: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    const c = `${prefix}-${i}@workers.test`;
    if (callIdWorker(c, 2) === out.length % 2) out.push(c);
  }
  return out;
}

/** The SIP messages received on a TCP connection (bodies read by Content-Length); a BYE is answered 200. */
function tcpMessages(sock: Socket): Msg[] {
  const got: Msg[] = [];
  let buf = Buffer.alloc(0);
  sock.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const len = Number(/\r\n(?:content-length|l)\s*:\s*(\d+)/i.exec(buf.toString("latin1", 0, end))?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      const m = parseMessage(buf.subarray(0, end + 4 + len));
      buf = buf.subarray(end + 4 + len);
      if (!(m instanceof Msg)) continue;
      got.push(m);
      if (m.method === "BYE") sock.write(response(m, "200 OK"));
    }
  });
  return got;
}

afterAll(() => killAllSipp());

describe("sip.workers: 2 (file routes)", () => {
  let dir: string;
  let port: number;
  let d: Daemon;
  let carrier: Peer;
  let dest: Peer;
  let uasPort: number;

  beforeAll(async () => {
    carrier = await Peer.start("127.0.0.1");
    dest = await Peer.start("127.0.0.5");
    uasPort = await freePort();
    dir = tempDir();
    port = await freePort();
    writeRoutes(dir, {
      "+15125550100": { voice: { targets: [`sip:+15125550100@127.0.0.5:${dest.port}`] } },
      "+15125550111": { voice: { targets: [`sip:+15125550111@127.0.0.1:${uasPort}`] } },
      "+15125550122": { voice: { targets: [`sip:+15125550122@127.0.0.5:${dest.port}`] } },
    });
    d = await startDaemon(dir, {
      sip: {
        workers: 2,
        listen: [`udp://127.0.0.1:${port}`, `tcp://127.0.0.1:${port}`],
        timers: { t1_ms: 100 },
        trunks: [
          { name: "carrier", sources: ["127.0.0.1"], country_code: "1", cps: 1000 },
          { name: "limited", sources: ["127.0.0.7"], country_code: "1", cps: 10 },
        ],
        customers: [{ name: "tcpcust", tenant: "t1", sources: ["127.0.0.9"], country_code: "1", caller_id: "any", cps: 1000, max_calls: 1 }],
      },
      routes: { file: "routes.yaml", watch: false },
    });
  }, 30_000);

  afterAll(async () => {
    if (d) expect(await d.stop()).toBe(0);
    await carrier?.close();
    await dest?.close();
  });

  it("calls whose 200 OK, ACK, BYE and CANCEL land on the other worker complete; /metrics is the sum of both", async () => {
    const ids = callIds("ans", 20);
    const ruri = `sip:+15125550100@127.0.0.1:${port}`;
    for (const [k, callId] of ids.entries()) {
      const fromTag = `f${k}`;
      carrier.send(port, req("INVITE", ruri, carrier, callId, { branch: `z9hG4bK-inv-${k}`, fromTag }));
      const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === callId));
      dest.send(port, response(inv, "200 OK", { toTag: `t${k}`, contact: `sip:callee@127.0.0.5:${dest.port}` }));
      const okRes = await waitFor(() => carrier.got.find((m) => m.callId === callId && m.status === 200 && m.cseq?.method === "INVITE"));
      const route = okRes.recordRoutes[0]!;
      const target = `sip:callee@127.0.0.5:${dest.port}`;
      carrier.send(port, req("ACK", target, carrier, callId, { branch: `z9hG4bK-ack-${k}`, fromTag, toTag: `t${k}`, route }));
      carrier.send(port, req("BYE", target, carrier, callId, { branch: `z9hG4bK-bye-${k}`, fromTag, toTag: `t${k}`, cseq: 2, route }));
      await waitFor(() => dest.got.find((m) => m.method === "ACK" && m.callId === callId));
      const bye = await waitFor(() => dest.got.find((m) => m.method === "BYE" && m.callId === callId));
      dest.send(port, response(bye, "200 OK"));
      await waitFor(() => carrier.got.find((m) => m.callId === callId && m.status === 200 && m.cseq?.method === "BYE"));
    }
    // cancelled calls: the destination rings, the carrier cancels
    const cids = callIds("cancel", 10);
    const ruri2 = `sip:+15125550122@127.0.0.1:${port}`;
    for (const [k, callId] of cids.entries()) {
      const o = { branch: `z9hG4bK-cinv-${k}`, fromTag: `cf${k}` };
      carrier.send(port, req("INVITE", ruri2, carrier, callId, o));
      const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === callId));
      dest.send(port, response(inv, "180 Ringing", { toTag: `ct${k}` }));
      await waitFor(() => carrier.got.find((m) => m.callId === callId && m.status === 180));
      carrier.send(port, req("CANCEL", ruri2, carrier, callId, o));
      const cancel = await waitFor(() => dest.got.find((m) => m.method === "CANCEL" && m.callId === callId));
      dest.send(port, response(cancel, "200 OK"));
      dest.send(port, response(inv, "487 Request Terminated", { toTag: `ct${k}` }));
      expect((await waitFor(() => carrier.got.find((m) => m.callId === callId && m.cseq?.method === "CANCEL" && m.status >= 200))).status).toBe(200);
      expect((await waitFor(() => carrier.got.find((m) => m.callId === callId && m.cseq?.method === "INVITE" && m.status >= 300))).status).toBe(487);
    }
    const text = await waitFor(async () => {
      const t = await metrics(d);
      return sample(t, "didgate_sip_requests_total", { method: "BYE" }) >= 20 ? t : undefined;
    });
    // worker 1 alone reads the shared socket once both serve (worker 0 only sends from it), and
    // hands worker 0 every message of the calls it owns (the Call-IDs alternate): every kind was
    // handed over
    expect(sample(text, "didgate_sip_udp_readers")).toBe(1);
    expect(logLines(d, "not reading the shared SIP socket (other workers read it)").map((l) => l.worker)).toEqual([0]);
    for (const m of ["INVITE", "ACK", "BYE", "CANCEL"]) expect(sample(text, "didgate_sip_worker_handoffs_total", { kind: "request", method: m }), m).toBeGreaterThan(0);
    // the datagrams handed over left in frames, none empty, some of them perhaps carrying several
    const frames = sample(text, "didgate_sip_worker_handoff_frames_total");
    expect(frames).toBeGreaterThan(0);
    expect(frames).toBeLessThanOrEqual(sample(text, "didgate_sip_worker_handoffs_total"));
    expect(sample(text, "didgate_sip_worker_handoffs_total", { kind: "response", method: "INVITE" })).toBeGreaterThan(0);
    expect(sample(text, "didgate_sip_worker_handoffs_total", { kind: "response", method: "BYE" })).toBeGreaterThan(0);
    // the Call-IDs alternate between the owners: half the INVITEs were handled by each worker,
    // and /metrics counts all 30 (the sum of both registries, not worker 0's 15)
    expect(sample(text, "didgate_sip_requests_total", { method: "INVITE" })).toBe(30);
    expect(sample(text, "didgate_sip_requests_total", { method: "BYE" })).toBe(20);
    // no call was answered twice or lost: one 200 per answered INVITE and BYE at the carrier
    for (const callId of ids) expect(new Set(carrier.got.filter((m) => m.callId === callId && m.status === 200).map((m) => m.cseq?.method))).toEqual(new Set(["INVITE", "BYE"]));
  });

  it("a call over TCP works (connections dealt round-robin to the workers)", async () => {
    const uas = startUas("uas_answer.xml", "udp", uasPort);
    const uac = await startUac("uac_call.xml", "tcp", port, { service: "5125550111" });
    await ok(uac, "uac over tcp");
    await ok(uas, "uas");
  });

  it("a call set up over TCP on one worker whose BYE comes over UDP to the other frees its max_calls slot", async () => {
    // a customer with max_calls 1 (1 on each worker without Redis) calls over one TCP connection,
    // so every INVITE of it is handled by the worker holding that connection
    const sock = await connectFrom("127.0.0.9", port);
    try {
      const got = tcpMessages(sock);
      const ruri = `sip:+15125550100@127.0.0.1:${port}`;
      const lp = sock.localPort!;
      const invite = (callId: string, k: number): void => {
        sock.write(
          [
            `INVITE ${ruri} SIP/2.0`,
            `Via: SIP/2.0/TCP 127.0.0.9:${lp};branch=z9hG4bK-tcpslot-${k};rport`,
            `From: <sip:+15125551111@127.0.0.9>;tag=tf${k}`,
            `To: <${ruri}>`,
            `Call-ID: ${callId}`,
            "CSeq: 1 INVITE",
            "Max-Forwards: 70",
            `Contact: <sip:caller@127.0.0.9:${lp};transport=tcp>`,
            "Content-Length: 0",
            "",
            "",
          ].join("\r\n"),
        );
      };
      /** The INVITE's outcome: the INVITE the destination got, or the final refusal to the caller. */
      const attempt = (callId: string, k: number): Promise<{ inv?: SipMessage; refused?: number }> => {
        invite(callId, k);
        return waitFor(() => {
          const inv = dest.got.find((m) => m.method === "INVITE" && m.callId === callId);
          if (inv) return { inv };
          const r = got.find((m) => m.callId === callId && m.status >= 300);
          return r ? { refused: r.status } : undefined;
        });
      };
      const ids = callIds("tcpslot", 8);
      let crossed: string | undefined;
      let k = 0;
      for (const callId of ids) {
        const { inv, refused } = await attempt(callId, k++);
        expect(refused, `${callId} refused`).toBeUndefined();
        // the worker that handled the INVITE tagged the branch of its Via
        const holder = branchWorker(/branch=([^;,\s]+)/.exec(inv!.vias[0]!)![1]!, 2);
        expect(holder).toBeGreaterThanOrEqual(0);
        dest.send(port, response(inv!, "200 OK", { toTag: `tt${k}`, contact: `sip:callee@127.0.0.5:${dest.port}` }));
        await waitFor(() => got.find((m) => m.callId === callId && m.status === 200));
        // the callee hangs up over UDP: the BYE is steered to hash(Call-ID)'s worker
        const bye = [
          `BYE ${/<([^>]+)>/.exec(inv!.get("contact")!)![1]} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.5:${dest.port};branch=z9hG4bK-tcpslot-bye-${k};rport`,
          ...inv!.recordRoutes.map((r) => `Route: ${r}`),
          `From: ${inv!.get("to")};tag=tt${k}`,
          `To: ${inv!.get("from")}`,
          `Call-ID: ${callId}`,
          "CSeq: 1 BYE",
          "Max-Forwards: 70",
          "Content-Length: 0",
          "",
          "",
        ].join("\r\n");
        dest.send(port, bye);
        // answered by the caller when the BYE landed on the worker holding its connection; else by
        // the other worker, which cannot reach the caller's port (a 4xx/5xx)
        await waitFor(() => dest.got.find((m) => m.callId === callId && m.cseq?.method === "BYE" && m.status >= 200));
        if (callIdWorker(callId, 2) !== holder) {
          crossed = callId;
          break;
        }
      }
      // the Call-IDs alternate between the owners: one of the first two crosses
      expect(crossed).toBeDefined();
      // a next call on the same connection (same worker) is admitted: its slot was given back.
      // The release travels worker -> primary -> worker, so a call refused in between is retried
      // (before, every one was refused until max_call_s)
      let admitted: SipMessage | undefined;
      for (let i = 0; i < 20 && admitted === undefined; i++) {
        const r = await attempt(`tcpslot-next-${i}@workers.test`, 100 + i);
        if (r.inv) admitted = r.inv;
        else {
          expect(r.refused).toBe(503);
          await sleep(100);
        }
      }
      expect(admitted, "a call after the crossed BYE").toBeDefined();
      dest.send(port, response(admitted!, "486 Busy Here", { toTag: "tnext" }));
      await waitFor(() => got.find((m) => m.callId === admitted!.callId && m.status === 486));
    } finally {
      sock.destroy();
    }
  });

  /**
   * INVITEs over one TCP connection (held by one worker) whose CANCELs come over UDP, until one
   * CANCEL's Call-ID names the other worker: the caller gets 487, the callee the CANCEL, nobody 481.
   * `branch(k)` is the Via branch of call k.
   */
  const tcpInviteUdpCancel = async (name: string, branch: (k: number) => string): Promise<void> => {
    const sock = await connectFrom("127.0.0.9", port);
    const udp = await Peer.start("127.0.0.9");
    try {
      const got = tcpMessages(sock);
      const ruri = `sip:+15125550122@127.0.0.1:${port}`;
      const lp = sock.localPort!;
      let crossed = 0;
      const ids = callIds(name, 6);
      for (let k = 0; k < ids.length && crossed === 0; k++) {
        const callId = ids[k]!;
        const via = `Via: SIP/2.0/TCP 127.0.0.9:${lp};branch=${branch(k)};rport`;
        const head = (method: string): string[] => [`${method} ${ruri} SIP/2.0`, via, `From: <sip:+15125551111@127.0.0.9>;tag=${name}${k}`, `To: <${ruri}>`, `Call-ID: ${callId}`, `CSeq: 1 ${method}`, "Max-Forwards: 70"];
        sock.write([...head("INVITE"), `Contact: <sip:caller@127.0.0.9:${lp};transport=tcp>`, "Content-Length: 0", "", ""].join("\r\n"));
        const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === callId));
        const holder = branchWorker(/branch=([^;,\s]+)/.exec(inv.vias[0]!)![1]!, 2);
        dest.send(port, response(inv, "180 Ringing", { toTag: `${name}r${k}` }));
        await waitFor(() => got.find((m) => m.callId === callId && m.status === 180));
        // the CANCEL comes over UDP: steered by its Call-ID, which may name the worker without the INVITE
        udp.send(port, [...head("CANCEL"), "Content-Length: 0", "", ""].join("\r\n"));
        const cancel = await waitFor(() => dest.got.find((m) => m.method === "CANCEL" && m.callId === callId), 5000);
        dest.send(port, response(cancel, "200 OK", { toTag: `${name}r${k}` }));
        dest.send(port, response(inv, "487 Request Terminated", { toTag: `${name}r${k}` }));
        await waitFor(() => got.find((m) => m.callId === callId && m.status === 487), 5000);
        // no 481 to the CANCEL from the worker without the INVITE, over either transport
        expect([...got, ...udp.got].find((m) => m.callId === callId && m.status === 481)).toBeUndefined();
        if (callIdWorker(callId, 2) !== holder) crossed++;
      }
      // Call-IDs alternate between the owners: one of the first two crossed
      expect(crossed).toBe(1);
    } finally {
      sock.destroy();
      await udp.close();
    }
  };

  it("a CANCEL over UDP for an INVITE over TCP held by the other worker is passed round to it: 487 to the caller, CANCEL to the callee", async () => {
    await tcpInviteUdpCancel("tcpcancel", (k) => `z9hG4bK-tcpcancel-${k}`);
    expect(sample(await metrics(d), "didgate_sip_worker_handoffs_total", { method: "CANCEL" })).toBeGreaterThanOrEqual(1);
  });

  it("the same with an RFC 2543 branch (the transaction matched by the whole Via): the CANCEL is passed round as it came, not with received/rport added", async () => {
    await tcpInviteUdpCancel("tcp2543", (k) => `2543-tcpcancel-${k}`);
  });

  it("a CANCEL over UDP that matches no INVITE on any worker gets one 481", async () => {
    // from the carrier (a trunk is answered 481), its Via naming TCP: passed round the workers,
    // answered once, by the last
    const ruri = `sip:+15125550122@127.0.0.1:${port}`;
    const ids = callIds("nocancel", 2);
    const before = sample(await metrics(d), "didgate_sip_worker_handoffs_total", { method: "CANCEL" });
    for (const [i, callId] of ids.entries())
      carrier.send(port, [`CANCEL ${ruri} SIP/2.0`, `Via: SIP/2.0/TCP 127.0.0.1:${carrier.port};branch=z9hG4bK-nocancel-${i}`, "From: <sip:+15125551111@127.0.0.1>;tag=nc", `To: <${ruri}>`, `Call-ID: ${callId}`, "CSeq: 1 CANCEL", "Max-Forwards: 70", "Content-Length: 0", "", ""].join("\r\n"));
    const answers = (): SipMessage[] => carrier.got.filter((m) => m.callId?.startsWith("nocancel-") === true);
    await waitFor(() => answers().length === 2, 5000);
    await sleep(300);
    expect(answers().map((m) => `${m.callId} ${m.status}`).sort()).toEqual(ids.map((c) => `${c} 481`).sort());
    // each went to the other worker once
    expect(sample(await metrics(d), "didgate_sip_worker_handoffs_total", { method: "CANCEL" }) - before).toBeGreaterThanOrEqual(2);
  });

  it("CANCELs from an unknown source are not passed round the workers past its flood guard", async () => {
    // each would otherwise be handed to the next worker before any check of its source: a flood
    // of them costs every worker a hand-off per datagram (N-1 with N workers)
    const stranger = await Peer.start("127.0.0.3");
    try {
      const ruri = `sip:+15125550122@127.0.0.1:${port}`;
      const ids = callIds("strangecancel", 200);
      const before = sample(await metrics(d), "didgate_sip_worker_handoffs_total", { method: "CANCEL" });
      for (const [i, callId] of ids.entries()) {
        stranger.send(port, [`CANCEL ${ruri} SIP/2.0`, `Via: SIP/2.0/TCP 127.0.0.3:${stranger.port};branch=z9hG4bK-sc-${i}`, "From: <sip:+15125551111@127.0.0.3>;tag=sc", `To: <${ruri}>`, `Call-ID: ${callId}`, "CSeq: 1 CANCEL", "Max-Forwards: 70", "Content-Length: 0", "", ""].join("\r\n"));
        if (i % 20 === 19) await sleep(5);
      }
      await sleep(1500);
      const handoffs = sample(await metrics(d), "didgate_sip_worker_handoffs_total", { method: "CANCEL" }) - before;
      // steering alone hands off those that landed on the worker not owning their Call-ID (half
      // of them are owned by each worker, so at most 100); passed round they would be 200 more
      expect(handoffs).toBeGreaterThan(0);
      expect(handoffs).toBeLessThanOrEqual(100 + 2 * 20);
      // unknown_source: drop: nothing answered
      expect(stranger.got.filter((m) => m.callId?.startsWith("strangecancel-") === true)).toEqual([]);
    } finally {
      await stranger.close();
    }
  });

  it("/v1/status counts the calls in progress on every worker", async () => {
    const ids = callIds("status", 2);
    const ruri = `sip:+15125550100@127.0.0.1:${port}`;
    for (const [i, callId] of ids.entries()) carrier.send(port, req("INVITE", ruri, carrier, callId, { branch: `z9hG4bK-status-${i}`, fromTag: `fs${i}` }));
    const invs = await waitFor(() => {
      const got = ids.map((c) => dest.got.find((m) => m.method === "INVITE" && m.callId === c));
      return got.every((m) => m !== undefined) ? (got as SipMessage[]) : undefined;
    });
    // one ringing call on each worker
    expect(new Set(invs.map((m) => branchWorker(/branch=([^;,\s]+)/.exec(m.vias[0]!)![1]!, 2)))).toEqual(new Set([0, 1]));
    const st = (await (await fetch(d.admin + "/v1/status")).json()) as { workers: number; workers_up: number; sip: { calls_in_progress: number } };
    expect(st.workers).toBe(2);
    expect(st.workers_up).toBe(2);
    expect(st.sip.calls_in_progress).toBe(2);
    for (const m of invs) dest.send(port, response(m, "486 Busy Here", { toTag: "tst" }));
    await waitFor(() => ids.every((c) => carrier.got.some((m) => m.callId === c && m.status === 486)));
    await waitFor(async () => ((await (await fetch(d.admin + "/v1/status")).json()) as { sip: { calls_in_progress: number } }).sip.calls_in_progress === 0 || undefined);
  });

  it("a trunk's CPS holds across the workers: 40 INVITEs at once from a 10 CPS trunk, about 10 admitted", async () => {
    const lim = await Peer.start("127.0.0.7");
    try {
      const ruri = `sip:+15125550122@127.0.0.1:${port}`;
      // a run of its own (a retried test does not count the first try's INVITEs)
      const tag = "cps" + Date.now().toString(36);
      const ids = callIds(tag, 40);
      for (const [k, callId] of ids.entries()) lim.send(port, req("INVITE", ruri, lim, callId, { branch: `z9hG4bK-${tag}-${k}`, fromTag: `p${k}` }));
      // distinct calls: a 503 not ACKed is retransmitted after 500 ms (timer G), an INVITE the
      // destination does not answer likewise (timer A), and a busy machine may take that long
      const finals = await waitFor(() => {
        const refused = new Set(lim.got.filter((m) => m.status === 503).map((m) => m.callId)).size;
        const admitted = new Set(dest.got.filter((m) => m.method === "INVITE" && m.callId?.startsWith(tag + "-")).map((m) => m.callId)).size;
        return refused + admitted >= 40 ? { refused, admitted } : undefined;
      }, 10_000);
      // each worker has its share of the 10 CPS (the reader, worker 1, owns fewer calls: 6.25 and
      // 3.75, the burst the same): together 10, plus what refills while the 40 are handled (a busy
      // machine stretches that); unsplit, two workers would admit 20 or more
      expect(finals.admitted).toBeGreaterThanOrEqual(8);
      expect(finals.admitted).toBeLessThanOrEqual(15);
      expect(finals.refused).toBe(40 - finals.admitted);
    } finally {
      await lim.close();
    }
  });

  it("/metrics: gauges of state every worker holds (the route table) are not summed", async () => {
    const t = await metrics(d);
    expect(sample(t, "didgate_route_table_entries", { kind: "exact" })).toBe(3);
    expect(sample(t, "didgate_numbers", { state: "active" })).toBe(3);
    const last = sample(t, "didgate_route_table_last_reload_timestamp_seconds");
    expect(last).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(last).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    // per-worker quantities are still the sum: both workers' handoffs were counted above
  });

  it("/metrics with a worker that does not answer: 200 with the others' metrics and didgate_worker_up 0 for it", async () => {
    let t = await metrics(d);
    expect(sample(t, "didgate_worker_up", { worker: "0" })).toBe(1);
    expect(sample(t, "didgate_worker_up", { worker: "1" })).toBe(1);
    const w1 = logLines(d, "worker forked").find((l) => l.worker === 1)!.pid as number;
    process.kill(w1, "SIGSTOP");
    try {
      t = await metrics(d);
      expect(sample(t, "didgate_worker_up", { worker: "0" })).toBe(1);
      expect(sample(t, "didgate_worker_up", { worker: "1" })).toBe(0);
      // worker 0's share is there: the route table it holds
      expect(sample(t, "didgate_route_table_entries", { kind: "exact" })).toBe(3);
    } finally {
      process.kill(w1, "SIGCONT");
    }
    // its late answer to the scrape above is dropped; once it answers the primary's heartbeat
    // again (it may have been counted silent meanwhile) scrapes have it again
    await waitFor(async () => (sample(await metrics(d), "didgate_worker_up", { worker: "1" }) === 1 ? true : undefined), 10_000, 200);
  }, 20_000);

  it("SIGHUP to the primary reloads every worker", async () => {
    const before = d.out().split("\n").filter((l) => l.includes('"config reloaded"')).length;
    d.child.kill("SIGHUP");
    const lines = await waitFor(() => {
      const l = d.out().split("\n").filter((x) => x.includes('"config reloaded"'));
      return l.length >= before + 2 ? l.slice(before) : undefined;
    }, 10_000);
    expect(new Set(lines.map((l) => (JSON.parse(l) as { worker: number }).worker))).toEqual(new Set([0, 1]));
  });
});

describe("sip.workers: 2 with Redis routes", () => {
  let redis: TestRedis;
  let d: Daemon;
  let port: number;
  let carrier: Peer;
  let a: Peer;
  let b: Peer;

  beforeAll(async () => {
    redis = await startRedis();
    carrier = await Peer.start("127.0.0.1");
    a = await Peer.start("127.0.0.5");
    b = await Peer.start("127.0.0.6");
    port = await freePort();
    const dir = tempDir();
    d = await startDaemon(dir, {
      sip: { workers: 2, listen: [`udp://127.0.0.1:${port}`], trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }] },
      routes: { redis: { url: redis.url } },
    });
  }, 30_000);

  afterAll(async () => {
    if (d) expect(await d.stop()).toBe(0);
    for (const p of [carrier, a, b]) await p?.close();
    await redis?.stop();
  });

  async function callsReach(to: Peer, prefix: string): Promise<void> {
    const ids = callIds(prefix, 6);
    const ruri = `sip:+15125550100@127.0.0.1:${port}`;
    for (const [k, callId] of ids.entries()) carrier.send(port, req("INVITE", ruri, carrier, callId, { branch: `z9hG4bK-${prefix}-${k}`, fromTag: `r${k}` }));
    for (const callId of ids) {
      const inv: SipMessage = await waitFor(() => to.got.find((m) => m.method === "INVITE" && m.callId === callId));
      to.send(port, response(inv, "486 Busy Here", { toTag: "busy" }));
    }
  }

  it("/metrics with Redis routes: the sync gauges read as one edge's (alert rules compare them to 1 and 0)", async () => {
    await run(process.execPath, ["dist/src/cli.js", "routes", "set", "+15125550199", JSON.stringify({ voice: { targets: ["sip:+15125550199@127.0.0.5:5999"] } }), "--config", d.cfg]);
    const t = await waitFor(async () => {
      const x = await metrics(d);
      return sample(x, "didgate_route_table_entries", { kind: "exact" }) >= 1 ? x : undefined;
    }, 10_000);
    expect(sample(t, "didgate_route_table_entries", { kind: "exact" })).toBe(1);
    expect(sample(t, "didgate_route_sync_connected")).toBe(1);
    expect(sample(t, "didgate_route_sync_stale")).toBe(0);
    expect(sample(t, "didgate_route_table_last_reload_timestamp_seconds")).toBeLessThanOrEqual(Date.now() / 1000 + 1);
  });

  it("a route changed in Redis is seen by every worker: calls owned by each go to the new target", async () => {
    const set = (target: Peer) =>
      run(process.execPath, ["dist/src/cli.js", "routes", "set", "+15125550100", JSON.stringify({ voice: { targets: [`sip:+15125550100@${target.address}:${target.port}`] } }), "--config", d.cfg]);
    await set(a);
    await waitFor(async () => {
      const r = await fetch(`${d.admin}/v1/lookup?number=%2B15125550100`);
      return r.status === 200 && (await r.text()).includes(`${a.port}`) ? true : undefined;
    }, 10_000);
    await callsReach(a, "ra");
    await set(b);
    // worker 0 answers the lookup; the others may lag it a moment: wait for a call of each
    // worker's to go to b, then every later call must
    await sleep(1500);
    await callsReach(b, "rb");
    const late = a.got.filter((m) => m.method === "INVITE" && m.callId?.startsWith("rb-"));
    expect(late).toEqual([]);
  });
});

describe("sip.workers: 2, signals and re-forks", () => {
  let d: Daemon | undefined;
  let dir: string;
  let port: number;
  let cfg: Record<string, unknown>;

  afterAll(async () => {
    if (d && d.child.exitCode === null) expect(await d.stop()).toBe(0);
  });

  it("SIGHUPs while the workers start: the daemon keeps running, serves, and the workers reload once started", async () => {
    dir = tempDir();
    port = await freePort();
    writeRoutes(dir, { "+15125550100": { voice: { targets: ["sip:+15125550100@127.0.0.5:5999"] } } });
    cfg = {
      sip: { workers: 2, listen: [`udp://127.0.0.1:${port}`], trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }] },
      routes: { file: "routes.yaml", watch: false },
    };
    let hups = 0;
    d = await startDaemon(dir, cfg, async (x) => {
      // from the primary's first fork until every worker reports started: a SIGHUP every 20 ms
      await waitFor(() => x.out().includes('"worker forked"') || (x.child.exitCode !== null ? Promise.reject(new Error(x.out())) : undefined), 20_000);
      while (!x.out().includes('"didgate workers started"') && x.child.exitCode === null) {
        x.child.kill("SIGHUP");
        hups++;
        await sleep(20);
      }
    });
    expect(hups).toBeGreaterThan(0);
    expect(d.child.exitCode).toBe(null);
    expect(d.out()).not.toContain("failed to start");
    // a SIGHUP that came while a worker was starting is applied once it has started
    await waitFor(() => (new Set(logLines(d!, "config reloaded").map((l) => l.worker)).size === 2 ? true : undefined), 10_000);
    expect((await fetch(d.admin + "/readyz")).status).toBe(200);
    const st = (await (await fetch(d.admin + "/v1/status")).json()) as { workers: number };
    expect(st.workers).toBe(2);
  }, 40_000);

  it("a worker forked again takes the primary's worker count and role, not the changed file's", async () => {
    if (d === undefined) throw new Error("no daemon");
    // the file now says one process: a re-forked worker must still be worker 1 of 2
    writeFileSync(d.cfg, YAML.stringify({ ...(YAML.parse(readFileSync(d.cfg, "utf8")) as Record<string, unknown>), sip: { ...(cfg.sip as object), workers: 1 } }));
    const w1 = logLines(d, "worker forked").find((l) => l.worker === 1)!;
    expect(typeof w1.pid).toBe("number");
    process.kill(w1.pid as number, "SIGKILL");
    // until it is forked again (a second later) and started, the daemon is not ready
    const notReady = await waitFor(async () => {
      const r = await fetch(d!.admin + "/readyz");
      return r.status === 503 ? ((await r.json()) as { reasons: string[]; checks: { workers: { count: number; up: number[] } } }) : undefined;
    }, 5000, 10);
    expect(notReady.reasons).toContain("SIP workers not all up (1 of 2)");
    expect(notReady.checks.workers).toEqual({ count: 2, up: [0] });
    await waitFor(() => (logLines(d!, "didgate workers started").length >= 2 ? true : d!.child.exitCode !== null ? Promise.reject(new Error(d!.out())) : undefined), 20_000);
    const forks = logLines(d, "worker forked").filter((l) => l.worker === 1);
    expect(forks.length).toBe(2);
    expect(d.child.exitCode).toBe(null);
    const ready = await fetch(d.admin + "/readyz");
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: { workers: unknown } }).checks.workers).toEqual({ count: 2, up: [0, 1] });
    // SIGHUP reaches the new worker too (it runs as worker 1: its log lines say so)
    const before = logLines(d, "config reloaded").filter((l) => l.worker === 1).length;
    d.child.kill("SIGHUP");
    await waitFor(() => (logLines(d!, "config reloaded").filter((l) => l.worker === 1).length > before ? true : undefined), 10_000);
    expect(await d.stop()).toBe(0);
  }, 40_000);
});

describe("sip.workers: 2, a worker forked again while traffic flows", () => {
  let d: Daemon | undefined;
  let carrier: Peer | undefined;
  let dest: Peer | undefined;

  afterAll(async () => {
    if (d && d.child.exitCode === null) expect(await d.stop()).toBe(0);
    await carrier?.close();
    await dest?.close();
  });

  it("requests owned by a worker that is starting again are answered (by the worker that got them), none handed to it before it serves", async () => {
    const dir = tempDir();
    const port = await freePort();
    carrier = await Peer.start("127.0.0.1");
    dest = await Peer.start("127.0.0.5");
    writeRoutes(dir, { "+15125550100": { voice: { targets: [`sip:+15125550100@127.0.0.5:${dest.port}`] } } });
    d = await startDaemon(dir, {
      sip: { workers: 2, listen: [`udp://127.0.0.1:${port}`], trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }] },
      routes: { file: "routes.yaml", watch: false },
    });
    const w1 = logLines(d, "worker forked").find((l) => l.worker === 1)!;
    process.kill(w1.pid as number, "SIGKILL");
    // (what was in flight to it as it died is lost, as in one process)
    await waitFor(() => (logLines(d!, "worker died; starting it again").length > 0 ? true : undefined), 5000);
    await sleep(50);
    // an OPTIONS every 10 ms whose Call-ID worker 1 owns, from its death until well after its
    // successor has started: each gets its 200 (a trunk's OPTIONS is answered by any worker)
    const sent: string[] = [];
    let startedAt = 0;
    for (let i = 0; ; i++) {
      const c = `refork-${i}@workers.test`;
      if (callIdWorker(c, 2) !== 1) continue;
      sent.push(c);
      carrier.send(port, [`OPTIONS sip:127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${carrier.port};branch=z9hG4bK-rf-${i};rport`, "From: <sip:ping@127.0.0.1>;tag=rf", `To: <sip:127.0.0.1:${port}>`, `Call-ID: ${c}`, "CSeq: 1 OPTIONS", "Max-Forwards: 70", "Content-Length: 0", "", ""].join("\r\n"));
      await sleep(10);
      if (startedAt === 0 && logLines(d, "didgate workers started").length >= 2) startedAt = Date.now();
      if (startedAt > 0 && Date.now() - startedAt > 500) break;
      if (sent.length > 2000 || d.child.exitCode !== null) throw new Error("worker 1 not started again: " + d.out().slice(-2000));
    }
    await sleep(1000);
    const answered = new Set(carrier.got.filter((m) => m.status === 200 && m.callId?.startsWith("refork-") === true).map((m) => m.callId));
    expect(sent.length).toBeGreaterThan(100);
    expect(sent.filter((c) => !answered.has(c))).toEqual([]);
  }, 40_000);

  it("a worker that stops answering (SIGSTOP) is not up: /readyz 503, the datagrams it owns answered by the other; up again once it answers", async () => {
    if (d === undefined || carrier === undefined) throw new Error("no daemon");
    const port = Number(/udp:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(d.cfg, "utf8"))![1]);
    const w1 = logLines(d, "worker forked").filter((l) => l.worker === 1).pop()!;
    const pid = w1.pid as number;
    expect((await fetch(d.admin + "/readyz")).status).toBe(200);
    process.kill(pid, "SIGSTOP");
    try {
      const notReady = await waitFor(async () => {
        const r = await fetch(d!.admin + "/readyz");
        return r.status === 503 ? ((await r.json()) as { reasons: string[]; checks: { workers: { count: number; up: number[] } } }) : undefined;
      }, 10_000, 100);
      expect(notReady.reasons).toContain("SIP workers not all up (1 of 2)");
      expect(notReady.checks.workers).toEqual({ count: 2, up: [0] });
      // worker 1 is the shared socket's reader: while it does not answer, worker 0 reads it
      await waitFor(() => (logLines(d!, "reading the shared SIP socket").some((l) => l.worker === 0) ? true : undefined), 5000);
      const sent: string[] = [];
      for (let i = 0; sent.length < 20; i++) {
        const c = `stopped-${i}@workers.test`;
        if (callIdWorker(c, 2) !== 1) continue;
        sent.push(c);
        carrier.send(port, [`OPTIONS sip:127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${carrier.port};branch=z9hG4bK-st-${i};rport`, "From: <sip:ping@127.0.0.1>;tag=st", `To: <sip:127.0.0.1:${port}>`, `Call-ID: ${c}`, "CSeq: 1 OPTIONS", "Max-Forwards: 70", "Content-Length: 0", "", ""].join("\r\n"));
        await sleep(10);
      }
      await waitFor(() => (sent.every((c) => carrier!.got.some((m) => m.status === 200 && m.callId === c)) ? true : undefined), 5000);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await waitFor(async () => ((await fetch(d!.admin + "/readyz")).status === 200 ? true : undefined), 10_000, 100);
    expect(d.out()).toContain('"worker not answering; counted as down"');
    await waitFor(() => (d!.out().includes('"worker answering again"') ? true : undefined), 5000);
    // and stops reading once its reader answers again
    await waitFor(() => {
      const w0 = d!
        .out()
        .split("\n")
        .filter((l) => l.includes("the shared SIP socket") && l.includes('"worker":0'))
        .map((l) => (JSON.parse(l) as { reading: boolean }).reading);
      return w0.length > 0 && w0[w0.length - 1] === false ? true : undefined;
    }, 5000);
  }, 40_000);

  it("an INVITE over UDP handled by another worker while its owner was stopped is still CANCELled once the owner is back", async () => {
    if (d === undefined || carrier === undefined || dest === undefined) throw new Error("no daemon");
    const port = Number(/udp:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(d.cfg, "utf8"))![1]);
    const pid = logLines(d, "worker forked").filter((l) => l.worker === 1).pop()!.pid as number;
    const callee = dest;
    try {
      process.kill(pid, "SIGSTOP");
      const callId = callIds("stopcancel", 2)[1]!; // owned by worker 1
      const ruri = `sip:+15125550100@127.0.0.1:${port}`;
      const o = { branch: "z9hG4bK-stopcancel", fromTag: "sc1" };
      try {
        await waitFor(async () => ((await fetch(d!.admin + "/readyz")).status === 503 ? true : undefined), 10_000, 100);
        carrier.send(port, req("INVITE", ruri, carrier, callId, o));
        const inv = await waitFor(() => callee.got.find((m) => m.method === "INVITE" && m.callId === callId), 5000);
        expect(branchWorker(/branch=([^;,\s]+)/.exec(inv.vias[0]!)![1]!, 2)).toBe(0);
        callee.send(port, response(inv, "180 Ringing", { toTag: "sct" }));
        await waitFor(() => carrier!.got.find((m) => m.callId === callId && m.status === 180), 5000);
      } finally {
        process.kill(pid, "SIGCONT");
      }
      await waitFor(async () => ((await fetch(d!.admin + "/readyz")).status === 200 ? true : undefined), 10_000, 100);
      // the CANCEL goes to worker 1 (its Call-ID's owner), which holds no INVITE: passed round to worker 0
      carrier.send(port, req("CANCEL", ruri, carrier, callId, o));
      const cancel = await waitFor(() => callee.got.find((m) => m.method === "CANCEL" && m.callId === callId), 5000);
      callee.send(port, response(cancel, "200 OK"));
      const inv = callee.got.find((m) => m.method === "INVITE" && m.callId === callId)!;
      callee.send(port, response(inv, "487 Request Terminated", { toTag: "sct" }));
      expect((await waitFor(() => carrier!.got.find((m) => m.callId === callId && m.cseq?.method === "CANCEL" && m.status >= 200), 5000)).status).toBe(200);
      expect((await waitFor(() => carrier!.got.find((m) => m.callId === callId && m.cseq?.method === "INVITE" && m.status >= 300), 5000)).status).toBe(487);
    } finally {
      callee.got.length = 0;
    }
  }, 60_000);
});
