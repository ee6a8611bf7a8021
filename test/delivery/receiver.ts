/**
 * A real webhook receiver for delivery tests: node:http on 127.0.0.1, port 0 (or a given port to
 * come back on after down()). Records every request; the answer comes from `respond`.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { Socket } from "node:net";

export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
  /** Client port of the connection (same port = connection reused). */
  remotePort: number;
}

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  /** Wait this long before answering (ms). */
  delayMs?: number;
}

export type Responder = (r: Received, n: number) => Answer;

export interface Receiver {
  readonly port: number;
  readonly url: string;
  readonly received: Received[];
  /** Ids answered 2xx, in order. */
  readonly delivered: string[];
  respond: Responder;
  /** Stop listening and drop every connection (the receiver is "down"). */
  down(): Promise<void>;
  /** Listen again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
  /** Resolves when `pred` holds (checked on every request and every 20 ms), or rejects after `ms`. */
  until(pred: () => boolean, ms?: number): Promise<void>;
}

export async function startReceiver(respond: Responder = () => ({ status: 200 })): Promise<Receiver> {
  const received: Received[] = [];
  const delivered: string[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let server: Server | undefined;
  let port = 0;

  const make = (): Server => {
    const s = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const h = req.headers;
        const r: Received = {
          id: String(h["webhook-id"] ?? ""),
          timestamp: String(h["webhook-timestamp"] ?? ""),
          signature: String(h["webhook-signature"] ?? ""),
          headers: h,
          body: Buffer.concat(chunks).toString("utf8"),
          at: Date.now(),
          remotePort: req.socket.remotePort ?? 0,
        };
        received.push(r);
        const a = rec.respond(r, received.length);
        const send = () => {
          timers.delete(t as NodeJS.Timeout);
          if (res.destroyed) return;
          if (a.status >= 200 && a.status < 300) delivered.push(r.id);
          res.writeHead(a.status, { "content-type": "text/plain", ...(a.headers ?? {}) });
          res.end("ok");
        };
        let t: NodeJS.Timeout | undefined;
        if (a.delayMs) {
          t = setTimeout(send, a.delayMs);
          timers.add(t);
        } else send();
      });
    });
    s.keepAliveTimeout = 5_000;
    s.on("connection", (sock) => {
      sockets.add(sock);
      sock.on("close", () => sockets.delete(sock));
    });
    return s;
  };

  const listen = (p: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = make();
      s.once("error", reject);
      s.listen(p, "127.0.0.1", () => {
        server = s;
        const addr = s.address();
        port = typeof addr === "object" && addr ? addr.port : p;
        resolve();
      });
    });

  const down = async (): Promise<void> => {
    const s = server;
    server = undefined;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    if (!s) return;
    const closed = new Promise<void>((r) => s.close(() => r()));
    for (const sock of sockets) sock.destroy();
    await closed;
  };

  await listen(0);

  const rec: Receiver = {
    get port() {
      return port;
    },
    get url() {
      return `http://127.0.0.1:${port}/hook`;
    },
    received,
    delivered,
    respond,
    down,
    up: async () => {
      for (let i = 0; ; i++) {
        try {
          await listen(port);
          return;
        } catch (err) {
          if (i > 50) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    close: down,
    until: async (pred, ms = 15_000) => {
      const deadline = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms (received ${received.length}, delivered ${delivered.length})`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
  return rec;
}
