/**
 * Cost of handing a SIP datagram to the worker that owns it (sip.workers > 1, src/workers/):
 * a 200 OK to an INVITE (~800 bytes, SDP, our tagged Via on top) as it comes back from a callee.
 *
 * - steer: scanMessage + ownerOf (what every worker does with every datagram), ns per message;
 * - handoff: encode + send over the loopback hand-off socket + receive + decode, between two
 *   worker processes (a child process is the other worker), us of CPU per 200 OK on each side
 *   (sender and receiver measured with process.cpuUsage over the whole burst) and wall time.
 *
 *   npx tsc -p . && node dist/bench/workers-handoff.js [--json] [--count 200k]
 *
 * For scale: the SIP bench (bench/sip.ts) measures the whole call (7 messages) in CPU us per call.
 */
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Handoff } from "../src/workers/handoff.js";
import { branchTag, ownerOf, scanMessage } from "../src/workers/steer.js";
import { median, parseArgs, sink } from "./lib.js";

const SDP = "v=0\r\no=user2 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
export const OK_200 = Buffer.from(
  "SIP/2.0 200 OK\r\n" +
    `Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKdg1k2jx9zz.0a1b2c3d4e${branchTag(1)}-2f;rport=5060\r\n` +
    "Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-524287-1---7f3c9a1e4b2d8c60;rport=5060;received=198.51.100.20\r\n" +
    "Record-Route: <sip:127.0.0.1:5060;lr;ftag=a8f2c3d1e5;dgd=127.0.0.1~6000;dgs=Zm9vYmFyYmF6cXV4cXV1eA>\r\n" +
    'From: "Caller Name" <sip:+14155550123@198.51.100.20;user=phone>;tag=a8f2c3d1e5\r\n' +
    'To: "DID" <sip:+15125550100@203.0.113.10;user=phone>;tag=9f8e7d6c\r\n' +
    "Call-ID: 3c26d9e8-5f1a-4c2b-9e7d-1a2b3c4d5e6f@198.51.100.20\r\n" +
    "CSeq: 102 INVITE\r\n" +
    "Contact: <sip:127.0.0.1:6000>\r\n" +
    "Content-Type: application/sdp\r\n" +
    `Content-Length: ${SDP.length}\r\n\r\n` +
    SDP,
  "latin1",
);

async function child(): Promise<void> {
  const h = await Handoff.open(1);
  let got = 0;
  let c0: NodeJS.CpuUsage | undefined;
  h.setReceiver((buf) => {
    if (got === 0) c0 = process.cpuUsage();
    got++;
    sink.n += buf.length;
  });
  process.on("message", (m: { peers?: number[]; token?: string; report?: boolean }) => {
    if (m.peers) h.setPeers(m.peers, m.token!);
    if (m.report) {
      const c = process.cpuUsage(c0);
      process.send!({ got, cpuUs: c.user + c.system });
      got = 0;
    }
  });
  process.send!({ port: h.port });
}

async function main(): Promise<void> {
  if (process.argv.includes("--child")) return child();
  const args = parseArgs();
  const count = args.int("count", 200_000);

  // steering decision alone
  const runs: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 200_000; i++) sink.n += ownerOf(scanMessage(OK_200)!, 2);
    runs.push(Number(process.hrtime.bigint() - t0) / 200_000);
  }
  const steerNs = median(runs);

  // hand-off to another process
  const me = await Handoff.open(0);
  const other = fork(fileURLToPath(import.meta.url), ["--child"], { stdio: "inherit" });
  const otherPort = await new Promise<number>((r) => other.once("message", (m: { port: number }) => r(m.port)));
  const peers = [me.port, otherPort];
  const token = randomBytes(8).toString("hex");
  me.setPeers(peers, token);
  other.send({ peers, token });
  await new Promise((r) => setTimeout(r, 100));
  const results: Array<{ sendUs: number; recvUs: number; got: number; wallUs: number }> = [];
  for (let r = 0; r < 5; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    // bursts of 200 with a yield between them: the receiver keeps up (no kernel drops)
    for (let i = 0; i < count; i += 200) {
      for (let j = 0; j < 200; j++) me.send(1, OK_200, "198.51.100.20", 5060);
      await new Promise((res) => setImmediate(res));
    }
    const c = process.cpuUsage(c0);
    await new Promise((res) => setTimeout(res, 300));
    const wallUs = Number(process.hrtime.bigint() - t0) / 1000 - 300_000;
    other.send({ report: true });
    const rep = await new Promise<{ got: number; cpuUs: number }>((res) => other.once("message", (m: { got: number; cpuUs: number }) => res(m)));
    results.push({ sendUs: (c.user + c.system) / count, recvUs: rep.cpuUs / Math.max(1, rep.got), got: rep.got, wallUs: wallUs / count });
  }
  other.kill();
  await me.close();
  const sendUs = median(results.map((x) => x.sendUs));
  const recvUs = median(results.map((x) => x.recvUs));
  const delivered = median(results.map((x) => x.got / count));
  const out = { name: "workers_handoff_200ok", bytes: OK_200.length, steer_ns_per_msg: Math.round(steerNs), send_cpu_us_per_msg: +sendUs.toFixed(2), recv_cpu_us_per_msg: +recvUs.toFixed(2), handoff_cpu_us_per_msg: +(sendUs + recvUs).toFixed(2), delivered_ratio: +delivered.toFixed(4), count };
  if (args.json) process.stdout.write(JSON.stringify(out) + "\n");
  else {
    process.stdout.write(`200 OK of ${out.bytes} bytes, ${count} per run, medians of 5 runs (steer: 7 runs)\n`);
    process.stdout.write(`  steering decision (scan + owner)      ${out.steer_ns_per_msg} ns per message\n`);
    process.stdout.write(`  hand-off, sender CPU                  ${out.send_cpu_us_per_msg} us per message\n`);
    process.stdout.write(`  hand-off, receiver CPU                ${out.recv_cpu_us_per_msg} us per message\n`);
    process.stdout.write(`  hand-off total                        ${out.handoff_cpu_us_per_msg} us per 200 OK (delivered ${(out.delivered_ratio * 100).toFixed(1)}%; the rest dropped by the kernel when the receiver fell behind)\n`);
  }
}

main().catch((e) => {
  process.stderr.write(String((e as Error).stack ?? e) + "\n");
  process.exit(1);
});
