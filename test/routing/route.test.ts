import { describe, expect, it } from "vitest";
import { parseRoute, parseRouteJson } from "../../src/routing/route.js";

describe("route entry validation", () => {
  it("accepts the contract's example and compiles it", () => {
    const r = parseRoute("+15125550100", {
      state: "active",
      tenant: "acme",
      voice: {
        targets: [{ uri: "sip:+15125550100@10.1.2.3:5060;transport=tcp", priority: 1, weight: 100 }],
        failover_on: [408, 480, 500, 502, 503, 504],
        ring_timeout_s: 60,
        schedule: [{ days: ["mon", "tue", "wed", "thu", "fri"], from: "09:00", to: "17:00", tz: "America/Chicago", targets: ["sip:office@10.1.2.4"] }],
        callers: [{ match: "+44*", targets: ["sip:uk-desk@10.1.2.5"] }],
      },
      sms: { webhook: "https://app.example.com/sms/inbound", smpp: "esme-system-id" },
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const v = r.route.voice!;
    expect(v.targets).toEqual([{ uri: "sip:+15125550100@10.1.2.3:5060;transport=tcp", priority: 1, weight: 100 }]);
    expect(v.schedule[0]).toMatchObject({ dayMask: 0b0111110, from: 540, to: 1020, tz: "America/Chicago" });
    expect(v.callers[0]).toMatchObject({ digits: "44", prefix: true });
    expect(r.route.sms).toEqual({ webhook: "https://app.example.com/sms/inbound", smpp: "esme-system-id" });
  });

  it("defaults: state active, plain URI targets priority 1 weight 100, failover codes, ring timeout", () => {
    const r = parseRoute("*", { voice: { targets: ["sip:a@h", "sip:b@h"] } });
    expect(r.ok && r.route.state).toBe("active");
    if (!r.ok) return;
    expect(r.route.voice!.targets.map((t) => [t.priority, t.weight])).toEqual([[1, 100], [1, 100]]);
    expect(r.route.voice!.failoverOn).toEqual([408, 480, 500, 502, 503, 504]);
    expect(r.route.voice!.ringTimeoutS).toBe(60);
    expect(r.route.voice!.inviteTimeoutS).toBeUndefined();
    const t = parseRoute("*", { voice: { targets: ["sip:a@h"], invite_timeout_s: 2.5 } });
    expect(t.ok && t.route.voice!.inviteTimeoutS).toBe(2.5);
  });

  it("sorts targets by priority, stable within a priority", () => {
    const r = parseRoute("+1", { voice: { targets: [{ uri: "sip:c@h", priority: 3 }, { uri: "sip:a@h", priority: 1 }, { uri: "sip:b@h", priority: 1 }] } });
    expect(r.ok && r.route.voice!.targets.map((t) => t.uri)).toEqual(["sip:a@h", "sip:b@h", "sip:c@h"]);
  });

  it("reports every error with the key and the field", () => {
    const r = parseRoute("+15125550100", {
      state: "gone",
      voice: {
        targets: ["http://x", { uri: "sip:a@h", priority: -1, weight: "9" }],
        failover_on: [200],
        ring_timeout_s: 0,
        invite_timeout_s: 0,
        schedule: [{ days: ["funday"], from: "25:00", to: "17:00", tz: "Mars/Olympus", targets: [] }],
        callers: [{ match: "44*", targets: ["sip:x@h"] }],
      },
      sms: { webhook: "ftp://x" },
      extra: 1,
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const text = r.errors.join("\n");
    for (const frag of [
      'route "+15125550100": state: must be one of',
      "voice.targets[0]: must be a SIP URI",
      "voice.targets[1].priority",
      "voice.targets[1].weight",
      "voice.failover_on",
      "voice.ring_timeout_s",
      "voice.invite_timeout_s: must be a number of seconds from 0.1 to 300",
      "voice.schedule[0].days: unknown day",
      "voice.schedule[0].from",
      "voice.schedule[0].tz",
      "voice.schedule[0].targets: must have at least one target",
      "voice.callers[0].match",
      "sms.webhook",
      "extra: unknown field",
    ]) {
      expect(text).toContain(frag);
    }
  });

  it("rejects non-objects and bad JSON", () => {
    expect(parseRoute("+1", "x").ok).toBe(false);
    const r = parseRouteJson("+1", "{not json");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]).toContain("not valid JSON");
  });

  it("a released number needs no targets; a voice block needs targets or rules", () => {
    expect(parseRoute("+1", { state: "released" }).ok).toBe(true);
    expect(parseRoute("+1", { voice: {} }).ok).toBe(false);
    expect(parseRoute("+1", { voice: { callers: [{ match: "*", targets: ["sip:a@h"] }] } }).ok).toBe(true);
  });

  it("schedule windows may end at 24:00 and cross midnight", () => {
    const r = parseRoute("+1", { voice: { targets: ["sip:a@h"], schedule: [{ from: "22:00", to: "06:00", targets: ["sip:n@h"] }, { from: "18:00", to: "24:00", targets: ["sip:e@h"] }] } });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.route.voice!.schedule.map((w) => [w.from, w.to, w.dayMask, w.tz])).toEqual([[1320, 360, 127, "UTC"], [1080, 1440, 127, "UTC"]]);
  });
});

describe("webhook URL check", async () => {
  const { isHttpUrl } = await import("../../src/routing/route.js");
  it("accepts http(s) URLs with a host and rejects the rest", () => {
    for (const u of ["https://app.example.com/sms/inbound", "http://127.0.0.1:8080/x?a=1#f", "http://[::1]:8080/", "https://h"]) expect(isHttpUrl(u), u).toBe(true);
    // credentials in a webhook URL are refused: they hide where the request goes
    for (const u of ["https://user@host/p", "http://user:pw@127.0.0.1/", "http://a@b@c/"]) expect(isHttpUrl(u), u).toBe(false);
    for (const u of ["ftp://x/y", "https://", "https:///path", "http://a b/", "https://h/p q", "javascript:alert(1)", "https://:80/", "http://h/\u0000", "HTTPS//x"]) expect(isHttpUrl(u), u).toBe(false);
  });
  it("agrees with new URL on what it accepts", async () => {
    const fc = (await import("fast-check")).default;
    fc.assert(
      fc.property(fc.webUrl(), (u) => {
        if (isHttpUrl(u)) expect(["http:", "https:"]).toContain(new URL(u).protocol);
      }),
    );
  });
});
