import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AddressMatcher, parseCidr, parseListenUrl } from "../../src/util/net.js";
import { ConfigError, envPath, loadConfig } from "../../src/config/load.js";

function write(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "didgate-cfg-"));
  const p = join(dir, "didgate.yaml");
  writeFileSync(p, text);
  return p;
}

function errorsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.errors;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("config loading", () => {
  it("the bundled config is valid and has the contract's defaults", () => {
    const { config } = loadConfig("config/didgate.yaml", {});
    expect(config.sip.listen).toEqual(["udp://0.0.0.0:5060", "tcp://0.0.0.0:5060"]);
    expect(config.sip.unknown_source).toBe("drop");
    expect(config.admin.listen).toBe("127.0.0.1:9464");
    expect(config.routes.file).toBe("config/routes.yaml");
    expect(config.routes.redis).toBeUndefined();
    expect(config.sip.trunks[0]).toMatchObject({ did_from: "ruri", cps: 100 });
  });

  it("sip.dns_servers takes addresses with optional ports and refuses names and bad ports", () => {
    const good = loadConfig(write(`sip:\n  dns_servers: ["192.0.2.53", "127.0.0.1:5353", "[2001:db8::53]:53", "::1"]\n`), {});
    expect(good.config.sip.dns_servers).toEqual(["192.0.2.53", "127.0.0.1:5353", "[2001:db8::53]:53", "::1"]);
    expect(loadConfig(write(""), {}).config.sip.dns_servers).toBeUndefined();
    const errs = errorsOf(() => loadConfig(write(`sip:\n  dns_servers: ["dns.example.net", "127.0.0.1:70000", "10.0.0.300"]\n`), {})).join("\n");
    for (const i of [0, 1, 2]) expect(errs).toContain(`sip.dns_servers[${i}]`);
  });

  it("an empty file gives every default", () => {
    const { config } = loadConfig(write(""), {});
    expect(config.log.level).toBe("info");
    expect(config.webhooks).toMatchObject({ timeout_ms: 5000, max_age_s: 86400 });
    expect(config.smpp.max_pdu_bytes).toBe(66560);
  });

  it("reports every wrong key, type, URL, CIDR and port at once, with path and value", () => {
    const p = write(`
sip:
  listen: ["udp://0.0.0.0:99999", "http://x:1"]
  unknown_source: maybe
  trunks:
    - name: a
      sources: ["300.1.1.1", "10.0.0.0/33"]
      cps: -1
      colour: blue
smpp:
  listen: "nohost"
routes:
  redis: { url: "http://localhost:6379" }
admin:
  listen: "127.0.0.1:70000"
bogus: 1
`);
    const errs = errorsOf(() => loadConfig(p, {}));
    const text = errs.join("\n");
    for (const frag of [
      'sip.listen[0]: got "udp://0.0.0.0:99999"',
      "sip.listen[1]",
      'sip.unknown_source: got "maybe"; must be one of "drop", "reject"',
      'sip.trunks[0].sources[0]: got "300.1.1.1"',
      "sip.trunks[0].sources[1]",
      "sip.trunks[0].cps: got -1",
      "sip.trunks[0].colour: unknown key",
      'smpp.listen: got "nohost"',
      "routes.redis.url",
      "admin.listen",
      "bogus: unknown key",
    ]) {
      expect(text).toContain(frag);
    }
    expect(errs.every((e) => e.startsWith(p))).toBe(true);
  });

  it("DIDGATE_* environment variables override any setting", () => {
    const p = write("log: { level: info }\n");
    const { config } = loadConfig(p, {
      DIDGATE_LOG_LEVEL: "debug",
      DIDGATE_ROUTES_REDIS_URL: "redis://127.0.0.1:6390",
      DIDGATE_SIP_UNKNOWN_SOURCE: "reject",
      DIDGATE_SIP_LISTEN: '["udp://127.0.0.1:5099"]',
      DIDGATE_WEBHOOKS_TIMEOUT_MS: "1500",
      DIDGATE_SIP_TRUNKS_0_NAME: "t0",
      DIDGATE_SIP_TRUNKS_0_SOURCES: '["10.0.0.0/8"]',
    });
    expect(config.log.level).toBe("debug");
    expect(config.routes.redis).toMatchObject({ url: "redis://127.0.0.1:6390", prefix: "didgate:" });
    expect(config.sip.unknown_source).toBe("reject");
    expect(config.sip.listen).toEqual(["udp://127.0.0.1:5099"]);
    expect(config.webhooks.timeout_ms).toBe(1500);
    expect(config.sip.trunks[0]).toMatchObject({ name: "t0", sources: ["10.0.0.0/8"] });
  });

  it("an unknown DIDGATE_ variable or a bad env value is reported", () => {
    const errs = errorsOf(() => loadConfig(write(""), { DIDGATE_NOPE: "1", DIDGATE_ADMIN_LISTEN: "x" }));
    expect(errs.join("\n")).toContain("DIDGATE_NOPE: unknown setting");
    expect(errs.join("\n")).toContain('admin.listen: got "x"');
  });

  it("maps env names with underscores in keys", () => {
    expect(envPath("SIP_UNKNOWN_SOURCE")).toEqual(["sip", "unknown_source"]);
    expect(envPath("ROUTES_REDIS_MAX_SHRINK_RATIO")).toEqual(["routes", "redis", "max_shrink_ratio"]);
    expect(envPath("SMPP_ACCOUNTS_2_TEMP_FAIL_STATUS")).toEqual(["smpp", "accounts", 2, "temp_fail_status"]);
    expect(envPath("NOPE")).toBeUndefined();
  });

  it("missing file and bad YAML are user errors", () => {
    expect(errorsOf(() => loadConfig("/nonexistent/didgate.yaml", {}))[0]).toContain("cannot read config (ENOENT)");
    expect(errorsOf(() => loadConfig(write("sip: [\n"), {}))[0]).toContain("not valid YAML");
  });

  it("duplicate trunk names and tls listen without certificates", () => {
    const errs = errorsOf(() =>
      loadConfig(write(`sip:\n  listen: ["tls://0.0.0.0:5061"]\n  trunks:\n    - { name: a, sources: ["1.2.3.4"] }\n    - { name: a, sources: ["1.2.3.5"] }\n`), {}),
    );
    expect(errs.join("\n")).toContain('sip.trunks[1].name: got');
    expect(errs.join("\n")).toContain("sip.tls");
  });
});

