/**
 * Why an SMPP request got no answer, as the outbound path reads it: "timeout" and "closed" (the
 * PDU was written; the peer may have it), "unsent" (never written: the session closed with it
 * queued behind the window, or was closed already). A real TCP peer on loopback that reads and
 * never answers.
 */
import net from "node:net";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Pdu } from "../../src/smpp/codec.js";
import { CMD } from "../../src/smpp/constants.js";
import { SessionError, SmppSession } from "../../src/smpp/session.js";
import { systemClock } from "../../src/util/clock.js";

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

/** A session (ESME side) to a peer that reads everything and answers nothing. */
async function silentPeerSession(responseTimeoutMs: number): Promise<{ session: SmppSession; received: () => number }> {
  let bytes = 0;
  const server = net.createServer((c) => c.on("data", (d: Buffer) => (bytes += d.length)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const sock = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  await new Promise<void>((r) => sock.once("connect", () => r()));
  const session = new SmppSession(
    sock,
    "esme",
    { maxPduLength: 65_536, windowOut: 1, windowIn: 10, responseTimeoutMs, enquireLinkMs: 0, inactivityMs: 0, clock: systemClock, logger: pino({ level: "silent" }) },
    { onRequest: () => {}, onClose: () => {}, onPdu: () => {} },
  );
  cleanup.push(() => {
    session.close("test done");
    server.close();
  });
  return { session, received: () => bytes };
}

const code = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => "answered",
    (e: unknown) => (e instanceof SessionError ? e.code : "other"),
  );

describe("SMPP session: why a request got no answer", () => {
  it("written and closed: closed; queued behind the window: unsent; after the close: unsent", async () => {
    const { session, received } = await silentPeerSession(60_000);
    const first = code(session.request(new Pdu(CMD.enquire_link)));
    const second = code(session.request(new Pdu(CMD.enquire_link)));
    // the first is on the wire (16 bytes), the second waits for room in a window of 1
    await new Promise((r) => setTimeout(r, 100));
    expect(received()).toBe(16);
    session.close("peer gone");
    expect(await first).toBe("closed");
    expect(await second).toBe("unsent");
    expect(await code(session.request(new Pdu(CMD.enquire_link)))).toBe("unsent");
  });

  it("written and not answered in time: timeout", async () => {
    const { session } = await silentPeerSession(300);
    expect(await code(session.request(new Pdu(CMD.enquire_link)))).toBe("timeout");
  });
});
