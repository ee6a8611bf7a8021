import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { validateConfig } from "../../src/config/load.js";
import { CallCounter } from "../../src/edge/calls.js";
import { CarrierTable, dialString, withUser } from "../../src/edge/carriers.js";
import { divertedNumbers } from "../../src/edge/originate.js";
import { parseOutbound, parseOutboundJson, parseOutboundSection } from "../../src/routing/outbound.js";
import { parseRoute } from "../../src/routing/route.js";
import { RouteTable } from "../../src/routing/table.js";
import { parseRouteDocument, serializeRoutes } from "../../src/routing/sources/document.js";

describe("outbound table entries", () => {
  it("accepts carrier lists and rejects what is not one", () => {
    const r = parseOutbound("+44*", { voice: ["carrier-uk", "carrier-b"], sms: ["smsc-b"] });
    expect(r.ok && r.entry.voice).toEqual(["carrier-uk", "carrier-b"]);
    expect(r.ok && r.entry.sms).toEqual(["smsc-b"]);
    const bad = (k: string, v: unknown): string[] => {
      const x = parseOutbound(k, v);
      expect(x.ok).toBe(false);
      return x.ok ? [] : x.errors;
    };
    expect(bad("+44*", {})[0]).toContain("needs voice or sms");
    expect(bad("+44*", { voice: [] })[0]).toContain("1 to 32 names");
    expect(bad("+44*", { voice: ["a", "a"] })[0]).toContain("listed twice");
    expect(bad("+44*", { voice: ["a b"] })[0]).toContain("voice[0]");
    expect(bad("44*", { voice: ["a"] })[0]).toContain("invalid key");
    expect(bad("+44*", { voice: ["a"], fax: ["x"] })[0]).toContain("unknown field");
    expect(parseOutboundJson("*", "{").ok).toBe(false);
  });

  it("never throws on any input", () => {
    fc.assert(
      fc.property(fc.string(), fc.anything(), (k, v) => {
        const r = parseOutbound(k, v);
        expect(typeof r.ok).toBe("boolean");
      }),
    );
  });

  it("longest prefix wins in the shared trie, * is the default", () => {
    const s = parseOutboundSection({ "+44*": { voice: ["uk"] }, "+4420*": { voice: ["london"] }, "*": { voice: ["any"] } });
    expect(s.errors).toEqual([]);
    const t = RouteTable.build(s.entries);
    expect(t.lookup("+442071230000")!.voice).toEqual(["london"]);
    expect(t.lookup("+441611230000")!.voice).toEqual(["uk"]);
    expect(t.lookup("+15125550100")!.voice).toEqual(["any"]);
  });

  it("routes documents carry an outbound: section beside the routes, and export it again", () => {
    const text = `routes:\n  "+15125550100": { voice: { targets: ["tel:+442071230300"] } }\noutbound:\n  "+44*": { voice: [carrier-uk] }\n`;
    const d = parseRouteDocument(text, "yaml");
    expect(d.errors).toEqual([]);
    expect(d.entries.length).toBe(1);
    expect(d.outbound!.map(([k]) => k)).toEqual(["+44*"]);
    const out = serializeRoutes(d.entries.map(([k, r]) => [k, r.source]), "yaml", d.outbound!.map(([k, e]) => [k, e.source]));
    const again = parseRouteDocument(out, "yaml");
    expect(again.outbound!.length).toBe(1);
    expect(again.entries.length).toBe(1);
    expect(parseRouteDocument(`outbound:\n  "+44*": { voice: [] }\n`, "yaml").errors[0]).toContain('outbound "+44*"');
  });
});