describe("addresses", () => {
  it("parses CIDRs and listen URLs", () => {
    expect(parseCidr("203.0.113.0/24")).toMatchObject({ family: 4, bits: 24 });
    expect(parseCidr("2001:db8::/32")).toMatchObject({ family: 6, bits: 32 });
    expect(parseCidr("10.0.0.0/33")).toBeUndefined();
    expect(parseCidr("nonsense")).toBeUndefined();
    expect(parseListenUrl("tcp://[::1]:5060")).toEqual({ transport: "tcp", host: "::1", port: 5060 });
    expect(parseListenUrl("udp://0.0.0.0:5060")).toEqual({ transport: "udp", host: "0.0.0.0", port: 5060 });
  });
  it("exact addresses first, then the most specific CIDR; IPv4-mapped IPv6 folds to IPv4", () => {
    const m = new AddressMatcher<string>();
    m.add("10.0.0.0/8", "wide");
    m.add("10.1.0.0/16", "narrow");
    m.add("10.1.2.3", "exact");
    m.add("2001:db8::/32", "v6");
    expect(m.match("10.1.2.3")).toBe("exact");
    expect(m.match("::ffff:10.1.2.3")).toBe("exact");
    expect(m.match("10.1.9.9")).toBe("narrow");
    expect(m.match("10.9.9.9")).toBe("wide");
    expect(m.match("11.0.0.1")).toBeUndefined();
    expect(m.match("2001:db8:1::5")).toBe("v6");
    expect(m.match("2001:db9::5")).toBeUndefined();
    expect(m.match("[2001:db8::7]")).toBe("v6");
    expect(m.match("fe80::1%eth0")).toBeUndefined();
    expect(m.match("not an address")).toBeUndefined();
    // Equal specificity: the entry added first wins; an IPv6 exact address beats its /64.
    m.add("192.0.2.0/24", "first");
    m.add("192.0.2.0/24", "second");
    expect(m.match("192.0.2.9")).toBe("first");
    m.add("2001:db8:0:1::/64", "v6-64");
    m.add("2001:db8:0:1::99", "v6-exact");
    expect(m.match("2001:db8:0:1::99")).toBe("v6-exact");
    expect(m.match("2001:db8:0:1::98")).toBe("v6-64");
    expect(m.size).toBe(8);
  });
});
