import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Decider, decideSms, entryOf, match } from "../../src/routing/decide.js";
import { parseRoute, type Route } from "../../src/routing/route.js";
import { RouteTable } from "../../src/routing/table.js";

function table(entries: Record<string, unknown>): RouteTable<Route> {
  const list: [string, Route][] = [];
  for (const [k, v] of Object.entries(entries)) {
    const r = parseRoute(k, v);
    if (!r.ok) throw new Error(r.errors.join("\n"));
    list.push([k, r.route]);
  }
  return RouteTable.build(list);
}

const T = Date.parse("2026-11-22T10:00:00Z");
const uris = (d: { targets: readonly { uri: string }[] }) => d.targets.map((t) => t.uri);

describe("decision: key kinds and states", () => {
  const t = table({
    "+15125550100": { voice: { targets: ["sip:exact@h"] } },
    "+1512555*": { voice: { targets: ["sip:block@h"] } },
    "+1512*": { voice: { targets: ["sip:area@h"] } },
    "+15125550150": { state: "quarantine", voice: { targets: ["sip:old@h"] } },
    "+15125550151": { state: "released" },
    "+15125550199": { state: "porting_out", voice: { targets: ["sip:porting@h"] } },
    "+15125550177": { sms: { webhook: "https://x/y" } },
    "*": { voice: { targets: ["sip:default@h"] } },
  });
  const d = new Decider();
  it("exact beats prefix", () => {
    const r = d.decideVoice(t, "+15125550100", undefined, T);
    expect(r).toMatchObject({ outcome: "routed", key: "+15125550100", kind: "exact", state: "active" });
    expect(uris(r)).toEqual(["sip:exact@h"]);
  });
  it("longest prefix wins", () => {
    expect(d.decideVoice(t, "+15125550101", undefined, T)).toMatchObject({ outcome: "routed", key: "+1512555*", kind: "prefix" });
    expect(d.decideVoice(t, "+15124440101", undefined, T)).toMatchObject({ outcome: "routed", key: "+1512*", kind: "prefix" });
  });
  it("the default catches the rest", () => {
    expect(d.decideVoice(t, "+4930123456", undefined, T)).toMatchObject({ outcome: "routed", key: "*", kind: "default" });
  });
  it("quarantine and released never route, even with targets", () => {
    expect(d.decideVoice(t, "+15125550150", undefined, T)).toMatchObject({ outcome: "gone", state: "quarantine", targets: [] });
    expect(d.decideVoice(t, "+15125550151", undefined, T)).toMatchObject({ outcome: "gone", state: "released", targets: [] });
  });
  it("porting_out still routes", () => {
    expect(uris(d.decideVoice(t, "+15125550199", undefined, T))).toEqual(["sip:porting@h"]);
  });
  it("an sms-only route has no voice targets", () => {
    expect(d.decideVoice(t, "+15125550177", undefined, T)).toMatchObject({ outcome: "no_targets", key: "+15125550177" });
  });
  it("no default: not found", () => {
    const t2 = table({ "+1512*": { voice: { targets: ["sip:a@h"] } } });
    expect(d.decideVoice(t2, "+4420", undefined, T)).toMatchObject({ outcome: "not_found", key: null });
  });
});

