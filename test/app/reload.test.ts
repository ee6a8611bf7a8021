/** SIGHUP reload: what can change live is applied, what cannot is refused and keeps its value. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { afterEach, describe, expect, it } from "vitest";
import { Didgate } from "../../src/app.js";
import { loadConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/ops/logger.js";
import { tempDir, writeRoutes } from "../helpers/app.js";
import { connectEsme, type TestEsme } from "../helpers/smsc.js";

let app: Didgate | undefined;
const esmes: TestEsme[] = [];
afterEach(async () => {
  for (const e of esmes.splice(0)) await e.close();
  await app?.stop(500);
  app = undefined;
});

describe("config reload", () => {
  it("applies log level and SMPP accounts live, refuses listen changes, keeps running on a broken file", async () => {
    const dir = tempDir();
    writeRoutes(dir, { "*": { sms: { webhook: "http://127.0.0.1:1/x" } } });
    const file = join(dir, "didgate.yaml");
    const base = {
      sip: { listen: [] },
      smpp: { listen: "127.0.0.1:0", accounts: [{ system_id: "old", password: "pw1", role: "carrier" }] },
      routes: { file: "routes.yaml" },
      admin: { listen: "127.0.0.1:0" },
      log: { level: "silent" },
    };
    writeFileSync(file, YAML.stringify(base));
    app = new Didgate(loadConfig(file, {}), { logger: createLogger("silent") });
    await app.start();
    const port = app.smpp!.address()!.port;

    const a = await connectEsme(port);
    esmes.push(a);
    expect((await a.bind("bind_transceiver", "new", "pw2")).command_status).not.toBe(0);

    writeFileSync(
      file,
      YAML.stringify({ ...base, log: { level: "warn" }, admin: { listen: "127.0.0.1:1" }, smpp: { ...base.smpp, accounts: [{ system_id: "new", password: "pw2", role: "carrier" }] } }),
    );
    const r = app.reload();
    expect(r.applied).toContain("log.level");
    expect(r.applied.join(" ")).toContain("smpp.accounts (added 1, changed 0, removed 1)");
    expect(r.refused.join(" ")).toContain("admin.listen");
    expect(app.logger.level).toBe("warn");
    expect(app.config.admin.listen).toBe("127.0.0.1:0");

    const b = await connectEsme(port);
    esmes.push(b);
    expect((await b.bind("bind_transceiver", "new", "pw2")).command_status).toBe(0);
    const c = await connectEsme(port);
    esmes.push(c);
    expect((await c.bind("bind_transceiver", "old", "pw1")).command_status).not.toBe(0);

    writeFileSync(file, "smpp: [\n");
    const bad = app.reload();
    expect(bad.applied).toEqual([]);
    expect(bad.refused[0]).toContain("not valid YAML");
    expect(app.logger.level).toBe("warn");
  });
});
