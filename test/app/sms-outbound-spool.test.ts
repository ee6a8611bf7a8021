/**
 * Outbound SMS in spool mode (real redis-server): an app's submit_sm is answered ESME_ROK once it
 * is in the Redis spool, and no acknowledged message is lost when didgate is killed with SIGKILL
 * while the queue drains at the bind's tps: after a restart (same instance_id: it re-reads its own
 * pending entries) every message reaches the SMSC (npm smpp server). didgate runs as a child
 * process from dist/ (npm run build first). Opt-outs are read from Redis (shared by edges).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Redis } from "ioredis";
import YAML from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { tempDir, waitFor } from "../helpers/app.js";
import { freePort, startRedis, type TestRedis } from "../helpers/redis.js";
import { connectEsme, startSmsc, type SmppPdu, type TestEsme, type TestSmsc } from "../helpers/smsc.js";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "dist/src/cli.js");
const NODE = join(ROOT, "node_modules/.bin/node");

let redis: TestRedis;
let client: Redis;
let smsc: TestSmsc;
let slow: TestSmsc;
let smppPort: number;
let apiPort: number;
const ACME = "acme-token-0123456789abcdef";
let cfgPath: string;
let child: ChildProcess | undefined;
let esme: TestEsme | undefined;

function startDidgate(): ChildProcess {
  // its log (JSON lines) goes to didgate.log beside the config, to read when a case fails
  const c = spawn(NODE, [CLI, "serve", "--config", cfgPath], { stdio: ["ignore", openSync(join(dirname(cfgPath), "didgate.log"), "a"), "pipe"] });
  c.stderr!.on("data", (d: Buffer) => process.stderr.write(d));
  return c;
}

async function kill9(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once("exit", () => r()));
  c.kill("SIGKILL");
  await exited;
}

async function bindApp(): Promise<TestEsme> {
  return waitFor(async () => {
    let e: TestEsme;
    try {
      e = await connectEsme(smppPort);
    } catch {
      return undefined;
    }
    const r = await e.bind("bind_transceiver", "app-1", "pw-a");
    if (r.command_status === 0) return e;
    await e.close();
    return undefined;
  }, 20_000, 200);
}

const texts = (s: TestSmsc): string[] =>
  s.received.filter((p) => p.command === "submit_sm").map((p: SmppPdu) => String((p.short_message as { message: string }).message));

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  const w = new RedisRouteWriter(client, { prefix: "didgate:", streamMaxlen: 10_000 });
  await w.set("+15125550100", { tenant: "acme", sms: { webhook: "http://127.0.0.1:9/in" } });
  await w.setOutbound("+44*", { sms: ["smsc-b"] });
  await w.setOutbound("+33*", { sms: ["smsc-slow"] });
  smsc = await startSmsc({ idPrefix: "s" });
  slow = await startSmsc({ idPrefix: "p" });
  smppPort = await freePort();
  apiPort = await freePort();
  const dir = tempDir();
  cfgPath = join(dir, "didgate.yaml");
  writeFileSync(
    cfgPath,
    YAML.stringify({
      instance_id: "edge-out-1",
      state_dir: dir,
      log: { level: "warn" },
      admin: { listen: "127.0.0.1:0" },
      sip: { listen: [] },
      routes: { redis: { url: redis.url, snapshot: "" } },
      api: { listen: `127.0.0.1:${apiPort}`, tokens: [{ token: ACME, tenant: "acme" }] },
      smpp: {
        listen: `127.0.0.1:${smppPort}`,
        accounts: [{ system_id: "app-1", password: "pw-a", role: "app", tenant: "acme", country_code: "1" }],
        binds: [
          { name: "smsc-b", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", tps: 100, reconnect_min_s: 0.2, reconnect_max_s: 1 },
          { name: "smsc-slow", host: "127.0.0.1", port: slow.port, system_id: "didgate", password: "pw", tps: 10, reconnect_min_s: 0.2, reconnect_max_s: 1 },
        ],
      },
    }),
  );
}, 60_000);

afterAll(async () => {
  await esme?.close();
  if (child) await kill9(child);
  await smsc?.close();
  await slow?.close();
  client?.disconnect();
  await redis?.stop();
});

describe("outbound messages in the Redis spool", () => {
  it("SIGKILL while 1,000 acknowledged messages drain at 100 tps: after a restart all 1,000 reach the SMSC", async () => {
    child = startDidgate();
    esme = await bindApp();
    const n = 1000;
    // batches within the account's inbound window
    for (let b = 0; b < n; b += 50) {
      const rs = await Promise.all(
        Array.from({ length: Math.min(50, n - b) }, (_, k) =>
          esme!.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: "447700900100", dest_addr_ton: 1, short_message: `dur ${b + k}` }),
        ),
      );
      expect(rs.map((r) => r.command_status)).toEqual(rs.map(() => 0));
    }
    // some arrived, most still queued (100 tps: 10 s for all): kill now
    await waitFor(() => texts(smsc).length >= 20, 20_000);
    await kill9(child);
    await esme.close();
    esme = undefined;
    const beforeRestart = texts(smsc).length;
    expect(beforeRestart).toBeLessThan(n);
    child = startDidgate();
    await waitFor(() => new Set(texts(smsc)).size >= n, 60_000, 100);
    const all = texts(smsc);
    const unique = new Set(all);
    for (let i = 0; i < n; i++) expect(unique.has(`dur ${i}`)).toBe(true);
    const duplicates = all.length - unique.size;
    console.log(`outbound spool SIGKILL: ${n} acknowledged, ${beforeRestart} at the SMSC before the kill, ${unique.size} unique after restart, ${duplicates} duplicates`);
    // at least once: only the message the SMSC took in the instant before the kill (before didgate
    // stored that it was sent) is sent again
    expect(duplicates).toBeLessThanOrEqual(2);
  }, 120_000);

  it("a bind limited to 10 tps takes 100 queued messages at that rate (the SMSC's receive times)", async () => {
    child ??= startDidgate();
    esme ??= await bindApp();
    const n = 100;
    for (let b = 0; b < n; b += 50) {
      const rs = await Promise.all(
        Array.from({ length: 50 }, (_, k) => esme!.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: `3361000${String(b + k).padStart(4, "0")}`, dest_addr_ton: 1, short_message: `paced ${b + k}` })),
      );
      expect(rs.map((r) => r.command_status)).toEqual(rs.map(() => 0));
    }
    await waitFor(() => texts(slow).length >= n, 60_000, 100);
    expect(new Set(texts(slow)).size).toBe(n);
    const times = slow.received.filter((p) => p.command === "submit_sm").map((p) => p._at as number).sort((a, b) => a - b);
    // 99 intervals of 100 ms: about 10 s from the first to the last (timer granularity aside)
    expect(times[n - 1]! - times[0]!).toBeGreaterThanOrEqual(99 * 100 * 0.9);
    // no bursts: any 11 consecutive arrivals span about a second
    for (let i = 10; i < n; i++) expect(times[i]! - times[i - 10]!).toBeGreaterThanOrEqual(900);
  }, 90_000);

  it("an opt-out recorded in Redis refuses the recipient (ESME_RX_R_APPN)", async () => {
    child ??= startDidgate();
    esme = await bindApp();
    await client.sadd("didgate:optout:+15125550100", "+447700900999");
    expect((await esme.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: "447700900999", dest_addr_ton: 1, short_message: "x" })).command_status).toBe(0x66);
    await client.srem("didgate:optout:+15125550100", "+447700900999");
    expect((await esme.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: "447700900999", dest_addr_ton: 1, short_message: "x" })).command_status).toBe(0);
  }, 60_000);

  it("HTTP: 202 queued once in the spool; the status history (in Redis) shows it sent", async () => {
    const post = await fetch(`http://127.0.0.1:${apiPort}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${ACME}`, "content-type": "application/json" },
      body: JSON.stringify({ from: "+15125550100", to: "+447700900300", text: "queued over http" }),
    });
    expect(post.status).toBe(202);
    const b = (await post.json()) as { id: string; status: string; parts: number };
    expect(b).toMatchObject({ status: "queued", parts: 1 });
    await waitFor(() => texts(smsc).includes("queued over http"), 20_000);
    const st = await waitFor(async () => {
      const g = await fetch(`http://127.0.0.1:${apiPort}/v1/messages/${b.id}`, { headers: { authorization: `Bearer ${ACME}` } });
      const j = (await g.json()) as { status: string; history: { status: string }[] };
      return j.status === "sent" ? j : undefined;
    }, 10_000);
    expect(st.history.map((h) => h.status)).toEqual(["queued", "sent"]);
    expect(await client.exists(`didgate:msg:${b.id}`)).toBe(1);
  }, 60_000);

  it("a carrier receipt that comes after a SIGKILL and restart still reaches the app with its id, and the record says delivered", async () => {
    child ??= startDidgate();
    esme ??= await bindApp();
    const r = await esme.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: "447700900400", dest_addr_ton: 1, short_message: "receipt later", registered_delivery: 1 });
    expect(r.command_status).toBe(0);
    const appId = String(r.message_id).replace(/\0+$/, "");
    const p = await waitFor(() => smsc.received.find((x) => x.command === "submit_sm" && x.destination_addr === "447700900400"), 20_000);
    const smscId = `s${smsc.received.filter((x) => x.command === "submit_sm").indexOf(p) + 1}`;
    // didgate has taken the carrier's answer (its id is in Redis): a kill before that would send it
    // again after the restart (at least once) and this receipt would be for the first copy
    await waitFor(async () => (await client.exists(`didgate:smsout:smsc-b:${smscId}`)) === 1, 20_000);
    const old = smsc.binds.at(-1)!.session;
    await kill9(child!);
    await esme.close();
    child = startDidgate();
    const b = await waitFor(() => (smsc.binds.length > 0 && smsc.binds.at(-1)!.session !== old ? smsc.binds.at(-1) : undefined), 20_000);
    esme = await bindApp();
    const dr = await smsc.send(
      "deliver_sm",
      { source_addr: "447700900400", destination_addr: "15125550100", esm_class: 4, short_message: `id:${smscId} sub:001 dlvrd:001 submit date:2612050800 done date:2612050801 stat:DELIVRD err:000 text:`, receipted_message_id: smscId, message_state: 2 },
      b,
    );
    expect(dr.command_status).toBe(0);
    const rc = await waitFor(() => esme!.received.find((x) => x.command === "deliver_sm" && String(x.receipted_message_id).replace(/\0+$/, "") === appId), 20_000);
    expect(String((rc.short_message as { message: string }).message)).toMatch(new RegExp(`^id:${appId} .*stat:DELIVRD`));
    const rec = await waitFor(async () => {
      const e = (await client.xrange("didgate:cdr", "-", "+")) as [string, string[]][];
      return e.map(([, f]) => JSON.parse(f[f.indexOf("json") + 1]!)).find((x) => x.smpp_message_id === appId);
    }, 20_000);
    expect(rec).toMatchObject({ direction: "outbound", status: "delivered", tenant: "acme", target: "smsc-b", carrier_message_ids: [smscId] });
  }, 90_000);

  it("a spool entry re-read after a crash is not sent again when a carrier had accepted it (its note in Redis)", async () => {
    if (child) await kill9(child);
    await esme?.close();
    esme = undefined;
    const job = (id: string, text: string) =>
      JSON.stringify({
        id,
        body: { type: "message.outbound", id, submitted_at: new Date().toISOString(), from: "+15125550100", to: "+447700900500", text, encoding: "gsm7", parts: 1, tenant: "acme", account: "app-1", route: ["smsc-b"] },
        target: { smpp: "smsc-b" },
        acceptedAt: Date.now(),
        attempts: 0,
      });
    // as a crash leaves them: in the stream, one already accepted by the carrier (noted), one not
    await client.set("didgate:smsout:job:msg_noted", "smsc-b");
    await client.xadd("didgate:inbound", "*", "j", job("msg_noted", "noted before the crash"));
    await client.xadd("didgate:inbound", "*", "j", job("msg_fresh", "not sent before the crash"));
    child = startDidgate();
    await waitFor(() => texts(smsc).includes("not sent before the crash"), 30_000);
    await waitFor(async () => (await client.xlen("didgate:inbound")) === 0, 30_000);
    expect(texts(smsc)).not.toContain("noted before the crash");
  }, 60_000);
});
