/**
 * The admin listener is bounded: headers trickled a byte at a time are cut off at the headers
 * timeout (not kept alive per byte), and connections beyond maxConnections are closed at once.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { AdminServer } from "../../src/ops/admin.js";
import { createLogger } from "../../src/ops/logger.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function start(limits: ConstructorParameters<typeof AdminServer>[1]): Promise<number> {
  const a = new AdminServer(
    { registry: new Registry(), logger: createLogger("silent"), readiness: () => ({ ready: true, checks: {} }), lookup: () => ({ ok: false, error: "x" }) },
    limits,
  );
  const addr = await a.listen("127.0.0.1", 0);
  cleanup.push(() => a.close());
  return addr.port;
}

function conn(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.on("error", reject);
    cleanup.push(() => void s.destroy());
  });
}

describe("admin listener bounds", () => {
  it("closes a connection that trickles its headers after the headers timeout", async () => {
    const port = await start({ headersTimeoutMs: 800 });
    const s = await conn(port);
    const t0 = Date.now();
    s.write("GET /metrics HTTP/1.1\r\n");
    const timer = setInterval(() => s.write("X"), 100);
    const closedAfter = await new Promise<number>((r) => {
      s.on("close", () => r(Date.now() - t0));
      s.on("error", () => {});
      setTimeout(() => r(-1), 5000);
    });
    clearInterval(timer);
    expect(closedAfter).toBeGreaterThan(600);
    expect(closedAfter).toBeLessThan(3000);
  });

  it("closes connections beyond maxConnections at once", async () => {
    const port = await start({ maxConnections: 5 });
    const socks: net.Socket[] = [];
    for (let i = 0; i < 10; i++) socks.push(await conn(port));
    await sleep(300);
    expect(socks.filter((s) => !s.destroyed && s.readyState === "open").length).toBeLessThanOrEqual(5);
  });
});
