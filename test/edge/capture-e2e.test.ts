/**
 * SIP capture to a real HEP receiver: sngrep listening for HEP3 (-L udp:...) and writing what it
 * decapsulates to a pcap; a full call through didgate must show up there with both legs (carrier to
 * didgate, didgate to the PBX) of the same Call-ID.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, writeRoutes } from "../helpers/app.js";
import { describeResult, freePort, killAllSipp } from "../helpers/sipp.js";
import { startUac, startUas } from "./sip-util.js";

let app: Didgate;
let sngrep: ChildProcess | undefined;
let pcap = "";
let udp = 0;
let pbx = 0;

beforeAll(async () => {
  const dir = tempDir();
  pcap = join(dir, "capture.pcap");
  const hepPort = await freePort();
  sngrep = spawn("sngrep", ["-N", "-q", "-F", "-L", `udp:127.0.0.1:${hepPort}`, "-O", pcap], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 500));
  pbx = await freePort();
  udp = await freePort();
  writeRoutes(dir, { "+15125550101": { voice: { targets: [`sip:+15125550101@127.0.0.1:${pbx}`] } } });
  ({ app } = await startApp(
    {
      sip: { listen: [`udp://127.0.0.1:${udp}`], trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }] },
      routes: { file: "routes.yaml", watch: false },
      capture: { hep: `udp://127.0.0.1:${hepPort}`, id: 2001 },
    },
    dir,
  ));
});

afterAll(async () => {
  await app?.stop(0);
  killAllSipp();
  if (sngrep && sngrep.exitCode === null) sngrep.kill("SIGKILL");
});

describe("SIP capture (HEP3) to sngrep", () => {
  it("mirrors both legs of a call, grouped by Call-ID", async () => {
    const uas = startUas("uas_answer.xml", "udp", pbx);
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550101" });
    const r = await uac.done;
    expect(r.code, describeResult(r, uac.proc)).toBe(0);
    await uas.done;
    const callId = uac.trace().find((t) => t.dir === "sent")!.msg.callId!;
    await new Promise((res) => setTimeout(res, 300));
    // sngrep writes its pcap when it is interrupted
    const exited = new Promise((res) => sngrep!.once("exit", res));
    sngrep!.kill("SIGINT");
    await Promise.race([exited, new Promise((res) => setTimeout(res, 3000))]);
    expect(existsSync(pcap)).toBe(true);
    const text = readFileSync(pcap).toString("latin1");
    const invites = text.split("INVITE sip:").length - 1;
    expect(invites).toBeGreaterThanOrEqual(2); // the carrier's INVITE and the one forwarded to the PBX
    expect(text.split(`Call-ID: ${callId}`).length - 1).toBeGreaterThanOrEqual(8); // INVITE x2, 100, 180/200 x2, ACK x2, BYE x2, 200 x2
    expect(text).toContain(`INVITE sip:+15125550101@127.0.0.1:${pbx}`);
    const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === "didgate_capture_packets_total");
    expect(m).toBeDefined();
  });
});
