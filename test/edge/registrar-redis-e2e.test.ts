/**
 * Two didgate edges sharing one Redis (routes.redis): a phone registered on edge 1 is called
 * through edge 2 (which sends the call to edge 1, the edge that holds the phone's NAT binding). Bindings are kept under the configured prefix and expire with the binding.
 */
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import type { TestRedis } from "../helpers/redis.js";
import { freePort } from "../helpers/sipp.js";
import { DOMAIN, PHONE_IP, register, sharedRedis, stopShared } from "./registrar-util.js";
import { ok, startUac, startUas, statuses } from "./sip-util.js";

const PREFIX = "reg:";
let shared: Awaited<ReturnType<typeof sharedRedis>> | undefined;
let redis: TestRedis;
let client: Redis;
const edges: Array<{ app: Didgate; udp: number }> = [];

beforeAll(async () => {
  shared = await sharedRedis(PREFIX);
  ({ redis, client } = shared);
  const w = shared.writer;
  await w.set("+15125550800", { tenant: "acme", voice: { targets: [`sip:dave@${DOMAIN}`] } });
  for (const id of ["edge-1", "edge-2"]) {
    const dir = tempDir();
    const udp = await freePort();
    const { app } = await startApp(
      {
        sip: {
          listen: [`udp://127.0.0.1:${udp}`],
          timers: { t1_ms: 30 },
          auth: { algorithms: ["MD5"], secret: "nonce secret shared by both edges" },
          dialog_secret: "dialog secret shared by both edges",
          trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1", cps: 1000 }],
          registrar: { domain: DOMAIN, users: [{ user: "dave", tenant: "acme", password: "dave-secret" }], min_expires: 1 },
        },
        routes: { redis: { url: redis.url, prefix: PREFIX, snapshot: "" } },
        state_dir: dir,
        instance_id: id,
      },
      dir,
    );
    edges.push({ app, udp });
  }
}, 30_000);

afterAll(() => stopShared(edges, shared));

describe("registrar with two edges on one Redis", () => {
  it("a phone registered on edge 1 is called through edge 2; unregistered on edge 2, edge 1 answers 480", async () => {
    const [e1, e2] = edges as [(typeof edges)[0], (typeof edges)[0]];
    const phone = await freePort(PHONE_IP);
    await ok(register(e1.udp, phone, { user: "dave", pass: "dave-secret", expires: 120, final: 200 }), "REGISTER on edge 1");
    // the binding is in Redis under the prefix, expiring with it
    const aor = `${PREFIX}loc:sip:dave@${DOMAIN}`;
    const ttl = await client.pttl(aor);
    expect(ttl).toBeGreaterThan(100_000);
    expect(ttl).toBeLessThanOrEqual(120_000);
    const seen = await e2.app.voice!.registrar!.bindings("dave");
    expect(seen.map((b) => [b.edge, b.address, b.port])).toEqual([["edge-1", PHONE_IP, phone]]);

    const uas = startUas("uas_answer.xml", "udp", phone, {}, 20, PHONE_IP);
    const uac = await startUac("uac_call.xml", "udp", e2.udp, { service: "+15125550800" });
    await ok(uac, "carrier on edge 2");
    await ok(uas, "phone");
    // through edge 2, then edge 1, which holds the phone's NAT binding (its top Via)
    const vias = uas.received("INVITE")[0]!.getAll("via");
    expect(vias[0]).toContain(`127.0.0.1:${e1.udp}`);
    expect(vias[1]).toContain(`127.0.0.1:${e2.udp}`);

    await ok(register(e2.udp, phone, { user: "dave", pass: "dave-secret", expires: 0, final: 200 }), "unREGISTER on edge 2");
    expect(await client.exists(aor)).toBe(0);
    const gone = await startUac("uac_final.xml", "udp", e1.udp, { service: "+15125550800", subst: { CODE: "480" } });
    await ok(gone, "carrier on edge 1");
    expect(statuses(gone.receivedResponses())).toContain(480);
  }, 60_000);

  it("expiry removes a binding: registered for 3 s, then the DID answers 480 and the Redis keys are gone", async () => {
    const [e1, e2] = edges as [(typeof edges)[0], (typeof edges)[0]];
    await ok(register(e1.udp, await freePort(PHONE_IP), { user: "dave", pass: "dave-secret", expires: 3, final: 200 }), "REGISTER for 3 s");
    expect(await e2.app.voice!.registrar!.bindings("dave")).toHaveLength(1);
    await waitFor(async () => ((await e2.app.voice!.registrar!.bindings("dave")).length === 0 ? true : undefined), 10_000, 100);
    await waitFor(async () => ((await client.exists(`${PREFIX}loc:sip:dave@${DOMAIN}`)) === 0 ? true : undefined), 10_000, 100);
    const gone = await startUac("uac_final.xml", "udp", e2.udp, { service: "+15125550800", subst: { CODE: "480" } });
    await ok(gone, "carrier after expiry");
  }, 60_000);

  it("Redis down: REGISTER answers 500 and a call to the user 480 at once (nothing waits for Redis)", async () => {
    const [e1] = edges as [(typeof edges)[0]];
    await redis.kill();
    try {
      const t0 = Date.now();
      // 401 needs no store; with credentials the REGISTER needs the store: 500
      await ok(register(e1.udp, await freePort(PHONE_IP), { user: "dave", pass: "dave-secret", expires: 120, final: 500 }), "REGISTER with Redis down");
      const call = await startUac("uac_final.xml", "udp", e1.udp, { service: "+15125550800", subst: { CODE: "480" } });
      await ok(call, "carrier with Redis down");
      expect(Date.now() - t0).toBeLessThan(8000);
      expect(await e1.app.registry.getSingleMetricAsString("didgate_registrar_lookups_total")).toMatch(/result="error"} [1-9]/);
    } finally {
      await redis.restart();
    }
  }, 60_000);
});
