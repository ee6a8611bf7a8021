import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import pino from "pino";
import { ApiServer } from "../../src/api/server.js";

const TOKEN = "deadline-test-token-0123456789";
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function get(port: number, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const r = request({ host: "127.0.0.1", port, path, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: Date.now() - t0 }));
    });
    r.on("error", reject);
    r.end();
  });
}

describe("API answer deadline", () => {
  it("answers 503 timeout when a handler takes longer than the request timeout; fast requests leave nothing behind; a route's own handlerTimeout is fastify's", async () => {
    const api = new ApiServer({
      host: "127.0.0.1",
      port: 0,
      tokens: [{ token: TOKEN }],
      rateLimit: { per_s: 1000, burst: 1000 },
      maxConnections: 100,
      requestTimeoutMs: 300,
      longRequestTimeoutMs: 10_000,
      logger: pino({ level: "silent" }),
    });
    await api.init("test");
    let late = 0;
    api.app.get("/v1/stall", async () => {
      await new Promise((r) => setTimeout(r, 1500));
      late++;
      return { ok: true };
    });
    api.app.get("/v1/fast", async () => ({ ok: true }));
    api.app.get("/v1/own", { handlerTimeout: 1000 }, async () => {
      await new Promise((r) => setTimeout(r, 600));
      return { ok: "own" };
    });
    const addr = await api.listen();
    cleanup.push(() => api.close());

    const stalled = await get(addr.port, "/v1/stall");
    expect(stalled.status).toBe(503);
    expect(stalled.headers["retry-after"]).toBe("1");
    expect(JSON.parse(stalled.body)).toEqual({ error: { code: "timeout", message: "the request took too long" } });
    // within the limit plus one sweep (75 ms here), not the handler's 1.5 s
    expect(stalled.ms).toBeGreaterThanOrEqual(290);
    expect(stalled.ms).toBeLessThan(1200);
    expect(late).toBe(0);

    for (let i = 0; i < 20; i++) expect((await get(addr.port, "/v1/fast")).status).toBe(200);
    // a route with a longer handlerTimeout of its own is not cut at 300 ms
    const own = await get(addr.port, "/v1/own");
    expect(own.status).toBe(200);
    expect(JSON.parse(own.body)).toEqual({ ok: "own" });
    expect((api as unknown as { deadlines: { size: number } }).deadlines.size).toBe(0);
  });
});
