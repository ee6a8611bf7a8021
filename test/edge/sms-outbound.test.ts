/** Outbound SMS pieces without peers: config of app accounts and binds, pacing, sender rights. */
import { describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/load.js";
import { bindTps, Pacer, senderRights } from "../../src/edge/sms-outbound.js";

const smpp = (accounts: unknown[], binds: unknown[] = []) => validateConfig({ smpp: { accounts, binds } });

describe("config", () => {
  it("app accounts take tenant and senders; carrier accounts refuse them; binds take tps", () => {
    const ok = smpp([{ system_id: "app-1", password: "pw", role: "app", tenant: "acme", senders: ["ACME"] }], [{ name: "b", host: "127.0.0.1", port: 2775, system_id: "x", password: "pw", tps: 50 }]);
    expect(ok.ok).toBe(true);
    const bad = smpp([{ system_id: "c", password: "pw", role: "carrier", tenant: "acme" }]);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors.join("\n")).toMatch(/tenant and senders are for app accounts only/);
    expect(smpp([], [{ name: "b", host: "127.0.0.1", port: 2775, system_id: "x", password: "pw", tps: 0 }]).ok).toBe(false);
  });

  it("sender rights: only app accounts with a tenant or senders may send", () => {
    const r = senderRights(
      [
        { system_id: "a", role: "app", tenant: "acme", senders: ["ACME"] },
        { system_id: "b", role: "app" },
        { system_id: "c", role: "carrier" },
        { system_id: "d", role: "app", senders: ["72345"] },
      ],
      new Map(),
    );
    expect([...r.keys()]).toEqual(["a", "d"]);
    expect(r.get("a")).toEqual({ tenant: "acme", senders: new Set(["ACME"]) });
    expect(r.get("d")!.tenant).toBeUndefined();
    expect(bindTps([{ name: "x", tps: 10 }, { name: "y" }])).toEqual(new Map([["x", 10]]));
  });
});

describe("Pacer", () => {
  it("books one slot per part at 1000/tps ms apart, no bursts, and refuses a wait over the limit", () => {
    let now = 1000;
    const p = new Pacer(10, () => now);
    expect(p.reserve(1, 5000)).toBe(0);
    expect(p.reserve(1, 5000)).toBe(100);
    expect(p.reserve(3, 5000)).toBe(200); // a 3-part message takes 300 ms of slots
    expect(p.reserve(1, 5000)).toBe(500);
    expect(p.reserve(1, 550)).toBe(-1); // would wait 600 ms: refused, nothing booked
    expect(p.waitFor()).toBe(600);
    now += 10_000; // idle: no credit builds up
    expect(p.reserve(1, 0)).toBe(0);
    expect(p.reserve(1, 0)).toBe(-1);
  });
});
