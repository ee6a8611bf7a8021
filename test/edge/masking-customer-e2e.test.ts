/**
 * A customer (the tenant's PBX, `sip.customers`) calling a pool number follows the masking
 * session like a carrier's call: real redis-server (routes, sessions), sipp as the PBX on
 * 127.0.0.5, as party B's carrier on 127.0.0.3 and as the pool number's own route (an IVR) on
 * 127.0.0.4. The PBX's extension A (a number of the tenant, its caller ID checked as owned)
 * reaches B with the proxy number as caller; a caller of the PBX without a session reaches the
 * number's own route, or 404 on a pool number without one (not the outbound table); refused
 * calls give back their max_calls slot.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { jsonlRecords, receivedText, redisRoutes } from "./masking-util.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { freePort, killAllSipp, sippReady } from "../helpers/sipp.js";
import { ok, startUac, startUas } from "./sip-util.js";

const PBX_IP = "127.0.0.5";
const B_IP = "127.0.0.3";
const IVR_IP = "127.0.0.4";
/** Extensions of the PBX: numbers of tenant acme (caller_id: owned). */
const A = "+15125550101";
const OTHER = "+15125550102";
const B = "+15125551002";
const PROXY = "+15125550200";
/** A pool number without a route of its own, inside the outbound table's reach. */
const BARE = "+15125550300";


describe("customer calls to pool numbers (sipp PBX, real Redis)", () => {
  let redis: TestRedis;
  let app: Didgate;
  let udp = 0;
  let PB = 0;
  let PIVR = 0;
  let dir = "";
  let session = "";

  beforeAll(async () => {
    redis = await startRedis();
    PB = await freePort(B_IP);
    PIVR = await freePort(IVR_IP);
    dir = tempDir();
    writeRoutes(dir, {});
    const set = redisRoutes(redis.url);
    // every +1512555… number off-net through carrier-b: a pool number must not go there
    await set("set", "--outbound", "+1512555*", '{"voice":["carrier-b"]}');
    for (const n of [A, OTHER]) await set("set", n, JSON.stringify({ tenant: "acme", voice: { targets: ["sip:desk@127.0.0.9:9"] } }));
    await set("set", PROXY, JSON.stringify({ tenant: "acme", voice: { targets: [`sip:ivr@${IVR_IP}:${PIVR}`] } }));
    const port = await freePort();
    app = (
      await startApp(
        {
          sip: {
            listen: [`udp://127.0.0.1:${port}`],
            timers: { t1_ms: 30 },
            trunks: [{ name: "carrier-b", sources: [B_IP], country_code: "1", cps: 1000, termination: `sip:${B_IP}:${PB}` }],
            // one call at a time: a slot a refused masked call kept would refuse the next call
            customers: [{ name: "pbx", tenant: "acme", sources: [PBX_IP], country_code: "1", caller_id: "owned", cps: 1000, max_calls: 1 }],
          },
          routes: { file: "routes.yaml", redis: { url: redis.url, snapshot: "" } },
          masking: {
            pools: [
              { name: "ride", tenant: "acme", numbers: [PROXY] },
              { name: "bare", tenant: "acme", numbers: [BARE] },
            ],
          },
          records: { jsonl: { path: "cdr.jsonl" } },
          state_dir: dir,
        },
        dir,
      )
    ).app;
    udp = app.voice!.listeners.find((l) => l.transport === "udp")!.port;
    const r = await app.masking!.create("ride", A, B, 600_000);
    if (!r.ok) throw new Error(r.code);
    session = r.session.id;
  }, 30_000);

  afterAll(async () => {
    await killAllSipp();
    await app?.stop(0);
    await redis?.stop();
  });

  const records = (): Array<Record<string, unknown>> => jsonlRecords(join(dir, "cdr.jsonl"));

  it("a PBX caller without a session on a pool number without a route: 404 (twice), not the outbound table", async () => {
    for (let i = 0; i < 2; i++) {
      const uac = await startUac("uac_final.xml", "udp", udp, { service: BARE, caller: A, ip: PBX_IP, subst: { CODE: "404" } });
      await ok(uac, "PBX");
      expect(uac.receivedResponses().find((m) => m.status === 404)!.reason).toBe("Not Found (no masking session for this caller)");
    }
  });

  it("extension A calls the proxy number: B's carrier gets the call from the proxy number, nothing names A (after the refusals: their slots were freed)", async () => {
    const uas = startUas("uas_answer.xml", "udp", PB, {}, 20, B_IP);
    await sippReady();
    const uac = await startUac("uac_call.xml", "udp", udp, { service: PROXY, caller: A, ip: PBX_IP });
    await ok(uas, "B");
    await ok(uac, "PBX");
    const inv = uas.received("INVITE")[0]!;
    expect(inv.requestUri).toBe(`sip:${B}@${B_IP}:${PB}`);
    expect(inv.get("from")).toMatch(new RegExp(`^<sip:\\${PROXY}@127\\.0\\.0\\.1;user=phone>;tag=`));
    expect(inv.get("p-asserted-identity")).toBe(`<tel:${PROXY}>`);
    expect(uas.received("BYE")[0]!.get("from")).toContain(PROXY);
    expect(receivedText(uas)).not.toContain(A.slice(2));
    const rec = await waitFor(() => records().find((r) => r.session_id === session && r.caller === A), 5000);
    expect(rec).toMatchObject({ direction: "masked", customer: "pbx", did: PROXY, callee: B, tenant: "acme", final_code: 200 });
  });

  it("another extension (no session) calling the proxy number reaches its own route (the IVR), not B", async () => {
    const ivr = startUas("uas_answer.xml", "udp", PIVR, {}, 20, IVR_IP);
    await sippReady();
    const uac = await startUac("uac_call.xml", "udp", udp, { service: PROXY, caller: OTHER, ip: PBX_IP });
    await ok(ivr, "IVR");
    await ok(uac, "PBX");
    expect(ivr.received("INVITE")[0]!.requestUri).toBe(`sip:ivr@${IVR_IP}:${PIVR}`);
    const kinds = (await app.registry.getMetricsAsJSON()).find((m) => m.name === "didgate_masking_routed_total")!.values;
    expect(kinds.find((v) => v.labels.kind === "call" && v.labels.result === "own_route")?.value).toBe(1);
  });
});
