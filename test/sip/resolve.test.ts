/**
 * Target resolution with configured DNS servers (sip.dns_servers), against a DNS server on a
 * loopback port: SRV then the target's A/AAAA, a name with a port (no SRV), the family we can send
 * from first, unknown names, and IP literals that ask no server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TargetResolver } from "../../src/sip/resolve.js";
import { startDns, type TestDns } from "../helpers/dns.js";

describe("TargetResolver with sip.dns_servers", () => {
  let dns: TestDns;
  beforeAll(async () => {
    dns = await startDns({
      "_sip._udp.pbx.test": { srv: [{ priority: 20, port: 5090, target: "backup.pbx.test" }, { priority: 10, port: 5070, target: "host.pbx.test" }] },
      "_sip._tcp.pbx.test": { srv: [{ port: 5071, target: "host.pbx.test" }] },
      "host.pbx.test": { a: ["127.0.0.9"], aaaa: ["::1"] },
      "backup.pbx.test": { a: ["127.0.0.10"] },
      "v6only.test": { aaaa: ["2001:db8::5"] },
      "plain.test": { a: ["127.0.0.11"] },
    });
  });
  afterAll(async () => dns.close());

  it("SRV (lowest priority) then the target's address; the answer is cached", async () => {
    const r = new TargetResolver({ canSend: () => true, servers: [dns.server] });
    expect(await r.resolve("sip:pbx.test")).toEqual({ transport: "udp", address: "127.0.0.9", port: 5070, key: "udp:127.0.0.9:5070" });
    expect(await r.resolve("sip:pbx.test;transport=tcp")).toMatchObject({ transport: "tcp", address: "127.0.0.9", port: 5071 });
    const asked = dns.questions.length;
    expect(r.resolveSync("sip:pbx.test")).toMatchObject({ address: "127.0.0.9", port: 5070 });
    expect(dns.questions.length).toBe(asked);
    expect(dns.questions).toContain("SRV _sip._udp.pbx.test");
    expect(dns.questions).toContain("A host.pbx.test");
  });

  it("a name with a port asks for its address only; no SRV record: the default port", async () => {
    const r = new TargetResolver({ canSend: () => true, servers: [dns.server] });
    const before = dns.questions.length;
    expect(await r.resolve("sip:plain.test:5080")).toMatchObject({ address: "127.0.0.11", port: 5080 });
    expect(dns.questions.slice(before)).toEqual(["A plain.test"]);
    expect(await r.resolve("sip:plain.test")).toMatchObject({ address: "127.0.0.11", port: 5060 });
  });

  it("the family we can send from comes first; the other is a fallback", async () => {
    const v6 = new TargetResolver({ canSend: (_t, fam) => fam === 6, servers: [dns.server] });
    expect(await v6.resolve("sip:host.pbx.test:5060")).toMatchObject({ address: "::1" });
    const v4 = new TargetResolver({ canSend: (_t, fam) => fam === 4, servers: [dns.server] });
    expect(await v4.resolve("sip:host.pbx.test:5060")).toMatchObject({ address: "127.0.0.9" });
    expect(await v4.resolve("sip:v6only.test:5060")).toMatchObject({ address: "2001:db8::5" });
  });

  it(";maddr= names the host to resolve, a name as well as an address (not the URI's host)", async () => {
    const r = new TargetResolver({ canSend: () => true, servers: [dns.server] });
    expect(await r.resolve("sip:evil@127.0.0.66:5071;maddr=plain.test")).toMatchObject({ address: "127.0.0.11", port: 5071 });
    expect(await r.resolve("sip:evil@127.0.0.66;maddr=pbx.test")).toMatchObject({ address: "127.0.0.9", port: 5070 });
    expect(await r.resolve("sip:evil@127.0.0.66:5071;maddr=127.0.0.12")).toMatchObject({ address: "127.0.0.12", port: 5071 });
  });

  it("an unknown name is an error, not a throw; an IP literal asks nothing", async () => {
    const r = new TargetResolver({ canSend: () => true, servers: [dns.server] });
    expect(await r.resolve("sip:nothere.test:5060")).toEqual({ error: "no address for nothere.test" });
    expect(await r.resolve("sip:nothere.test")).toHaveProperty("error");
    const before = dns.questions.length;
    expect(await r.resolve("sip:127.0.0.5:5062")).toMatchObject({ address: "127.0.0.5", port: 5062 });
    expect(dns.questions.length).toBe(before);
  });
});
