/**
 * Call detail records end to end: sipp carrier -> didgate -> sipp PBX, records read back from the
 * Redis stream <prefix>cdr (real redis-server): an answered call with its billable time and who
 * hung up, a failed call, a cancelled call, and calls made while Redis is down (their records
 * appear once it is back).
 */
import { createServer, type Server } from "node:http";
import { Redis } from "ioredis";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { freePort, killAllSipp } from "../helpers/sipp.js";
import { startUac, startUas, ok } from "./sip-util.js";

let redis: TestRedis;
let client: Redis;
let app: Didgate;
let udp = 0;
const P: Record<string, number> = {};
const HOOK_SECRET = "whsec_" + Buffer.from("billing receiver secret").toString("base64");
let hookServer: Server;
const hooks: { headers: Record<string, string>; body: string }[] = [];

async function cdrOf(callId: string): Promise<Record<string, any>> {
  return waitFor(async () => {
    const entries = (await client.xrange("cdr:cdr", "-", "+").catch(() => [])) as [string, string[]][];
    for (const [, f] of entries) {
      const j = JSON.parse(f[f.indexOf("json") + 1]!);
      if (j.call_id === callId) return j;
    }
    return undefined;
  }, 15_000);
}

beforeAll(async () => {
  redis = await startRedis({ persistence: true });
  client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  client.on("error", () => undefined);
  for (const n of ["ans", "busy", "ring", "down"]) P[n] = await freePort();
  const w = new RedisRouteWriter(client, { prefix: "cdr:", streamMaxlen: 1000 });
  const t = (port: number) => ({ tenant: "acme", voice: { targets: [`sip:pbx@127.0.0.1:${port}`] } });
  await w.set("+15125550101", t(P.ans!));
  await w.set("+15125550102", t(P.busy!));
  await w.set("+15125550103", t(P.ring!));
  await w.set("+15125550104", t(P.down!));
  const dir = tempDir();
  udp = await freePort();
  hookServer = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      hooks.push({ headers: req.headers as Record<string, string>, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hookServer.listen(0, "127.0.0.1", r));
  const hookUrl = `http://127.0.0.1:${(hookServer.address() as { port: number }).port}/calls`;
  ({ app } = await startApp(
    {
      sip: { listen: [`udp://127.0.0.1:${udp}`], trunks: [{ name: "carrier-a", sources: ["127.0.0.1"], country_code: "1" }], timers: { t1_ms: 50 } },
      routes: { redis: { url: redis.url, prefix: "cdr:", snapshot: "" } },
      state_dir: dir,
      instance_id: "edge-cdr",
      records: { webhook: { url: hookUrl, secret: HOOK_SECRET } },
      webhooks: { allow_private: ["127.0.0.1/32"] },
    },
    dir,
  ));
}, 30_000);

afterAll(async () => {
  await app?.stop(0);
  killAllSipp();
  client?.disconnect();
  await redis?.stop();
  hookServer?.close();
});

describe("call detail records", () => {
  it("an answered call: one record with setup and billable time, and the caller hanging up", async () => {
    const uas = startUas("uas_answer.xml", "udp", P.ans!);
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550101", caller: "+447700900123" });
    await ok(uac, "carrier");
    await ok(uas, "pbx");
    const callId = uac.trace().find((x) => x.dir === "sent")!.msg.callId!;
    const r = await cdrOf(callId);
    expect(r).toMatchObject({ type: "call", direction: "inbound", trunk: "carrier-a", tenant: "acme", did: "+15125550101", caller: "+447700900123", route_key: "+15125550101", final_code: 200, outcome: "routed", hangup: "caller", end_reason: "bye", edge: "edge-cdr" });
    // the scenario pauses 200 ms between ACK and BYE: billable time is about that (loopback, loaded machine)
    expect(r.billable_ms).toBeGreaterThanOrEqual(150);
    expect(r.billable_ms).toBeLessThan(5000);
    expect(r.setup_ms).toBeGreaterThanOrEqual(0);
    expect(Date.parse(r.end_at) - Date.parse(r.answer_at)).toBe(r.billable_ms);
    expect(r.targets).toEqual([{ uri: `sip:pbx@127.0.0.1:${P.ans}`, result: "200" }]);
    // the same record as a signed call.completed webhook, and in the tenant's minutes
    const hook = await waitFor(() => hooks.find((h) => h.body.includes(callId)), 10_000);
    const body = new Webhook(HOOK_SECRET).verify(hook.body, hook.headers) as { type: string; data: Record<string, unknown> };
    expect(body.type).toBe("call.completed");
    expect(body.data).toMatchObject({ id: r.id, call_id: callId, tenant: "acme", billable_ms: r.billable_ms });
    const metrics = await app.registry.metrics();
    const secs = Number(/didgate_tenant_call_seconds_total\{tenant="acme",direction="inbound"\} ([\d.]+)/.exec(metrics)?.[1]);
    expect(secs).toBeGreaterThanOrEqual(r.billable_ms / 1000);
    const entries = (await client.xrange("cdr:cdr", "-", "+")) as [string, string[]][];
    expect(entries.filter(([, f]) => JSON.parse(f[f.indexOf("json") + 1]!).call_id === callId)).toHaveLength(1);
  });

  it("a failed call and a cancelled call have theirs", async () => {
    const busy = startUas("uas_final.xml", "udp", P.busy!, { CODE: "486", REASON: "Busy Here" });
    const u1 = await startUac("uac_final.xml", "udp", udp, { service: "+15125550102", subst: { CODE: "486" } });
    await ok(u1, "carrier (busy)");
    await ok(busy, "pbx (busy)");
    const r1 = await cdrOf(u1.trace().find((x) => x.dir === "sent")!.msg.callId!);
    expect(r1).toMatchObject({ final_code: 486, outcome: "failed", billable_ms: 0, hangup: "none", answer_at: null });
    const ring = startUas("uas_ring_cancel.xml", "udp", P.ring!);
    const u2 = await startUac("uac_cancel.xml", "udp", udp, { service: "+15125550103" });
    await ok(u2, "carrier (cancel)");
    await ok(ring, "pbx (cancel)");
    const r2 = await cdrOf(u2.trace().find((x) => x.dir === "sent")!.msg.callId!);
    expect(r2).toMatchObject({ final_code: 487, outcome: "cancelled", billable_ms: 0, hangup: "none" });
    expect(r2.provisional_at).not.toBeNull();
  });

  it("loses no record while Redis is down: they appear when it is back", async () => {
    await redis.kill();
    const uas = startUas("uas_answer.xml", "udp", P.down!);
    const uac = await startUac("uac_call.xml", "udp", udp, { service: "+15125550104" });
    await ok(uac, "carrier");
    await ok(uas, "pbx");
    const callId = uac.trace().find((x) => x.dir === "sent")!.msg.callId!;
    expect(app.records!.pending).toBeGreaterThan(0);
    await redis.restart();
    const r = await cdrOf(callId);
    expect(r).toMatchObject({ final_code: 200, hangup: "caller", did: "+15125550104" });
  });
});
