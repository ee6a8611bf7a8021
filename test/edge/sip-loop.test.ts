/**
 * Loop detection (RFC 3261 16.3 step 4): a route file whose target is didgate itself is refused at
 * load; a route that names didgate itself arriving at run time (as from Redis) gets 482 at once;
 * two edges routing a number to each other stop at the second pass with 482 (our Via with the same
 * loop hash), not after ten hops.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { parseRoute, type Route } from "../../src/routing/route.js";
import { RouteTable } from "../../src/routing/table.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";
import { freePort } from "../helpers/sipp.js";
import { Peer, request, sleep } from "./udp-peer.js";

async function metric(app: Didgate, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === name);
  let sum = 0;
  for (const v of (m?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>) {
    if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value;
  }
  return sum;
}

const sip = (port: number) => ({ listen: [`udp://127.0.0.1:${port}`], timers: { t1_ms: 50 }, trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }] });

describe("SIP loop detection", () => {
  const apps: Didgate[] = [];
  let carrier: Peer;

  beforeAll(async () => {
    carrier = await Peer.start();
  });
  afterAll(async () => {
    for (const a of apps) await a.stop(0);
    await carrier.close();
  });

  it("refuses at load a route file whose target is didgate's own listener, naming the route", async () => {
    const dir = tempDir();
    const port = await freePort();
    writeRoutes(dir, {
      "+15125550100": { voice: { targets: ["sip:+15125550100@127.0.0.9:5060"] } },
      "+15125550101": { voice: { targets: [`sip:+15125550101@127.0.0.1:${port}`] } },
      "+15125550102": { voice: { targets: ["sip:+15125550102@127.0.0.9:5060"], callers: [{ match: "+44*", targets: [`sip:x@localhost:${port}`] }] } },
    });
    const err = await startApp({ sip: sip(port), routes: { file: "routes.yaml", watch: false } }, dir).then(
      (r) => (apps.push(r.app), null),
      (e: Error) => e,
    );
    expect(err).not.toBeNull();
    expect(err!.message).toContain(`+15125550101: voice target sip:+15125550101@127.0.0.1:${port} is didgate itself`);
    expect(err!.message).toContain(`+15125550102: voice target sip:x@localhost:${port} is didgate itself`);
    expect(err!.message).not.toContain("+15125550100");
  });

  it("a route that points at didgate itself at run time (Redis) gets 482 at once, one INVITE only", async () => {
    const dir = tempDir();
    const port = await freePort();
    writeRoutes(dir, {});
    const app = (await startApp({ sip: sip(port), routes: { file: "routes.yaml", watch: false } }, dir)).app;
    apps.push(app);
    const r = parseRoute("+15125550200", { voice: { targets: [`sip:+15125550200@127.0.0.1:${port}`] } });
    if (!r.ok) throw new Error(r.errors.join());
    app.store.swap(RouteTable.build<Route>([["+15125550200", r.route]]));
    carrier.send(port, request("INVITE", `sip:+15125550200@127.0.0.1:${port}`, carrier, { callId: "self-loop" }));
    const fin = await waitFor(() => carrier.got.find((m) => m.callId === "self-loop" && m.status >= 200));
    expect(fin.status).toBe(482);
    await sleep(200);
    expect(await metric(app, "didgate_sip_requests_total", { method: "INVITE" })).toBe(1);
    expect(await metric(app, "didgate_calls_total", { outcome: "loop" })).toBe(1);
  });

  it("two edges routing a number to each other: 482 on the second pass, not ten hops", async () => {
    const pa = await freePort();
    const pb = await freePort();
    const da = tempDir();
    const db = tempDir();
    writeRoutes(da, { "+15125550300": { voice: { targets: [`sip:+15125550300@127.0.0.1:${pb}`] } } });
    writeRoutes(db, { "+15125550300": { voice: { targets: [`sip:+15125550300@127.0.0.1:${pa}`] } } });
    const a = (await startApp({ sip: sip(pa), routes: { file: "routes.yaml", watch: false } }, da)).app;
    apps.push(a);
    const b = (await startApp({ sip: sip(pb), routes: { file: "routes.yaml", watch: false } }, db)).app;
    apps.push(b);
    carrier.send(pa, request("INVITE", `sip:+15125550300@127.0.0.1:${pa}`, carrier, { callId: "two-edge-loop" }));
    const fin = await waitFor(() => carrier.got.find((m) => m.callId === "two-edge-loop" && m.status >= 200));
    expect(fin.status).toBe(482);
    await sleep(200);
    // the carrier's INVITE and the one that came back from B; B saw one
    expect(await metric(a, "didgate_sip_requests_total", { method: "INVITE" })).toBe(2);
    expect(await metric(b, "didgate_sip_requests_total", { method: "INVITE" })).toBe(1);
    expect(await metric(a, "didgate_calls_total", { outcome: "loop" })).toBe(1);
  });
});
