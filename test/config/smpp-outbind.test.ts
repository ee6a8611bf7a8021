/** Config checks for outbind binds: host/port optional only with outbind, which needs smpp.listen. */
import { describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/load.js";

const bind = { name: "smsc-o", system_id: "didgate1", password: "pw1" };

function errors(smpp: Record<string, unknown>): string[] {
  const v = validateConfig({ smpp });
  return v.ok ? [] : v.errors;
}

describe("smpp.binds outbind", () => {
  it("an outbind bind needs no host or port, but smpp.listen", () => {
    expect(errors({ listen: "127.0.0.1:2775", binds: [{ ...bind, outbind: true, outbind_sources: ["192.0.2.0/24"] }] })).toEqual([]);
    expect(errors({ binds: [{ ...bind, outbind: true }] }).join("\n")).toMatch(/outbind.*smpp\.listen/);
  });

  it("a bind that connects out still needs host and port; outbind_sources only with outbind; CIDRs checked", () => {
    expect(errors({ binds: [bind] }).join("\n")).toMatch(/host and port are required/);
    expect(errors({ binds: [{ ...bind, host: "smsc.example.net", port: 2775, outbind_sources: ["192.0.2.1"] }] }).join("\n")).toMatch(/only with outbind/);
    expect(errors({ listen: "127.0.0.1:2775", binds: [{ ...bind, outbind: true, outbind_sources: ["not-an-ip"] }] })).not.toEqual([]);
  });
});
