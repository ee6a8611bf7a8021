import { spawn } from "node:child_process";
import fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { SipStack, UDP_RECV_BUFFER, type ServerTransaction, type SipStackHandler, type SipStackOptions } from "../../src/sip/index.js";

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

class Counter implements SipStackHandler {
  n = 0;
  onRequest(_tx: ServerTransaction): void {
    this.n++;
  }
  onAck(): void {}
  onStrayResponse(): void {}
  onParseError(): void {}
}

function rmemMax(): number | null {
  try {
    return Number(fs.readFileSync("/proc/sys/net/core/rmem_max", "latin1").trim());
  } catch {
    return null;
  }
}

/** A separate process (its own event loop) that sends `n` distinct OPTIONS to a port once told "go" on stdin. */
const SENDER = `
const dgram = require("node:dgram");
const [port, n] = process.argv.slice(1).map(Number);
const s = dgram.createSocket("udp4");
s.bind(0, "127.0.0.1", () => {
  process.stdout.write("ready\\n");
  process.stdin.once("data", () => {
    const lp = s.address().port;
    let done = 0;
    for (let i = 0; i < n; i++) {
      const m = "OPTIONS sip:burst@127.0.0.1:" + port + " SIP/2.0\\r\\n" +
        "Via: SIP/2.0/UDP 127.0.0.1:" + lp + ";branch=z9hG4bKburst" + i + "\\r\\n" +
        "Max-Forwards: 70\\r\\nFrom: <sip:a@127.0.0.1>;tag=f" + i + "\\r\\nTo: <sip:burst@127.0.0.1>\\r\\n" +
        "Call-ID: burst-" + i + "@127.0.0.1\\r\\nCSeq: 1 OPTIONS\\r\\nContent-Length: 0\\r\\n\\r\\n";
      s.send(m, port, "127.0.0.1", () => {
        if (++done === n) s.close(() => process.stdout.write("sent\\n"));
      });
    }
  });
});
`;

describe("UDP listener receive buffer", () => {
  it("asks the kernel for a deep receive buffer (granted up to net.core.rmem_max, reported doubled)", async () => {
    const max = rmemMax();
    const stack = await SipStack.create({ listen: ["udp://127.0.0.1:0"] } as SipStackOptions, new Counter());
    cleanup.push(() => stack.close());
    const l = stack.listeners[0]!;
    expect(l.transport).toBe("udp");
    if (max !== null) expect(l.recvBufferSize).toBe(2 * Math.min(UDP_RECV_BUFFER, max));
    else expect(l.recvBufferSize).toBeGreaterThan(0);
  });

  // A burst that arrives while the event loop is busy waits in the kernel: with the kernel's
  // default buffer (about 200 KiB) most of 2,000 datagrams would be dropped.
  const deep = (rmemMax() ?? 0) >= 2 * 1024 * 1024;
  it.skipIf(!deep)("keeps a burst of 2,000 datagrams that arrives during a 600 ms stall of the event loop", async () => {
    const N = 2000;
    const h = new Counter();
    const stack = await SipStack.create({ listen: ["udp://127.0.0.1:0"], maxServerTransactions: 10_000 } as SipStackOptions, h);
    cleanup.push(() => stack.close());
    const port = stack.listeners[0]!.port;
    const child = spawn(process.execPath, ["-e", SENDER, String(port), String(N)], { stdio: ["pipe", "pipe", "inherit"] });
    cleanup.push(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const until = async (cond: () => boolean, ms: number): Promise<void> => {
      const end = Date.now() + ms;
      while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    };
    await until(() => out.includes("ready"), 10_000);
    expect(out).toContain("ready");
    child.stdin.write("go\n");
    // the event loop stalls: nothing is read from the socket while the burst arrives
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600);
    await until(() => out.includes("sent") && h.n >= N, 10_000);
    expect(out).toContain("sent");
    expect(h.n).toBe(N);
  });
});