describe("decision: callers, then schedule, then targets", () => {
  const t = table({
    "+15125550101": {
      voice: {
        targets: ["sip:main@h"],
        schedule: [
          { days: ["mon", "tue", "wed", "thu", "fri"], from: "09:00", to: "17:00", tz: "America/Chicago", targets: ["sip:office@h"] },
          { days: ["fri"], from: "22:00", to: "06:00", tz: "America/Chicago", targets: ["sip:night@h"] },
        ],
        callers: [
          { match: "+447700900123", targets: ["sip:vip@h"] },
          { match: "+44*", targets: ["sip:uk@h"] },
        ],
      },
    },
  });
  const d = new Decider();
  const at = (iso: string, caller?: string) => d.decideVoice(t, "+15125550101", caller, Date.parse(iso));

  it("a caller rule beats the schedule (first match wins)", () => {
    const r = at("2026-03-09T15:00:00Z", "+447700900123");
    expect(uris(r)).toEqual(["sip:vip@h"]);
    expect(r.rule).toEqual({ type: "callers", index: 0, match: "+447700900123" });
    expect(uris(at("2026-03-09T15:00:00Z", "+447700900999"))).toEqual(["sip:uk@h"]);
    expect(uris(at("2026-03-09T15:00:00Z", "+4930123"))).toEqual(["sip:office@h"]);
  });
  it("schedule in the window's time zone, across the DST change", () => {
    // Friday 6 March 2026, CST (UTC-6): 14:30Z is 08:30 local: before office hours.
    expect(uris(at("2026-03-06T14:30:00Z"))).toEqual(["sip:main@h"]);
    // Monday 9 March 2026, CDT (UTC-5) since the 8th: 14:30Z is 09:30 local.
    const r = at("2026-03-09T14:30:00Z");
    expect(uris(r)).toEqual(["sip:office@h"]);
    expect(r.rule).toEqual({ type: "schedule", index: 0, tz: "America/Chicago", local: "mon 09:30" });
    expect(uris(at("2026-03-09T13:59:00Z"))).toEqual(["sip:main@h"]);
    expect(uris(at("2026-03-09T14:00:00Z"))).toEqual(["sip:office@h"]);
    expect(uris(at("2026-03-09T21:59:59Z"))).toEqual(["sip:office@h"]);
    expect(uris(at("2026-03-09T22:00:00Z"))).toEqual(["sip:main@h"]);
  });
  it("a window crossing midnight belongs to the day it starts", () => {
    // Friday 23:00 CST = Saturday 05:00Z: in the Friday night window.
    expect(uris(at("2026-03-07T05:00:00Z"))).toEqual(["sip:night@h"]);
    // Saturday 03:00 CST (09:00Z): still Friday's window.
    expect(uris(at("2026-03-07T09:00:00Z"))).toEqual(["sip:night@h"]);
    // Saturday 06:00 CST (12:00Z): the window has ended.
    expect(uris(at("2026-03-07T12:00:00Z"))).toEqual(["sip:main@h"]);
    // Friday 03:00 CST belongs to Thursday's night, and Thursday has no night window.
    expect(uris(at("2026-03-06T09:00:00Z"))).toEqual(["sip:main@h"]);
    // Weekend daytime: main targets.
    expect(at("2026-03-07T18:00:00Z").rule).toEqual({ type: "targets" });
  });
});

describe("decision: priority and weight", () => {
  const t = table({
    "+1*": {
      voice: {
        targets: [
          { uri: "sip:backup@h", priority: 2 },
          { uri: "sip:a@h", priority: 1, weight: 70 },
          { uri: "sip:b@h", priority: 1, weight: 30 },
          { uri: "sip:never-first@h", priority: 1, weight: 0 },
        ],
      },
    },
  });
  it("orders by priority; within one, a weighted draw; weight 0 last", () => {
    const seq = [0.5, 0.0];
    const d = new Decider({ random: () => seq.shift() ?? 0 });
    // total 100, r=50 → a (0..70); then total 30, r=0 → b
    expect(uris(d.decideVoice(t, "+15125550100", undefined, T))).toEqual(["sip:a@h", "sip:b@h", "sip:never-first@h", "sip:backup@h"]);
    const seq2 = [0.8, 0.0];
    const d2 = new Decider({ random: () => seq2.shift() ?? 0 });
    expect(uris(d2.decideVoice(t, "+15125550100", undefined, T))).toEqual(["sip:b@h", "sip:a@h", "sip:never-first@h", "sip:backup@h"]);
  });
  it("the weights hold over many draws", () => {
    const d = new Decider();
    let a = 0;
    for (let i = 0; i < 10_000; i++) if (d.decideVoice(t, "+15125550100", undefined, T).targets[0]!.uri === "sip:a@h") a++;
    expect(a).toBeGreaterThan(6500);
    expect(a).toBeLessThan(7500);
  });
  it("a single target per priority returns the compiled array (no allocation)", () => {
    const t2 = table({ "+1*": { voice: { targets: [{ uri: "sip:x@h", priority: 1 }, { uri: "sip:y@h", priority: 2 }] } } });
    const d = new Decider();
    const r1 = d.decideVoice(t2, "+15125550100", undefined, T);
    const r2 = d.decideVoice(t2, "+15125550100", undefined, T);
    expect(r1.targets).toBe(r2.targets);
  });
});

