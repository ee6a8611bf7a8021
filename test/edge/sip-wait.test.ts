/**
 * sip.timers.wait_ms through a running didgate: a finished transaction stays that long (5 s by
 * default, not the RFCs' 32 s), read from the config by the stack the edge runs.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { startApp, tempDir, waitFor, writeRoutes, makeConfig } from "../helpers/app.js";
import { freePort } from "../helpers/sipp.js";
import { Peer, request, sleep } from "./udp-peer.js";

async function serverTransactions(app: Didgate): Promise<number> {
  const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === "didgate_sip_transactions");
  return ((m?.values ?? []) as Array<{ value: number; labels: Record<string, string> }>).filter((v) => v.labels.side === "server").reduce((a, v) => a + v.value, 0);
}

describe("sip.timers.wait_ms", () => {
  let app: Didgate;
  let port: number;
  let carrier: Peer;

  beforeAll(async () => {
    carrier = await Peer.start("127.0.0.1");
    const dir = tempDir();
    port = await freePort();
    writeRoutes(dir, {});
    app = (
      await startApp(
        {
          sip: {
            listen: [`udp://127.0.0.1:${port}`],
            timers: { t2_ms: 200, wait_ms: 400 },
            trunks: [{ name: "carrier", sources: ["127.0.0.1"], country_code: "1" }],
          },
          routes: { file: "routes.yaml", watch: false },
        },
        dir,
      )
    ).app;
  });
  afterAll(async () => {
    await app?.stop(0);
    await carrier?.close();
  });

  it("defaults to 5 s", () => {
    expect(makeConfig({}, tempDir()).config.sip.timers.wait_ms).toBe(5000);
  });

  it("a finished transaction ends after wait_ms (T1 500 ms would keep it 32 s)", async () => {
    carrier.send(port, request("OPTIONS", `sip:127.0.0.1:${port}`, carrier, { callId: "wait-1" }));
    await waitFor(() => carrier.got.find((m) => m.callId === "wait-1" && m.status === 200));
    expect(await serverTransactions(app)).toBe(1);
    await sleep(800);
    expect(await serverTransactions(app)).toBe(0);
  });
});
