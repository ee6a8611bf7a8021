/**
 * Real SMPP peers for tests, built on the npm `smpp` package (not on didgate's codec):
 *  - startSmsc(): an SMSC that didgate binds out to;
 *  - connectEsme(): an ESME that binds to didgate's server.
 * Every peer has close(); tests must call it.
 */
import { createServer, type AddressInfo, type Socket } from "node:net";
import { Pdu, decodePdu } from "../../src/smpp/codec.js";
import smpp from "smpp";
import { gsm7Decode, ucs2Decode } from "../../src/smpp/charset.js";

export type SmppPdu = Record<string, unknown> & {
  command: string;
  command_status: number;
  sequence_number: number;
  response(opts?: Record<string, unknown>): unknown;
};

export interface SmscBind {
  session: any;
  system_id: string;
  password: string;
  command: string;
}

export interface TestSmsc {
  port: number;
  binds: SmscBind[];
  /** Every PDU received, in order. */
  received: SmppPdu[];
  /** Wait until a bound session exists (the newest). */
  waitBound(timeoutMs?: number): Promise<SmscBind>;
  /** Send a PDU on the newest bound session; resolves with the response PDU. */
  send(command: string, fields: Record<string, unknown>, bind?: SmscBind): Promise<SmppPdu>;
  /** The options given (respondAfterMs and receiptAfterMs may be changed between cases). */
  options: SmscOptions;
  /** Close listener and every session. */
  close(): Promise<void>;
}

export interface SmscOptions {
  port?: number;
  /** Accept only this password (default: any). */
  password?: string;
  /** Answer submit_sm with this status (default 0) and message ids "m1", "m2", … */
  submitStatus?: number;
  /** Answer each submit_sm with the status this returns (overrides submitStatus). */
  submitStatusOf?: (pdu: SmppPdu) => number;
  /** Prefix of the message ids (default "m"). */
  idPrefix?: string;
  /**
   * For a submit_sm with registered_delivery, send a DELIVRD receipt on the same session first and
   * the submit_sm_resp `receiptFirst` ms later (a receipt overtaking its response).
   */
  receiptFirst?: number;
  /** Answer each submit_sm this many ms late (a kill of didgate in between leaves the message in doubt). Read at each submit: may be changed on `options`. */
  respondAfterMs?: number;
  /**
   * For a submit_sm with registered_delivery, a DELIVRD receipt (the text's first 20 characters in
   * `text:`) this many ms after the submit, on the newest bound session (it waits for one).
   * Read at each submit: may be changed on `options`.
   */
  receiptAfterMs?: number;
  /** Do not answer enquire_link (to simulate a dead peer). */
  ignoreEnquireLink?: boolean;
  tls?: { key: string | Buffer; cert: string | Buffer };
}

export function waitFor<T>(fn: () => T | undefined | null | false, timeoutMs = 5000, what = "condition"): Promise<T> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      let v: T | undefined | null | false;
      try {
        v = fn();
      } catch (e) {
        reject(e);
        return;
      }
      if (v) resolve(v);
      else if (Date.now() - t0 > timeoutMs) reject(new Error("timed out waiting for " + what));
      else setTimeout(tick, 10);
    };
    tick();
  });
}

