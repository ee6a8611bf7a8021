/**
 * TCP/TLS slowloris: connections from untrusted sources (127.0.0.10-13 here, the handler's
 * isTrusted says no) trickle a byte at a time and hold their slots. With the untrusted share of
 * the connection limit, a trusted peer's (127.0.0.1) INVITE over TCP is still answered while the
 * flood holds every slot it can get; and a message must be complete within messageTimeoutMs of its
 * first byte, whatever the trickle.
 */
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import tls from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { SipStack, type ServerTransaction, type SipStackHandler } from "../../src/sip/index.js";

const FIX = path.join(path.dirname(new URL(import.meta.url).pathname), "fixtures");
const CERT = fs.readFileSync(path.join(FIX, "cert.pem"));
const KEY = fs.readFileSync(path.join(FIX, "key.pem"));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const invite = (port: number): string =>
  [
    `INVITE sip:+15125550100@127.0.0.1:${port} SIP/2.0`,
    "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-trusted-1",
    "From: <sip:a@127.0.0.1>;tag=1",
    `To: <sip:+15125550100@127.0.0.1:${port}>`,
    "Call-ID: trusted-1@test",
    "CSeq: 1 INVITE",
    "Max-Forwards: 70",
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");

class Handler implements SipStackHandler {
  refused: string[] = [];
  onRequest(tx: ServerTransaction): void {
    tx.reply(486);
  }
  isTrusted(a: string): boolean {
    return a === "127.0.0.1";
  }
  onConnectionRefused(_t: string, a: string, _p: number, reason: string): void {
    this.refused.push(a + " " + reason);
  }
}

/** Open a connection from `local` and trickle a byte every `everyMs` (until closed). */
function trickle(local: string, port: number, everyMs: number, useTls = false): { sock: net.Socket; closed: Promise<number>; opened: Promise<boolean> } {
  const t0 = Date.now();
  const sock = useTls
    ? tls.connect({ host: "127.0.0.1", port, localAddress: local, rejectUnauthorized: false } as tls.ConnectionOptions)
    : net.connect({ host: "127.0.0.1", port, localAddress: local });
  sock.on("error", () => {});
  let timer: NodeJS.Timeout | undefined;
  const opened = new Promise<boolean>((r) => {
    sock.once(useTls ? "secureConnect" : "connect", () => {
      r(true);
      const bytes = Buffer.from("INVITE sip:x@y SIP/2.0\r\n");
      let i = 0;
      timer = setInterval(() => sock.write(bytes.subarray(i % bytes.length, (i++ % bytes.length) + 1)), everyMs);
    });
    sock.once("close", () => r(false));
  });
  const closed = new Promise<number>((r) =>
    sock.once("close", () => {
      if (timer) clearInterval(timer);
      r(Date.now() - t0);
    }),
  );
  cleanup.push(() => void sock.destroy());
  return { sock, closed, opened };
}

describe("slowloris on the SIP TCP listener", () => {
  it("a flood of slow untrusted connections does not lock out a trusted peer's INVITE", async () => {
    const h = new Handler();
    const stack = await SipStack.create(
      { listen: ["tcp://127.0.0.1:0"], autoTrying: false, registry: new Registry(), transport: { maxConnections: 120, maxUntrustedConnections: 60, maxConnectionsPerIp: 64, messageTimeoutMs: 30_000 } },
      h,
    );
    cleanup.push(() => stack.close());
    const port = stack.listeners[0]!.port;
    // 4 addresses x 40 connections: more than the whole limit of 120
    const flood = [];
    for (let i = 0; i < 160; i++) flood.push(trickle(`127.0.0.${10 + (i % 4)}`, port, 500));
    const opened = await Promise.all(flood.map((f) => f.opened));
    await sleep(300);
    const alive = flood.filter((f) => !f.sock.destroyed).length;
    expect(opened.filter(Boolean).length).toBeGreaterThanOrEqual(60);
    expect(alive).toBeLessThanOrEqual(60);
    expect(stack.transport.untrustedCount).toBe(60);
    expect(h.refused.some((r) => r.endsWith(" untrusted"))).toBe(true);
    // the trusted peer still gets in and is answered
    const got = await new Promise<string>((resolve, reject) => {
      const c = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.1" }, () => c.write(invite(port)));
      let buf = "";
      c.on("data", (d) => {
        buf += d.toString("latin1");
        if (buf.includes("\r\n\r\n")) {
          c.destroy();
          resolve(buf);
        }
      });
      c.on("error", reject);
      c.on("close", () => resolve(buf));
    });
    expect(got).toMatch(/^SIP\/2\.0 486 /);
  });

  it("a message trickled a byte at a time is cut off after messageTimeoutMs from its first byte", async () => {
    const stack = await SipStack.create({ listen: ["tcp://127.0.0.1:0"], registry: new Registry(), transport: { messageTimeoutMs: 800 } }, new Handler());
    cleanup.push(() => stack.close());
    const t = trickle("127.0.0.10", stack.listeners[0]!.port, 100);
    expect(await t.opened).toBe(true);
    const ms = await Promise.race([t.closed, sleep(4000).then(() => -1)]);
    expect(ms).toBeGreaterThan(700);
    expect(ms).toBeLessThan(3000);
    const m = await stack.metrics.transportErrors.get();
    expect(m.values.find((v) => v.labels.reason === "message_timeout")?.value).toBe(1);
  });

  it("TLS handshakes count against the untrusted share before they complete", async () => {
    const h = new Handler();
    const stack = await SipStack.create(
      { listen: ["tls://127.0.0.1:0"], tls: { cert: CERT, key: KEY }, registry: new Registry(), transport: { maxConnections: 50, maxUntrustedConnections: 10 } },
      h,
    );
    cleanup.push(() => stack.close());
    const port = stack.listeners[0]!.port;
    // raw TCP connections that never start the handshake
    const raws: net.Socket[] = [];
    for (let i = 0; i < 30; i++) {
      const s = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.11" });
      s.on("error", () => {});
      raws.push(s);
      cleanup.push(() => void s.destroy());
    }
    await sleep(400);
    expect(raws.filter((s) => !s.destroyed).length).toBeLessThanOrEqual(10);
    // a trusted peer completes its handshake
    const ok = await new Promise<boolean>((resolve) => {
      const c = tls.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.1", rejectUnauthorized: false } as tls.ConnectionOptions, () => {
        c.destroy();
        resolve(true);
      });
      c.on("error", () => resolve(false));
    });
    expect(ok).toBe(true);
  });
});
