/**
 * SIGTERM drain of a real didgate process: a call ringing and a message being delivered when the
 * signal arrives both complete; a new INVITE during the drain gets 503 and a new deliver_sm the
 * temporary status; SMPP sessions are unbound politely; the process exits 0.
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, killAllSipp } from "../helpers/sipp.js";
import { connectEsme } from "../helpers/smsc.js";
import { tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { startUac, startUas } from "../edge/sip-util.js";

let receiver: Server | undefined;
afterAll(async () => {
  killAllSipp();
  if (receiver) await new Promise<void>((r) => receiver!.close(() => r()));
});

describe("drain on SIGTERM", () => {
  it("finishes calls and messages in flight, refuses new ones per contract, exits 0", async () => {
    const hits: string[] = [];
    receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      // A slow receiver: the message is still in flight when SIGTERM arrives.
      req.on("end", () => setTimeout(() => (hits.push(JSON.parse(body).text), res.writeHead(200).end()), 1500));
    });
    await new Promise<void>((r) => receiver!.listen(0, "127.0.0.1", r));
    const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/sms`;

    const dir = tempDir();
    const sipPort = await freePort();
    const smppPort = await freePort();
    const uasPort = await freePort();
    writeRoutes(dir, { "+15125550100": { voice: { targets: [`sip:+15125550100@127.0.0.1:${uasPort}`] }, sms: { webhook: hook } } });
    const cfg = join(dir, "didgate.yaml");
    writeFileSync(
      cfg,
      YAML.stringify({
        sip: { listen: [`udp://127.0.0.1:${sipPort}`], trunks: [{ name: "t", sources: ["127.0.0.1"], country_code: "1" }] },
        smpp: { listen: `127.0.0.1:${smppPort}`, handler_timeout_s: 5, accounts: [{ system_id: "smsc", password: "pw", role: "carrier", country_code: "1" }] },
        routes: { file: "routes.yaml" },
        admin: { listen: "127.0.0.1:0" },
        drain: { grace_s: 10 },
        webhooks: { allow_private: ["127.0.0.0/8"] },
      }),
    );
    const child = spawn(process.execPath, ["dist/src/cli.js", "serve", "--config", cfg], { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "" } });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    try {
      await waitFor(() => out.includes('"didgate started"'), 15_000);
      const esme = await connectEsme(smppPort);
      expect((await esme.bind("bind_transceiver", "smsc", "pw")).command_status).toBe(0);

      // In flight: a call whose destination answers after 1.5 s, a message whose webhook takes 1.5 s.
      const uas = startUas("uas_slow_answer.xml", "udp", uasPort);
      const uac = await startUac("uac_call.xml", "udp", sipPort, { service: "5125550100" });
      const sms1 = esme.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: "5125550100", short_message: "in flight" });
      await new Promise((r) => setTimeout(r, 400));
      child.kill("SIGTERM");
      await waitFor(() => out.includes("didgate draining"), 5000);

      // New work during the drain.
      const late = await startUac("uac_final.xml", "udp", sipPort, { service: "5125550100", subst: { CODE: "503" } });
      const sms2 = await esme.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: "5125550100", short_message: "too late" });
      expect(sms2.command_status).toBe(0x64);

      expect((await sms1).command_status).toBe(0);
      expect(hits).toContain("in flight");
      expect(hits).not.toContain("too late");
      const u = await uac.done;
      expect(u.code, u.stderr).toBe(0);
      expect((await uas.done).code).toBe(0);
      expect((await late.done).code).toBe(0);
      const retryAfter = late.receivedResponses().find((m) => m.status === 503)?.get("retry-after");
      expect(retryAfter).toBeDefined();

      expect(await exited).toBe(0);
      expect(esme.received.some((p) => p.command === "unbind")).toBe(true);
      expect(out).toContain("didgate stopped");
      await esme.close();
    } finally {
      child.kill("SIGKILL");
    }
  }, 60_000);
});
