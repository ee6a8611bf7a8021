/**
 * Interop with Kamailio as the carrier's SBC (skipped when /usr/sbin/kamailio is missing): a
 * destination that answers with only didgate's Via. didgate must not forward such a response
 * (RFC 3261 16.7 step 3; Kamailio logged "no via found in reply" for each one and the caller never
 * got an answer): Kamailio gets didgate's own final response, the caller gets it through Kamailio,
 * and Kamailio logs nothing about a missing Via.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { freePort } from "../helpers/sipp.js";
import { Peer, request, response, sleep } from "./udp-peer.js";

const KAMAILIO = process.env.KAMAILIO_BIN ?? "/usr/sbin/kamailio";
const MODULES = process.env.KAMAILIO_MODULES ?? "/usr/lib/x86_64-linux-gnu/kamailio/modules";
const HERE = path.dirname(new URL(import.meta.url).pathname);

describe.skipIf(!fs.existsSync(KAMAILIO))("Kamailio as the carrier SBC", () => {
  let app: Didgate;
  let kam: ChildProcess | undefined;
  let kamLog = "";
  let kport: number;
  let caller: Peer;
  let dest: Peer;

  beforeAll(async () => {
    caller = await Peer.start("127.0.0.2");
    dest = await Peer.start("127.0.0.5");
    const dir = tempDir();
    const dport = await freePort();
    kport = await freePort();
    writeRoutes(dir, { "+15125550100": { voice: { targets: [`sip:+15125550100@127.0.0.5:${dest.port}`] } } });
    app = (
      await startApp(
        { sip: { listen: [`udp://127.0.0.1:${dport}`], timers: { t1_ms: 100 }, trunks: [{ name: "kamailio", sources: ["127.0.0.1"], country_code: "1" }] }, routes: { file: "routes.yaml", watch: false } },
        dir,
      )
    ).app;
    const cfg = fs
      .readFileSync(path.join(HERE, "kamailio", "carrier.cfg.tpl"), "utf8")
      .replaceAll("@PORT@", String(kport))
      .replaceAll("@MPATH@", MODULES)
      .replaceAll("@DIDGATE@", String(dport));
    fs.writeFileSync(path.join(dir, "kamailio.cfg"), cfg);
    kam = spawn(KAMAILIO, ["-f", path.join(dir, "kamailio.cfg"), "-DD", "-E", "-Y", dir, "-P", path.join(dir, "kamailio.pid"), "-m", "64", "-M", "8"], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
    kam.stderr!.on("data", (d: Buffer) => (kamLog = (kamLog + d.toString("latin1")).slice(-200_000)));
    // ready when it answers OPTIONS
    await waitFor(() => {
      caller.send(kport, request("OPTIONS", `sip:127.0.0.1:${kport}`, caller, { callId: "kam-ready" }));
      return caller.got.find((m) => m.callId === "kam-ready" && m.status === 200);
    }, 15_000, 300);
  }, 30_000);

  afterAll(async () => {
    if (kam && kam.exitCode === null) {
      kam.kill("SIGTERM");
      await new Promise((r) => kam!.once("close", r));
    }
    await app?.stop(0);
    await caller?.close();
    await dest?.close();
  });

  it("a 486 with only didgate's Via reaches the caller as didgate's own 486; Kamailio sees every reply with a Via", async () => {
    caller.send(kport, request("INVITE", `sip:+15125550100@127.0.0.1:${kport}`, caller, { callId: "kam-novia" }));
    const inv = await waitFor(() => dest.got.find((m) => m.method === "INVITE" && m.callId === "kam-novia"), 10_000);
    expect(inv.vias.length).toBe(3); // didgate, Kamailio, the caller
    dest.send(Number(app.voice!.listeners[0]!.port), response(inv, "180 Ringing", { toTag: "k1", vias: [inv.vias[0]!] }));
    dest.send(Number(app.voice!.listeners[0]!.port), response(inv, "486 Busy Here", { toTag: "k1", vias: [inv.vias[0]!] }));
    const fin = await waitFor(() => caller.got.find((m) => m.callId === "kam-novia" && m.status >= 200), 10_000);
    expect(fin.status).toBe(486);
    await sleep(300);
    expect(kamLog).not.toMatch(/no via found in reply/i);
  });
});
