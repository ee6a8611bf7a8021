/**
 * HSCAN of the routes hash on a connection of its own, with a small RESP2 reader instead of the
 * client library's reply decoder. A full load of a large table is mostly reply decoding: the
 * library builds every reply through a general decoder (about 1 µs per element here); this reader
 * knows the one reply shape it asks for and turns each element into a string with one native call.
 * The load's other steps (validation, table build) are unchanged: each batch is handed over as the
 * same flat [key, value, key, value, …] array an HSCAN reply gives.
 *
 * For standalone endpoints (plain or TLS, with AUTH and SELECT); the caller falls back to the
 * client library's HSCAN when this fails (for example on a server that refuses the connection).
 */
import { isIP, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

export interface RawScanTarget {
  host: string;
  port: number;
  tls: boolean;
  db: number;
  username?: string;
  password?: string;
}

export interface RawScanOptions {
  target: RawScanTarget;
  key: string;
  count: number;
  /** Each command's reply must arrive within this many ms; the scan fails otherwise. */
  commandTimeoutMs: number;
  /** Called with each batch's flat [key, value, …] array, in order. */
  onBatch: (flat: string[]) => void;
  /** Aborts the scan (the source is closing): the socket is destroyed and the promise rejects. */
  signal?: AbortSignal;
}

/** A reply: bulk string, simple string or integer as a string, array, null, or an error reply. */
type Reply = string | Reply[] | null | RedisReplyError;

export class RedisReplyError extends Error {}

/** Encodes a command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly string[]): Buffer {
  let s = "*" + args.length + "\r\n";
  for (const a of args) s += "$" + Buffer.byteLength(a, "utf8") + "\r\n" + a + "\r\n";
  return Buffer.from(s, "utf8");
}

interface Frame {
  items: Reply[];
  left: number;
}

/**
 * Incremental RESP2 reader: feed() chunks as they arrive; every complete top-level reply goes to
 * onReply in order. An element cut by a chunk boundary is kept (from its type byte) and read again
 * when the next chunk arrives, so only the cut element's bytes are copied.
 */
export class RespReader {
  private tail: Buffer | null = null;
  private readonly stack: Frame[] = [];

  constructor(private readonly onReply: (r: Reply) => void) {}

  feed(chunk: Buffer): void {
    let data = chunk;
    if (this.tail !== null) {
      data = Buffer.concat([this.tail, chunk]);
      this.tail = null;
    }
    const n = data.length;
    let pos = 0;
    const stack = this.stack;
    while (pos < n) {
      const type = data[pos]!;
      const lf = data.indexOf(10, pos + 1);
      if (lf < 0) break; // the header line is incomplete
      const lineEnd = data[lf - 1] === 13 ? lf - 1 : lf;
      let value: Reply;
      let next = lf + 1;
      if (type === 36 /* $ */ || type === 42 /* * */) {
        let len = 0;
        let neg = false;
        let i = pos + 1;
        if (data[i] === 45) {
          neg = true;
          i++;
        }
        const ds = i;
        for (; i < lineEnd; i++) {
          const d = data[i]! - 48;
          if (d < 0 || d > 9) throw new RedisReplyError("malformed RESP length");
          len = len * 10 + d;
        }
        if (i === ds || len > 0x7fffffff) throw new RedisReplyError("malformed RESP length");
        if (neg) {
          value = null;
        } else if (type === 36) {
          if (next + len + 2 > n) break; // the payload is incomplete
          value = data.toString("utf8", next, next + len);
          next += len + 2;
        } else {
          if (len > 0) {
            stack.push({ items: new Array<Reply>(), left: len });
            pos = next;
            continue;
          }
          value = [];
        }
      } else if (type === 43 /* + */ || type === 58 /* : */) {
        value = data.toString("utf8", pos + 1, lineEnd);
      } else if (type === 45 /* - */) {
        value = new RedisReplyError(data.toString("utf8", pos + 1, lineEnd));
      } else {
        throw new RedisReplyError(`unexpected RESP type byte 0x${type.toString(16)}`);
      }
      pos = next;
      // hand the value to its array, closing every array it completes
      for (;;) {
        const top = stack[stack.length - 1];
        if (top === undefined) {
          this.onReply(value);
          break;
        }
        top.items.push(value);
        if (--top.left > 0) break;
        stack.pop();
        value = top.items;
      }
    }
    if (pos < n) this.tail = data.subarray(pos);
  }
}

/** Scans the whole hash; resolves after the last batch went to onBatch. */
export function rawHscan(opts: RawScanOptions): Promise<void> {
  const t = opts.target;
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const waiting: ((r: Reply) => void)[] = [];
    const socket: Socket = t.tls ? tlsConnect({ host: t.host, port: t.port, ...(isIP(t.host) === 0 ? { servername: t.host } : {}) }) : netConnect({ host: t.host, port: t.port });
    const onAbort = (): void => finish(new Error("scan aborted"));
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const arm = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = waiting.length > 0 ? setTimeout(() => finish(new Error(`Redis did not answer within ${opts.commandTimeoutMs} ms`)), opts.commandTimeoutMs) : undefined;
    };
    // the connection (and the TLS handshake) has the same time as a command
    timer = setTimeout(() => finish(new Error(`no connection to Redis within ${opts.commandTimeoutMs} ms`)), opts.commandTimeoutMs);
    if (opts.signal?.aborted) return finish(new Error("scan aborted"));
    opts.signal?.addEventListener("abort", onAbort);
    const send = (args: string[], onReply: (r: Reply) => void): void => {
      waiting.push(onReply);
      socket.write(encodeCommand(args));
      if (waiting.length === 1) arm();
    };
    const expectOk = (what: string) => (r: Reply): void => {
      if (r instanceof RedisReplyError) finish(new Error(`${what}: ${r.message}`));
    };
    const reader = new RespReader((r) => {
      if (settled) return;
      const cb = waiting.shift();
      arm();
      if (cb === undefined) return finish(new Error("unexpected reply from Redis"));
      try {
        cb(r);
      } catch (err) {
        finish(err as Error);
      }
    });
    const count = String(opts.count);
    const onScan = (r: Reply): void => {
      if (settled) return;
      if (r instanceof RedisReplyError) return finish(new Error(`HSCAN: ${r.message}`));
      if (!Array.isArray(r) || r.length !== 2 || typeof r[0] !== "string" || !Array.isArray(r[1])) return finish(new Error("HSCAN: unexpected reply shape"));
      const cursor = r[0];
      // the next batch is asked for before this one is handled, so Redis works while we do
      if (cursor !== "0") send(["HSCAN", opts.key, cursor, "COUNT", count], onScan);
      const flat = r[1];
      for (let i = 0; i < flat.length; i++) if (typeof flat[i] !== "string") return finish(new Error("HSCAN: unexpected element"));
      opts.onBatch(flat as string[]);
      if (cursor === "0") finish();
    };
    socket.on(t.tls ? "secureConnect" : "connect", () => {
      if (settled) return;
      if (t.password !== undefined) send(t.username !== undefined ? ["AUTH", t.username, t.password] : ["AUTH", t.password], expectOk("AUTH"));
      if (t.db !== 0) send(["SELECT", String(t.db)], expectOk("SELECT"));
      send(["HSCAN", opts.key, "0", "COUNT", count], onScan);
    });
    socket.on("data", (chunk: Buffer) => {
      if (settled) return;
      try {
        reader.feed(chunk);
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on("error", (err) => finish(err));
    socket.on("close", () => finish(new Error("Redis closed the connection during the scan")));
  });
}
