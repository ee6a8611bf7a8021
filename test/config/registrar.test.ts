import { describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/load.js";

function errors(registrar: unknown): string[] {
  const r = validateConfig({ sip: { registrar } });
  return r.ok ? [] : r.errors;
}

describe("sip.registrar config", () => {
  it("takes the documented keys with defaults", () => {
    const r = validateConfig({ sip: { registrar: { domain: "sip.example.net", users: [{ user: "alice", tenant: "acme", password: "wonderland" }] } } });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.sip.registrar).toMatchObject({ domain: "sip.example.net", min_expires: 60, max_expires: 3600, default_expires: 3600, max_contacts: 10 });
    expect(r.config.sip.registrar!.realm).toBeUndefined();
    const none = validateConfig({});
    expect(none.ok && none.config.sip.registrar).toBeUndefined();
  });

  it("names the key of each error", () => {
    expect(errors({ users: [] }).join("\n")).toMatch(/sip\.registrar\.domain: missing/);
    expect(errors({ domain: "bad domain" }).join("\n")).toMatch(/sip\.registrar\.domain: .*domain name/);
    expect(errors({ domain: "d.example", min_expires: 600, max_expires: 60 }).join("\n")).toMatch(/sip\.registrar\.min_expires: .*max_expires/);
    expect(errors({ domain: "d.example", default_expires: 10 }).join("\n")).toMatch(/sip\.registrar\.default_expires: /);
    expect(errors({ domain: "d.example", max_contacts: 0 }).join("\n")).toMatch(/sip\.registrar\.max_contacts: /);
    expect(errors({ domain: "d.example", nope: 1 }).join("\n")).toMatch(/sip\.registrar\.nope: unknown key/);
    const dup = errors({ domain: "d.example", users: [{ user: "a", tenant: "t", password: "12345678" }, { user: "a", tenant: "t", password: "12345678" }] });
    expect(dup.join("\n")).toMatch(/sip\.registrar\.users\[1\]\.user: .*duplicate user "a"/);
    expect(errors({ domain: "d.example", users: [{ user: "a b", tenant: "t", password: "12345678" }] }).join("\n")).toMatch(/sip\.registrar\.users\[0\]\.user: /);
    expect(errors({ domain: "d.example", users: [{ user: "a", password: "12345678" }] }).join("\n")).toMatch(/sip\.registrar\.users\[0\]\.tenant: missing/);
    expect(errors({ domain: "d.example", edge_uri: "sip:edge1.example:5060" }).join("\n")).toMatch(/sip\.registrar\.edge_uri: .*IP address/);
    expect(errors({ domain: "d.example", edge_uri: "sip:10.0.0.1:5060;transport=sctp" }).join("\n")).toMatch(/sip\.registrar\.edge_uri: /);
    expect(errors({ domain: "d.example", calls: { max_calls_total: 0 } }).join("\n")).toMatch(/sip\.registrar\.calls\.max_calls_total: /);
  });

  it("takes edge_uri (where other edges reach this one) and calls.max_calls_total", () => {
    const r = validateConfig({ sip: { registrar: { domain: "d.example", edge_uri: "sip:10.0.0.1:5070;transport=tcp", calls: { max_calls_total: 50 } } } });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.sip.registrar!.edge_uri).toBe("sip:10.0.0.1:5070;transport=tcp");
    expect(r.config.sip.registrar!.calls!.max_calls_total).toBe(50);
    expect(validateConfig({ sip: { registrar: { domain: "d.example", edge_uri: "sip:[2001:db8::1]:5060" } } }).ok).toBe(true);
  });

  it("takes calls (outbound calls of users) and a user's caller_id", () => {
    const r = validateConfig({ sip: { registrar: { domain: "d.example", users: [{ user: "a", tenant: "t", password: "12345678", caller_id: "+15125550100" }], calls: { country_code: "1" } } } });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.sip.registrar!.calls).toEqual({ country_code: "1", cps: 1, max_calls: 4 });
    expect(r.config.sip.registrar!.users[0]!.caller_id).toBe("+15125550100");
    const off = validateConfig({ sip: { registrar: { domain: "d.example" } } });
    expect(off.ok && off.config.sip.registrar!.calls).toBeUndefined();
    expect(errors({ domain: "d.example", users: [{ user: "a", tenant: "t", password: "12345678", caller_id: "5125550100" }] }).join("\n")).toMatch(/sip\.registrar\.users\[0\]\.caller_id: .*E\.164/);
    expect(errors({ domain: "d.example", calls: { max_calls: 0 } }).join("\n")).toMatch(/sip\.registrar\.calls\.max_calls: /);
    expect(errors({ domain: "d.example", calls: { cps: 1, nope: 1 } }).join("\n")).toMatch(/sip\.registrar\.calls\.nope: unknown key/);
  });

  it("never echoes a password", () => {
    const e = errors({ domain: "d.example", users: [{ user: "a", tenant: "t", password: "short" }] });
    expect(e.join("\n")).toMatch(/sip\.registrar\.users\[0\]\.password: .*8 to 256/);
    expect(e.join("\n")).not.toContain("short");
  });
});