export async function startSmsc(o: SmscOptions = {}): Promise<TestSmsc> {
  const binds: SmscBind[] = [];
  const received: SmppPdu[] = [];
  const sessions = new Set<any>();
  /** Receipts sent on a session and not answered yet: sent again on the next session when it closes. */
  const unanswered = new Map<any, Set<Record<string, unknown>>>();
  let ids = 0;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  // a receipt waits for a bound session (didgate restarting), and is sent again (on the newest
  // session) when its session closes before the deliver_sm_resp or the answer is not ESME_ROK, as
  // an SMSC keeps a receipt until it is acknowledged
  const sendReceipt = (fields: Record<string, unknown>): void => {
    const b = binds[binds.length - 1];
    if (b === undefined) {
      later(50, () => sendReceipt(fields));
      return;
    }
    const open = unanswered.get(b.session);
    open?.add(fields);
    const written = b.session.deliver_sm(fields, (resp: SmppPdu) => {
      open?.delete(fields);
      // refused (e.g. a temporary status while didgate starts): sent again later
      if (resp.command_status !== 0) later(200, () => sendReceipt(fields));
    });
    if (written === false) {
      // the session is closing: the next one gets it
      open?.delete(fields);
      later(50, () => sendReceipt(fields));
    }
  };
  const server = smpp.createServer(o.tls ? { key: o.tls.key, cert: o.tls.cert } : {}, (session: any) => {
    sessions.add(session);
    unanswered.set(session, new Set());
    session.on("error", () => {});
    session.on("close", () => {
      sessions.delete(session);
      for (const f of unanswered.get(session) ?? []) later(50, () => sendReceipt(f));
      unanswered.delete(session);
      const i = binds.findIndex((b) => b.session === session);
      if (i >= 0) binds.splice(i, 1);
    });
    session.on("pdu", (pdu: SmppPdu) => {
      pdu._at = Date.now(); // when it arrived (rate checks read it)
      received.push(pdu);
      switch (pdu.command) {
        case "bind_transceiver":
        case "bind_receiver":
        case "bind_transmitter": {
          const ok = o.password === undefined || pdu.password === o.password;
          session.send(pdu.response({ command_status: ok ? 0 : smpp.ESME_RINVPASWD, system_id: "testsmsc" }));
          if (ok) binds.push({ session, system_id: String(pdu.system_id), password: String(pdu.password), command: pdu.command });
          else session.close();
          break;
        }
        case "enquire_link":
          if (!o.ignoreEnquireLink) session.send(pdu.response());
          break;
        case "unbind":
          session.send(pdu.response());
          session.close();
          break;
        case "submit_sm": {
          const id = (o.idPrefix ?? "m") + ++ids;
          const resp = pdu.response({ command_status: o.submitStatusOf?.(pdu) ?? o.submitStatus ?? 0, message_id: id });
          if (o.receiptFirst !== undefined && ((pdu.registered_delivery as number) & 3) !== 0) {
            session.deliver_sm({
              source_addr: pdu.destination_addr,
              destination_addr: pdu.source_addr,
              esm_class: 4,
              short_message: `id:${id} sub:001 dlvrd:001 submit date:2612050800 done date:2612050801 stat:DELIVRD err:000 text:`,
              receipted_message_id: id,
              message_state: 2,
            });
            setTimeout(() => session.send(resp), o.receiptFirst);
          } else if (o.respondAfterMs !== undefined && o.respondAfterMs > 0) later(o.respondAfterMs, () => session.send(resp));
          else session.send(resp);
          if (o.receiptAfterMs !== undefined && ((pdu.registered_delivery as number) & 3) !== 0) {
            const text = pduText(pdu).slice(0, 20);
            const fields = {
              source_addr: pdu.destination_addr,
              source_addr_ton: pdu.dest_addr_ton,
              destination_addr: pdu.source_addr,
              dest_addr_ton: pdu.source_addr_ton,
              esm_class: 4,
              short_message: `id:${id} sub:001 dlvrd:001 submit date:2612050800 done date:2612050801 stat:DELIVRD err:000 text:${text}`,
              receipted_message_id: id,
              message_state: 2,
            };
            later(o.receiptAfterMs, () => sendReceipt(fields));
          }
          break;
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(o.port ?? 0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    binds,
    received,
    options: o,
    waitBound: (timeoutMs = 5000) => waitFor(() => binds[binds.length - 1], timeoutMs, "bind at SMSC"),
    send(command, fields, bind) {
      const b = bind ?? binds[binds.length - 1];
      if (!b) return Promise.reject(new Error("no bound session"));
      return new Promise((resolve, reject) => {
        const ok = b.session[command](fields, (resp: SmppPdu) => resolve(resp));
        if (!ok) reject(new Error("not writable"));
      });
    },
    close() {
      for (const t of timers) clearTimeout(t);
      for (const s of sessions) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface TestEsme {
  session: any;
  /** Every PDU received. */
  received: SmppPdu[];
  bind(command: "bind_transceiver" | "bind_transmitter" | "bind_receiver", system_id: string, password: string): Promise<SmppPdu>;
  send(command: string, fields: Record<string, unknown>): Promise<SmppPdu>;
  /** Write raw bytes on the socket (malformed PDUs). */
  raw(b: Buffer): void;
  /** Resolves when the connection closes. */
  closed: Promise<void>;
  close(): Promise<void>;
}

/** An ESME built on the npm smpp package. It answers deliver_sm with `deliverStatus` (default 0). */
export function connectEsme(port: number, o: { localAddress?: string; deliverStatus?: number; host?: string } = {}): Promise<TestEsme> {
  return new Promise((resolve, reject) => {
    const received: SmppPdu[] = [];
    const session = smpp.connect({ host: o.host ?? "127.0.0.1", port, localAddress: o.localAddress });
    let closedResolve!: () => void;
    const closed = new Promise<void>((r) => (closedResolve = r));
    session.on("close", () => closedResolve());
    session.on("error", (e: Error) => reject(e));
    session.on("pdu", (pdu: SmppPdu) => {
      received.push(pdu);
      if (pdu.command === "deliver_sm") session.send(pdu.response({ command_status: o.deliverStatus ?? 0 }));
      if (pdu.command === "enquire_link") session.send(pdu.response());
      if (pdu.command === "unbind") session.send(pdu.response());
    });
    session.on("connect", () => {
      resolve({
        session,
        received,
        bind: (command, system_id, password) =>
          new Promise((res) => session[command]({ system_id, password }, (resp: SmppPdu) => res(resp))),
        send: (command, fields) =>
          new Promise((res, rej) => {
            if (!session[command](fields, (resp: SmppPdu) => res(resp))) rej(new Error("not writable"));
          }),
        raw: (b) => session.socket.write(b),
        closed,
        close: () => {
          session.destroy();
          return closed;
        },
      });
    });
  });
}

/** The text of a submit_sm or deliver_sm as the npm smpp package decoded it (GSM 7 or UCS-2 bytes, or a string). */
export function pduText(p: SmppPdu): string {
  const m = (p.short_message as { message: Buffer | string }).message;
  return typeof m === "string" ? m : p.data_coding === 8 ? ucs2Decode(m) : gsm7Decode(m);
}

/** What reached an SMSC for one destination address, in order: [source_addr, text]. */
export function submittedTo(s: TestSmsc, to: string): [string, string][] {
  return s.received.filter((p) => p.command === "submit_sm" && p.destination_addr === to).map((p) => [String(p.source_addr), pduText(p)]);
}

/**
 * A raw SMSC on loopback, built on didgate's own codec: `onPdu` gets every decoded PDU with its
 * socket and writes what it wants, several PDUs in one buffer if it likes (what the npm `smpp`
 * server cannot do). Answers nothing by itself.
 */
export async function startRawSmsc(onPdu: (p: Pdu, sock: Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on("error", () => {});
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 16 && buf.length >= buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const p = decodePdu(buf, 0, len);
        buf = buf.subarray(len);
        if (p instanceof Pdu) onPdu(p, sock);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
