/**
 * Webhooks to internal addresses: refused by default, and never connected to (a real listening
 * server on 127.0.0.1 counts the connections it gets); allowed through webhooks.allow_private.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/load.js";
import { AddressPolicy } from "../../src/delivery/ssrf.js";
import { WebhookSender } from "../../src/delivery/webhook.js";
import { job, makeDelivery } from "./util.js";

let server: Server;
let port = 0;
let connections = 0;
let requests = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests++;
    req.resume();
    req.on("end", () => res.writeHead(200).end("ok"));
  });
  server.on("connection", () => connections++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe("webhook address policy", () => {
  it("refuses loopback, private, link-local, unique-local and special ranges; allows public addresses and what allow_private lists", () => {
    const p = new AddressPolicy();
    for (const a of ["127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:7f00:1", "0:0:0:0:0:ffff:7f00:1", "::ffff:a9fe:a9fe", "64:ff9b::a9fe:a9fe", "[::1]", "not-an-ip"]) {
      expect(p.allows(a), a).toBe(false);
    }
    for (const a of ["8.8.8.8", "93.184.216.34", "2001:4860:4860::8888", "172.32.0.1", "192.169.0.1", "::ffff:8.8.8.8"]) expect(p.allows(a), a).toBe(true);
    const open = new AddressPolicy(["127.0.0.0/8", "fd00::/8", "10.0.0.5"]);
    expect(open.allows("127.0.0.1")).toBe(true);
    expect(open.allows("::ffff:127.0.0.1")).toBe(true);
    expect(open.allows("fd12::1")).toBe(true);
    expect(open.allows("10.0.0.5")).toBe(true);
    expect(open.allows("10.0.0.6")).toBe(false);
    expect(open.allows("169.254.169.254")).toBe(false);
  });

  for (const transport of ["http", "fetch"] as const) {
    it(`${transport}: refuses internal targets without connecting; with the allow-list it delivers`, async () => {
      const before = connections;
      const deny = new WebhookSender({ timeoutMs: 2000, transport });
      try {
        for (const url of [
          `http://127.0.0.1:${port}/hook`,
          `http://0x7f000001:${port}/hook`, // the URL parser reads it as 127.0.0.1
          `http://2130706433:${port}/hook`,
          `http://127.1:${port}/hook`,
          `http://[::ffff:127.0.0.1]:${port}/hook`,
          `http://localhost:${port}/hook`, // a name resolving to loopback
          "http://169.254.169.254/latest/meta-data/",
        ]) {
          const a = await deny.send(url, "msg_1", "{}");
          expect(a.result, url).toEqual({ kind: "dead", reason: "webhook address not allowed" });
          expect(a.status).toBe(0);
        }
        // credentials in the URL: refused whatever the address
        expect((await deny.send(`http://user:pw@127.0.0.1:${port}/hook`, "msg_1", "{}")).result).toEqual({ kind: "dead", reason: "invalid webhook url" });
      } finally {
        deny.close();
      }
      expect(connections - before).toBe(0);
      expect(requests).toBe(0);

      const allow = new WebhookSender({ timeoutMs: 2000, transport, allowPrivate: ["127.0.0.0/8"] });
      try {
        expect((await allow.send(`http://127.0.0.1:${port}/hook`, "msg_2", "{}")).result).toEqual({ kind: "delivered" });
        expect((await allow.send(`http://localhost:${port}/hook`, "msg_3", "{}")).result).toEqual({ kind: "delivered" });
        expect((await allow.send(`http://user:pw@127.0.0.1:${port}/hook`, "msg_4", "{}")).result).toEqual({ kind: "dead", reason: "invalid webhook url" });
      } finally {
        allow.close();
      }
      expect(requests).toBe(2);
      requests = 0;
    });
  }

  it("direct mode answers a message to a refused address as a permanent failure", async () => {
    const before = connections;
    const { delivery } = makeDelivery(undefined, "x:", { webhookOver: { allow_private: [] } });
    try {
      expect(await delivery.accept(job(1, { webhook: `http://127.0.0.1:${port}/hook` }))).toBe("permanent");
    } finally {
      await delivery.close();
    }
    expect(connections - before).toBe(0);
  });

  it("config: webhooks.allow_private takes CIDRs and addresses, and refuses anything else", () => {
    const ok = validateConfig({ webhooks: { allow_private: ["127.0.0.0/8", "::1", "10.0.0.0/8"] } });
    expect(ok.ok && ok.config.webhooks.allow_private).toEqual(["127.0.0.0/8", "::1", "10.0.0.0/8"]);
    const def = validateConfig({});
    expect(def.ok && def.config.webhooks.allow_private).toEqual([]);
    const bad = validateConfig({ webhooks: { allow_private: ["localhost"] } });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors.join("\n")).toContain("webhooks.allow_private[0]");
  });
});
