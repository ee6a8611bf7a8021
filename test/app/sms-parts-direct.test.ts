/**
 * Concatenated SMS in direct mode (no Redis): the parts didgate answers ESME_ROK are in the
 * reassembly journal in state_dir before the answer, so a didgate killed with SIGKILL mid-message
 * loses none. A real didgate process (dist/src/cli.js serve), a real carrier ESME (npm smpp)
 * sending the first parts of 30 messages, kill -9, a new process on the same state_dir, the
 * remaining parts, and a real HTTP receiver that must get all 30 messages whole.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import YAML from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gsm7Encode } from "../../src/smpp/charset.js";
import { tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { freePort } from "../helpers/redis.js";
import { connectEsme, type TestEsme } from "../helpers/smsc.js";

const N = 30;
let receiver: Server;
let hook: string;
const hits: { id: string; body: { to: string; text: string; parts: number; partial?: boolean } }[] = [];
/** Destinations the receiver answers 503 (down for them). */
const failing = new Set<string>();
const dir = tempDir();
const children: ChildProcess[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const b = JSON.parse(body);
      if (failing.has(b.to)) return void res.writeHead(503).end();
      hits.push({ id: String(req.headers["webhook-id"]), body: b });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/in`;
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await new Promise<void>((r) => receiver.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

async function serve(cfg: string): Promise<{ child: ChildProcess; exited: Promise<unknown>; out: () => string }> {
  const child = spawn(process.execPath, ["dist/src/cli.js", "serve", "--config", cfg], { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "" } });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => child.on("exit", r));
  await waitFor(() => (out.includes('"didgate started"') ? true : undefined), 20_000).catch((err) => {
    throw new Error(`didgate did not start: ${(err as Error).message}\n${out}`);
  });
  return { child, exited, out: () => out };
}

async function part(esme: TestEsme, to: string, ref: number, total: number, seq: number, text: string): Promise<number> {
  const ud = Buffer.concat([Buffer.from([5, 0, 3, ref, total, seq]), Buffer.from(gsm7Encode(text)!)]);
  const r = await esme.send("deliver_sm", { source_addr: "447700900123", source_addr_ton: 1, destination_addr: to, esm_class: 0x40, short_message: ud });
  return r.command_status;
}

const to = (i: number) => `51255501${String(i).padStart(2, "0")}`;

describe("reassembly journal (direct mode)", () => {
  it("parts acknowledged before a SIGKILL are delivered after the restart: 30 of 30 messages whole", async () => {
    writeRoutes(dir, { "+1512555*": { tenant: "t1", sms: { webhook: hook } } });
    const smppPort = await freePort();
    const cfg = join(dir, "didgate.yaml");
    writeFileSync(
      cfg,
      YAML.stringify({
        sip: { listen: [] },
        smpp: { listen: `127.0.0.1:${smppPort}`, accounts: [{ system_id: "smsc-a", password: "pw", role: "carrier", country_code: "1" }] },
        routes: { file: "routes.yaml", watch: false },
        webhooks: { timeout_ms: 2000, allow_private: ["127.0.0.0/8"] },
        admin: { listen: "127.0.0.1:0" },
        state_dir: "state",
        log: { level: "info" },
      }),
    );
    const first = await serve(cfg);
    const esme1 = await connectEsme(smppPort);
    expect((await esme1.bind("bind_transceiver", "smsc-a", "pw")).command_status).toBe(0);
    // parts 1 and 3 of each 3-part message, all answered ESME_ROK
    const statuses = await Promise.all(Array.from({ length: N }, (_, i) => part(esme1, to(i), 100 + i, 3, 1, `m${i} one, `)));
    for (let i = 0; i < N; i++) statuses.push(await part(esme1, to(i), 100 + i, 3, 3, "three."));
    expect(statuses.every((s) => s === 0)).toBe(true);
    expect(hits).toEqual([]);
    const journal = join(dir, "state", "sms-parts.journal");
    expect(existsSync(journal) && statSync(journal).size > 0).toBe(true);

    first.child.kill("SIGKILL");
    await first.exited;
    await esme1.close().catch(() => undefined);

    const second = await serve(cfg);
    expect(second.out()).toContain("reassembly journal replayed");
    const esme2 = await connectEsme(smppPort);
    expect((await esme2.bind("bind_transceiver", "smsc-a", "pw")).command_status).toBe(0);
    for (let i = 0; i < N; i++) expect(await part(esme2, to(i), 100 + i, 3, 2, "two, ")).toBe(0);
    await waitFor(() => (hits.length >= N ? true : undefined), 20_000);
    const texts = new Map(hits.map((h) => [h.body.to, h.body]));
    for (let i = 0; i < N; i++) {
      const b = texts.get(`+1${to(i)}`);
      expect(b, `message ${i}`).toMatchObject({ text: `m${i} one, two, three.`, parts: 3 });
      expect(b!.partial).toBeUndefined();
    }
    expect(hits).toHaveLength(N);
    await esme2.close();
    second.child.kill("SIGTERM");
    await second.exited;
  }, 90_000);

  it("a message completed but not delivered before a SIGKILL is delivered whole after the restart, with no retry from the peer", async () => {
    const sub = join(dir, "second");
    mkdirSync(sub);
    writeRoutes(sub, { "+1512555*": { tenant: "t1", sms: { webhook: hook } } });
    const smppPort = await freePort();
    const cfg = join(sub, "didgate.yaml");
    writeFileSync(
      cfg,
      YAML.stringify({
        sip: { listen: [] },
        smpp: { listen: `127.0.0.1:${smppPort}`, accounts: [{ system_id: "smsc-a", password: "pw", role: "carrier", country_code: "1" }], reassembly: { timeout_s: 2 } },
        routes: { file: "routes.yaml", watch: false },
        webhooks: { timeout_ms: 2000, allow_private: ["127.0.0.0/8"] },
        admin: { listen: "127.0.0.1:0" },
        state_dir: "state",
      }),
    );
    failing.add("+15125550199");
    const first = await serve(cfg);
    const esme = await connectEsme(smppPort);
    expect((await esme.bind("bind_transceiver", "smsc-a", "pw")).command_status).toBe(0);
    expect(await part(esme, "5125550199", 7, 2, 1, "kept ")).toBe(0);
    // the receiver is down: the final part is answered with a temporary failure
    expect(await part(esme, "5125550199", 7, 2, 2, "whole.")).not.toBe(0);
    first.child.kill("SIGKILL");
    await first.exited;
    await esme.close().catch(() => undefined);
    failing.clear();
    // the peer never retries; the restarted didgate sweeps the complete buffer and delivers it
    const second = await serve(cfg);
    const h = await waitFor(() => hits.find((x) => x.body.to === "+15125550199"), 20_000);
    expect(h.body).toMatchObject({ text: "kept whole.", parts: 2 });
    expect(h.body.partial).toBeUndefined();
    second.child.kill("SIGTERM");
    await second.exited;
  }, 60_000);
});
