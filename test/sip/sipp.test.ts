/**
 * Interop with the real sipp: sipp UAC -> test proxy (built from src/sip) -> sipp UAS.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { TestProxy } from "./proxy.js";
import { cleanupSipp, describeResult, freePort, scenario, startSipp, type SippProcess } from "../helpers/sipp.js";

let proxy: TestProxy | null = null;

afterEach(async () => {
  await cleanupSipp();
  if (proxy) await proxy.close();
  proxy = null;
});

async function metric(reg: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await reg.getMetricsAsJSON()).find((x) => x.name === name);
  if (!m) return 0;
  let sum = 0;
  for (const v of m.values as Array<{ value: number; labels: Record<string, string | number> }>) {
    if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value;
  }
  return sum;
}

interface CallOpts {
  transport: "udp" | "tcp";
  uasScenario: string;
  autoTrying?: boolean;
  dropFirst2xx?: boolean;
}

async function call(o: CallOpts): Promise<{ uac: SippProcess; uas: SippProcess; reg: Registry }> {
  const reg = new Registry();
  const uasPort = await freePort();
  const uacPort = await freePort();
  proxy = await TestProxy.create({
    listen: [`${o.transport}://127.0.0.1:0`],
    target: { transport: o.transport, host: "127.0.0.1", port: uasPort },
    registry: reg,
    autoTrying: o.autoTrying,
    dropFirst2xx: o.dropFirst2xx,
  });
  const t = o.transport === "udp" ? "u1" : "t1";
  const uas = startSipp({
    args: ["-sf", scenario(o.uasScenario), "-i", "127.0.0.1", "-p", String(uasPort), "-t", t, "-m", "1", "-timeout", "15s", "-trace_err"],
    timeoutMs: 20_000,
  });
  await uas.ready;
  const uac = startSipp({
    args: [
      "-sn", "uac", `127.0.0.1:${proxy.port}`, "-s", "service", "-i", "127.0.0.1", "-p", String(uacPort), "-t", t,
      "-m", "1", "-timeout", "15s", "-timeout_error", "-trace_err",
    ],
    timeoutMs: 20_000,
  });
  return { uac, uas, reg };
}

async function expectSuccess(p: SippProcess): Promise<void> {
  const r = await p.done;
  expect(r.code, describeResult(r, p)).toBe(0);
}

describe("sipp interop through a proxy built on the stack", () => {
  for (const transport of ["udp", "tcp"] as const) {
    it(`completes a call over ${transport} (INVITE/100/180/200/ACK/BYE/200) and the UAS sees the proxy's headers`, async () => {
      const { uac, uas, reg } = await call({ transport, uasScenario: "uas_check.xml" });
      await expectSuccess(uac);
      await expectSuccess(uas);
      expect(proxy!.forwardedRequests).toEqual(["INVITE", "BYE"]);
      expect(proxy!.forwardedAcks.length).toBe(1);
      expect(proxy!.forwardedResponses).toEqual([180, 200, 200]);
      expect(await metric(reg, "didgate_sip_messages_total", { direction: "in", transport, kind: "request", method: "INVITE" })).toBe(1);
      expect(await metric(reg, "didgate_sip_messages_total", { direction: "out", transport, kind: "response", code: "100" })).toBe(1);
    });
  }

  it("UDP: absorbs sipp's INVITE retransmissions and retransmits its own INVITE to a slow UAS", async () => {
    // no immediate 100 Trying, and a UAS that waits 1.3 s before answering: sipp (UAC) retransmits
    // its INVITE to the proxy, the proxy retransmits its INVITE to sipp (UAS) on timer A
    const { uac, uas, reg } = await call({ transport: "udp", uasScenario: "uas_slow.xml", autoTrying: false });
    await expectSuccess(uac);
    await expectSuccess(uas);
    expect(proxy!.forwardedRequests).toEqual(["INVITE", "BYE"]);
    expect(await metric(reg, "didgate_sip_retransmissions_total", { direction: "in", kind: "request" })).toBeGreaterThanOrEqual(1);
    expect(await metric(reg, "didgate_sip_retransmissions_total", { direction: "out", kind: "request" })).toBeGreaterThanOrEqual(1);
  });

  it("UDP: a lost 200 OK is recovered from the UAS's retransmission", async () => {
    const { uac, uas } = await call({ transport: "udp", uasScenario: "uas_check.xml", dropFirst2xx: true });
    await expectSuccess(uac);
    await expectSuccess(uas);
    expect(proxy!.dropped).toBe(true);
    expect(proxy!.forwardedResponses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(2);
  });
});