describe("local time cache", () => {
  const zones = ["America/Chicago", "Europe/London", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham", "UTC", "America/St_Johns"];
  it("matches Intl for any instant, in any order of queries", () => {
    const d = new Decider();
    const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    fc.assert(
      fc.property(fc.constantFrom(...zones), fc.integer({ min: Date.parse("2020-01-01"), max: Date.parse("2035-01-01") }), (tz, ms) => {
        const f = new Intl.DateTimeFormat("en-US", { timeZone: tz, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
        const parts = Object.fromEntries(f.formatToParts(ms).map((p) => [p.type, p.value]));
        const want = { weekday: days.indexOf(parts.weekday!), minute: Number(parts.hour) * 60 + Number(parts.minute) };
        expect(d.localTime(tz, ms)).toEqual(want);
        expect(d.localTime(tz, ms + 60_000 * 7)).toEqual(
          (() => {
            const p2 = Object.fromEntries(f.formatToParts(ms + 60_000 * 7).map((p) => [p.type, p.value]));
            return { weekday: days.indexOf(p2.weekday!), minute: Number(p2.hour) * 60 + Number(p2.minute) };
          })(),
        );
      }),
      { numRuns: 3000 },
    );
  });
});

describe("lifecycle by date", () => {
  const DAY = 86_400_000;
  const now = Date.parse("2026-12-04T12:00:00Z");
  const iso = (ms: number): string => new Date(ms).toISOString();
  const t = table({
    "+15125550300": { tenant: "acme", released_at: iso(now - 10 * DAY), voice: { targets: ["sip:old@h"] } },
    "+15125550301": { tenant: "acme", released_at: iso(now - 100 * DAY), voice: { targets: ["sip:old@h"] } },
    "+15125550302": { tenant: "acme", released_at: iso(now + DAY), voice: { targets: ["sip:current@h"] } },
    "+15125550303": { state: "porting_out", port_date: "2026-12-01", voice: { targets: ["sip:porting@h"] } },
    "+15125550304": { state: "porting_out", port_date: "2026-12-31", voice: { targets: ["sip:porting@h"] } },
    "+15125550305": { tenant: "short", released_at: iso(now - 10 * DAY), voice: { targets: ["sip:old@h"] } },
  });

  it("answers as quarantine from released_at and as released after the quarantine, by time alone", () => {
    const d = new Decider({ quarantineDays: 90, tenantQuarantineDays: new Map([["short", 7]]) });
    expect(d.decideVoice(t, "+15125550300", undefined, now)).toMatchObject({ outcome: "gone", state: "quarantine" });
    expect(d.decideVoice(t, "+15125550301", undefined, now)).toMatchObject({ outcome: "gone", state: "released" });
    expect(d.decideVoice(t, "+15125550302", undefined, now)).toMatchObject({ outcome: "routed", state: "active", targets: [{ uri: "sip:current@h" }] });
    expect(d.decideVoice(t, "+15125550302", undefined, now + 2 * DAY)).toMatchObject({ outcome: "gone", state: "quarantine" });
    expect(d.decideVoice(t, "+15125550305", undefined, now)).toMatchObject({ outcome: "gone", state: "released" });
    expect(d.decideVoice(t, "+15125550300", undefined, now + 80 * DAY)).toMatchObject({ state: "released" });
  });

  it("releases a porting_out number from its port_date", () => {
    const d = new Decider();
    expect(d.decideVoice(t, "+15125550303", undefined, now)).toMatchObject({ outcome: "gone", state: "released" });
    expect(d.decideVoice(t, "+15125550304", undefined, now)).toMatchObject({ outcome: "routed", state: "porting_out" });
  });

  it("validates the dates and where port_date may appear", () => {
    expect(parseRoute("k", { released_at: "yesterday" })).toMatchObject({ ok: false, errors: [expect.stringContaining("released_at")] });
    expect(parseRoute("k", { released_at: "2026-13-45" })).toMatchObject({ ok: false });
    expect(parseRoute("k", { state: "active", port_date: "2026-12-01", voice: { targets: ["sip:a@h"] } })).toMatchObject({ ok: false, errors: [expect.stringContaining("porting_out")] });
    expect(parseRoute("k", { released_at: "2026-12-01T10:00:00+01:00", voice: { targets: ["sip:a@h"] } }).ok).toBe(true);
  });
});

describe("one entry for calls and messages: match, decideVoice, decideSms", () => {
  const DAY = 86_400_000;
  const now = Date.parse("2026-12-04T12:00:00Z");
  const iso = (ms: number): string => new Date(ms).toISOString();
  const both = { voice: { targets: ["sip:pbx@h"] }, sms: { webhook: "https://app.example/sms" } };
  const t = table({
    "+15125550400": { state: "active", ...both },
    "+15125550401": { state: "porting_out", ...both },
    "+15125550402": { state: "quarantine", ...both },
    "+15125550403": { state: "released", ...both },
    "+15125550404": { released_at: iso(now - 10 * DAY), ...both },
    "+15125550405": { released_at: iso(now - 100 * DAY), ...both },
    "+15125550406": { released_at: iso(now + DAY), ...both },
    "+15125550407": { state: "porting_out", port_date: "2026-12-01", ...both },
    "+15125550408": { state: "porting_out", port_date: "2026-12-31", ...both },
    "+15125550409": { voice: { targets: ["sip:pbx@h"] } },
    "+15125550410": { sms: { webhook: "https://app.example/sms" } },
    "+1512556*": both,
  });
  const d = new Decider({ quarantineDays: 90 });
  // number → [outcome, state] of both decisions at `now`
  const lifecycle: [string, "routed" | "gone", string][] = [
    ["+15125550400", "routed", "active"],
    ["+15125550401", "routed", "porting_out"],
    ["+15125550402", "gone", "quarantine"],
    ["+15125550403", "gone", "released"],
    ["+15125550404", "gone", "quarantine"],
    ["+15125550405", "gone", "released"],
    ["+15125550406", "routed", "active"],
    ["+15125550407", "gone", "released"],
    ["+15125550408", "routed", "porting_out"],
  ];

  it("calls and messages answer alike for every lifecycle state (state, released_at, port_date)", () => {
    for (const [n, outcome, state] of lifecycle) {
      const m = d.match(t, n, now);
      expect(m, n).toMatchObject({ outcome, state, key: n, kind: "exact" });
      expect(d.decideVoice(t, n, undefined, now), n).toMatchObject({ outcome, state, key: n, kind: "exact" });
      expect(d.decideSms(t, n, now), n).toMatchObject({ outcome, state, key: n, kind: "exact" });
      expect(d.decideVoice(t, n, undefined, now).targets.length > 0, n).toBe(outcome === "routed");
      expect(d.decideSms(t, n, now).sms !== null, n).toBe(outcome === "routed");
    }
  });

  it("a gone number keeps its route and key (logs name them); a number no key matches has neither", () => {
    expect(d.decideSms(t, "+15125550402", now)).toMatchObject({ outcome: "gone", key: "+15125550402", sms: null });
    expect(d.decideSms(t, "+15125550402", now).route).not.toBeNull();
    expect(d.decideSms(t, "+4420123", now)).toEqual({ outcome: "not_found", number: "+4420123", key: null, kind: null, state: null, route: null, sms: null });
    expect(d.decideVoice(t, "+4420123", undefined, now)).toMatchObject({ outcome: "not_found", key: null, kind: null, state: null, route: null, targets: [] });
  });

  it("no_targets: a call to an sms-only route, a message to a voice-only route", () => {
    expect(d.decideVoice(t, "+15125550410", undefined, now)).toMatchObject({ outcome: "no_targets", key: "+15125550410" });
    expect(d.decideSms(t, "+15125550410", now)).toMatchObject({ outcome: "routed", sms: { webhook: "https://app.example/sms" } });
    expect(d.decideSms(t, "+15125550409", now)).toMatchObject({ outcome: "no_targets", key: "+15125550409", state: "active", sms: null });
    expect(d.decideVoice(t, "+15125550409", undefined, now).outcome).toBe("routed");
  });

  it("a prefix match names its key and kind", () => {
    expect(d.decideSms(t, "+15125560000", now)).toMatchObject({ outcome: "routed", key: "+1512556*", kind: "prefix" });
    expect(entryOf(t, "+15125560000")).toMatchObject({ key: "+1512556*", kind: "prefix" });
    expect(entryOf(t, "+4420123")).toBeUndefined();
  });

  it("without a state function the state field is taken as it is (dates not applied)", () => {
    expect(match(t, "+15125550404", now)).toMatchObject({ outcome: "routed", state: "active" });
    expect(decideSms(t, "+15125550407", now)).toMatchObject({ outcome: "routed", state: "porting_out" });
    expect(decideSms(t, "+15125550403", now)).toMatchObject({ outcome: "gone", state: "released" });
    expect(match(t, "+15125550404", now, d.stateAt)).toMatchObject({ outcome: "gone", state: "quarantine" });
  });

  it("entryOf reads any table: the outbound table's entries too", () => {
    const out = RouteTable.build<{ voice: string[] }>([
      ["+44*", { voice: ["uk"] }],
      ["*", { voice: ["world"] }],
    ]);
    expect(entryOf(out, "+442071234567")).toEqual({ value: { voice: ["uk"] }, key: "+44*", kind: "prefix" });
    expect(entryOf(out, "+15125550100")).toEqual({ value: { voice: ["world"] }, key: "*", kind: "default" });
  });
});
