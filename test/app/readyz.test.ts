/** /readyz tells the truth: it clears after a fixed routes file, and goes not ready while SMS cannot be accepted. */
import { writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { Didgate } from "../../src/app.js";
import { freePort, startRedis, type TestRedis } from "../helpers/redis.js";
import { startApp, tempDir, waitFor, writeRoutes } from "../helpers/app.js";

let running: Didgate[] = [];
let redis: TestRedis | undefined;
afterEach(async () => {
  await Promise.all(running.map((a) => a.stop(0)));
  running = [];
  await redis?.stop();
  redis = undefined;
});

const readyz = async (admin: string) => {
  const res = await fetch(`${admin}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

describe("/readyz", () => {
  it("drops the old error once the good routes file is back", async () => {
    const dir = tempDir();
    const good = { "+15125550100": { voice: { targets: ["sip:a@h"] } } };
    const file = writeRoutes(dir, good);
    const { app, admin } = await startApp({ routes: { file: "routes.yaml" } }, dir);
    running.push(app);
    expect((await readyz(admin)).body.checks.routes.lastError).toBeUndefined();

    writeFileSync(file, "routes: [\n");
    await waitFor(async () => (await readyz(admin)).body.checks.routes.lastError !== undefined, 10_000);
    // The very same good text as before (an operator reverting the edit).
    writeRoutes(dir, good);
    await waitFor(async () => (await readyz(admin)).body.checks.routes.lastError === undefined, 10_000);
    const r = await readyz(admin);
    expect(r.status).toBe(200);
    expect(r.body.checks.routes.entries).toBe(1);

    // A different good file clears it too.
    writeFileSync(file, "routes: [\n");
    await waitFor(async () => (await readyz(admin)).body.checks.routes.lastError !== undefined, 10_000);
    writeRoutes(dir, { ...good, "*": { voice: { targets: ["sip:d@h"] } } });
    await waitFor(async () => (await readyz(admin)).body.checks.routes.lastError === undefined, 10_000);
    expect((await readyz(admin)).body.checks.routes.entries).toBe(2);
  });

  it("is not ready while the spool's Redis is unreachable, with the reason, and ready again when it is back", async () => {
    redis = await startRedis();
    const dir = tempDir();
    writeRoutes(dir, { "*": { sms: { webhook: "http://127.0.0.1:9/x" } } });
    const smppPort = await freePort();
    const { app, admin } = await startApp(
      {
        routes: { file: "routes.yaml", redis: { url: redis.url, snapshot: "" } },
        smpp: { listen: `127.0.0.1:${smppPort}`, accounts: [{ system_id: "smsc", password: "pw", role: "carrier" }] },
      },
      dir,
    );
    running.push(app);
    await waitFor(async () => (await readyz(admin)).status === 200, 10_000);
    expect((await readyz(admin)).body.checks.delivery).toMatchObject({ mode: "spool", accepting: true });
    const status = (await (await fetch(`${admin}/v1/status`)).json()) as Record<string, any>;
    expect(status).toMatchObject({ ready: true, delivery: { mode: "spool", depth: 0, retry: 0, dead_letters: 0 } });

    await redis.kill();
    const down = await waitFor(async () => {
      const r = await readyz(admin);
      return r.status === 503 ? r : undefined;
    }, 15_000);
    expect(down.body.status).toBe("not ready");
    expect(down.body.reasons.join(" ")).toContain("spool Redis not connected");
    expect(down.body.checks.delivery).toMatchObject({ mode: "spool", accepting: false });
    const downStatus = await fetch(`${admin}/v1/status`);
    expect(downStatus.status).toBe(200);
    expect(((await downStatus.json()) as Record<string, any>).ready).toBe(false);

    await redis.restart();
    await waitFor(async () => (await readyz(admin)).status === 200, 20_000);
  });
});
