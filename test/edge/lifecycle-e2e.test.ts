/**
 * The number lifecycle by date, end to end: a carrier (sipp on 127.0.0.2) calls numbers whose
 * route entries carry released_at / port_date; the edge answers 410 for one released 10 days ago
 * (in quarantine) and one released 100 days ago, though both still name a reachable target;
 * `didgate numbers report` on the same config lists the latter as available; didgate_numbers
 * counts every state, follows a new routes file, and moves by time alone.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import type { Didgate } from "../../src/app.js";
import { main } from "../../src/cli/index.js";
import { startApp, tempDir, waitFor } from "../helpers/app.js";
import { freePort, killAllSipp, sippReady } from "../helpers/sipp.js";
import { ok, startUac, startUas } from "./sip-util.js";

const DAY = 86_400_000;
const CARRIER_IP = "127.0.0.2";
const PBX_IP = "127.0.0.4";
const ACTIVE = "+15125550600";
const TEN_DAYS = "+15125550601";
const HUNDRED_DAYS = "+15125550602";
const PORTED = "+15125550603";
const PORTING = "+15125550604";
const QUARANTINE = "+15125550605";
const LATER = "+15125550606";

let app: Didgate;
let dir = "";
let udp = 0;
let PBX = 0;
let clock = Date.now();

function routes(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const target = { targets: [`sip:pbx@${PBX_IP}:${PBX}`] };
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    // a block: not a number, not counted
    "+1512555*": { tenant: "acme", voice: target },
    [ACTIVE]: { tenant: "acme", voice: target },
    // released numbers keep their old target: only the date stops them routing
    [TEN_DAYS]: { tenant: "acme", released_at: iso(clock - 10 * DAY), voice: target },
    [HUNDRED_DAYS]: { tenant: "acme", released_at: iso(clock - 100 * DAY), voice: target },
    [PORTED]: { tenant: "acme", state: "porting_out", port_date: iso(clock - DAY), voice: target },
    [PORTING]: { tenant: "acme", state: "porting_out", port_date: iso(clock + 10 * DAY), voice: target },
    [QUARANTINE]: { tenant: "acme", state: "quarantine" },
    ...extra,
  };
}

const writeRoutesFile = (extra?: Record<string, unknown>) => writeFileSync(join(dir, "routes.yaml"), YAML.stringify({ routes: routes(extra) }));

async function numbersGauge(): Promise<Record<string, number>> {
  const m = (await app.registry.getMetricsAsJSON()).find((x) => x.name === "didgate_numbers");
  return Object.fromEntries(((m?.values ?? []) as Array<{ value: number; labels: Record<string, string> }>).map((v) => [v.labels.state, v.value]));
}

beforeAll(async () => {
  dir = tempDir();
  PBX = await freePort(PBX_IP);
  writeRoutesFile();
  const cfg = { routes: { file: "routes.yaml" }, state_dir: dir };
  writeFileSync(join(dir, "didgate.yaml"), YAML.stringify({ ...cfg, log: { level: "silent" } }));
  const port = await freePort();
  app = (
    await startApp(
      { ...cfg, sip: { listen: [`udp://127.0.0.1:${port}`], timers: { t1_ms: 30 }, trunks: [{ name: "carrier", sources: [CARRIER_IP], country_code: "1", cps: 1000 }] } },
      dir,
      { now: () => clock },
    )
  ).app;
  udp = app.voice!.listeners.find((l) => l.transport === "udp")!.port;
}, 30_000);

afterAll(async () => {
  await killAllSipp();
  await app?.stop(0);
});

describe("number lifecycle by date, end to end", () => {
  it("the active number reaches its target (the target is live: the 410s below are the dates' doing)", async () => {
    const pbx = startUas("uas_answer.xml", "udp", PBX, {}, 20, PBX_IP);
    await sippReady();
    const uac = await startUac("uac_call.xml", "udp", udp, { service: ACTIVE, ip: CARRIER_IP });
    await ok(uac, "carrier");
    await ok(pbx, "pbx");
    expect(pbx.received("INVITE")[0]!.requestUri).toBe(`sip:pbx@${PBX_IP}:${PBX}`);
  });

  for (const [what, number] of [
    ["released_at 10 days ago (quarantine)", TEN_DAYS],
    ["released_at 100 days ago (released)", HUNDRED_DAYS],
    ["porting_out past its port_date (released)", PORTED],
  ] as const) {
    it(`a call to a number with ${what} answers 410`, async () => {
      const uac = await startUac("uac_final.xml", "udp", udp, { service: number, ip: CARRIER_IP, subst: { CODE: "410" } });
      await ok(uac, "carrier");
      expect(uac.receivedResponses().filter((m) => m.status >= 200).map((m) => m.status)).toEqual([410]);
    });
  }

  it("numbers report on the same config lists the number released 100 days ago (and the ported one) as available", async () => {
    let out = "";
    let err = "";
    const code = await main(["numbers", "report", "--json", "--at", new Date(clock).toISOString(), "--config", join(dir, "didgate.yaml")], { out: (s) => (out += s), err: (s) => (err += s) });
    expect(code, err).toBe(0);
    const r = JSON.parse(out) as { by_state: Record<string, number>; available: Array<{ number: string }> };
    expect(r.available.map((a) => a.number).sort()).toEqual([HUNDRED_DAYS, PORTED]);
    expect(r.by_state).toEqual({ active: 1, porting_out: 1, quarantine: 2, released: 2 });
  });

  it("didgate_numbers counts the numbers by state as the report does, follows a new routes file, and moves by time alone", async () => {
    await app.numberStates.refresh();
    expect(await numbersGauge()).toEqual({ active: 1, porting_out: 1, quarantine: 2, released: 2 });
    // a new file: the watcher swaps the table in, the edge counts it without being asked
    writeRoutesFile({ [LATER]: { tenant: "acme", released_at: new Date(clock - 89 * DAY).toISOString() } });
    await waitFor(async () => ((await numbersGauge()).quarantine === 3 ? true : undefined), 10_000, 50);
    expect(await numbersGauge()).toEqual({ active: 1, porting_out: 1, quarantine: 3, released: 2 });
    // two days on, nothing rewritten: LATER leaves its quarantine; eleven days on, PORTING is ported
    clock += 2 * DAY;
    app.numberStates.check(); // the interval has passed on the edge's clock: the dated routes are evaluated again
    expect(await numbersGauge()).toEqual({ active: 1, porting_out: 1, quarantine: 2, released: 3 });
    clock += 9 * DAY;
    app.numberStates.check();
    expect(await numbersGauge()).toEqual({ active: 1, porting_out: 0, quarantine: 2, released: 4 });
  });
});