describe("route entries: forwarding and ringing", () => {
  it("tel:+E164 and +E164 targets, timeout_s, ring, forward_caller_id", () => {
    const r = parseRoute("+15125550100", {
      voice: { ring: "simultaneous", forward_caller_id: "did", targets: ["+442071230300", { uri: "tel:+15125550101", timeout_s: 20, priority: 2 }] },
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.route.voice!.targets.map((t) => t.uri)).toEqual(["tel:+442071230300", "tel:+15125550101"]);
    expect(r.route.voice!.targets[1]!.timeoutS).toBe(20);
    expect(r.route.voice!.ring).toBe("simultaneous");
    expect(r.route.voice!.forwardCallerId).toBe("did");
    for (const bad of [{ targets: ["tel:+0123"] }, { targets: ["+44 20"] }, { targets: ["sip:a@b"], ring: "all" }, { targets: ["sip:a@b"], forward_caller_id: "x" }, { targets: [{ uri: "sip:a@b", timeout_s: 0 }] }]) {
      expect(parseRoute("+1", { voice: bad }).ok, JSON.stringify(bad)).toBe(false);
    }
  });
});

describe("customers and carriers in the config", () => {
  const base = { sip: { listen: [] }, smpp: { listen: null } };
  it("a source that is both a carrier and a customer is an error", () => {
    const v = validateConfig({
      ...base,
      sip: {
        listen: [],
        trunks: [{ name: "carrier", sources: ["203.0.113.0/24"] }],
        customers: [{ name: "pbx", tenant: "acme", sources: ["203.0.113.7"] }],
      },
    });
    expect(v.ok).toBe(false);
    expect(!v.ok && v.errors.join("\n")).toContain('overlaps the sources of trunk "carrier"');
    const w = validateConfig({ ...base, sip: { listen: [], trunks: [{ name: "carrier", sources: ["203.0.113.7"] }], customers: [{ name: "pbx", tenant: "acme", sources: ["203.0.113.0/24"] }] } });
    expect(w.ok).toBe(false);
  });
  it("a customer needs sources or digest; a trunk sources or termination; no dialog headers added", () => {
    expect(validateConfig({ ...base, sip: { listen: [], customers: [{ name: "pbx", tenant: "acme" }] } }).ok).toBe(false);
    expect(validateConfig({ ...base, sip: { listen: [], trunks: [{ name: "c" }] } }).ok).toBe(false);
    expect(validateConfig({ ...base, sip: { listen: [], trunks: [{ name: "c", termination: "sip:203.0.113.10", headers: { "Call-ID": "x" } }] } }).ok).toBe(false);
    const ok = validateConfig({
      ...base,
      sip: {
        listen: [],
        trunks: [{ name: "c", termination: ["sip:203.0.113.10", "sip:203.0.113.11;transport=tcp"], max_calls: 10, termination_cps: 5, number_format: "national", country_code: "44", number_prefix: "0" }],
        customers: [{ name: "pbx", tenant: "acme", digest: { username: "acme", password: "pw" } }],
      },
    });
    expect(ok.ok, ok.ok ? "" : ok.errors.join("\n")).toBe(true);
  });
  it("number formats and termination users", () => {
    const t = new CarrierTable(
      [
        { name: "uk", termination: "sip:gw@203.0.113.10:5060", number_format: "national", country_code: "44", number_prefix: "0", headers: {}, failover_on: [503], forward_header: "diversion" },
      ],
      Date.now,
    );
    const uk = t.get("uk")!;
    expect(dialString(uk, "+442071230300")).toBe("02071230300");
    expect(dialString(uk, "+15125550100")).toBe("+15125550100");
    expect(withUser(uk.uris[0]!, "02071230300")).toBe("sip:02071230300@203.0.113.10:5060");
    expect(withUser("sips:carrier.example;transport=tls", "+1")).toBe("sips:+1@carrier.example;transport=tls");
  });
});

describe("call counting", () => {
  it("holds at most max slots, frees them on release and at the deadline", () => {
    let now = 1000;
    const c = new CallCounter(() => now);
    expect(c.acquire("k:a", "c1", 2, 10_000)).toBe(true);
    expect(c.acquire("k:a", "c2", 2, 10_000)).toBe(true);
    expect(c.acquire("k:a", "c3", 2, 10_000)).toBe(false);
    expect(c.acquire("k:a", "c1", 2, 10_000)).toBe(true); // already held
    expect(c.release("k:a", "c2")).toBe(true);
    expect(c.acquire("k:a", "c3", 2, 10_000)).toBe(true);
    now += 10_001; // a lost BYE: the deadline frees the slot
    expect(c.acquire("k:a", "c4", 2, 10_000)).toBe(true);
    expect(c.count("k:a")).toBe(1);
  });
});

describe("Diversion and History-Info", () => {
  it("names every Diversion entry and every History-Info entry but the current target", () => {
    const d = divertedNumbers(["<tel:+15125550300>;reason=unconditional;counter=1, <sip:+15125550301@x>;reason=no-answer"], ["<sip:+15125550400@h;user=phone>;index=1, <sip:+442071230300@h;cause=302>;index=1.1"]);
    expect([...d].sort()).toEqual(["+15125550300", "+15125550301", "+15125550400"]);
  });
});
