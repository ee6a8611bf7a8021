/**
 * Stream framing for SIP over TCP/TLS (RFC 3261 18.3): messages are delimited by the blank line
 * after the headers plus Content-Length bytes of body. Leading CRLFs are skipped; a CRLFCRLF
 * keep-alive "ping" is reported so the transport can answer with a CRLF "pong" (RFC 5626 3.5.1).
 * Never throws; a stream that cannot be framed (no header end within the size limit, unusable
 * Content-Length) is reported as a framing error and must be closed.
 */

export interface FrameSink {
  onFrame(msg: Buffer): void;
  onPing(): void;
  onFramingError(reason: string): void;
}

const EMPTY = Buffer.alloc(0);

export class StreamFramer {
  /** The bytes not framed yet: a chunk as it came, or a view of `store`. */
  private buf: Buffer = EMPTY;
  /**
   * When a message spans chunks: the buffer they are gathered in, `buf` at `storeAt`, with room
   * after it for the next chunks (so a message trickled in small chunks is copied a bounded number
   * of times, not once per chunk as a concatenation each time would). Bytes before `storeAt`
   * belong to messages already framed and are never written again.
   */
  private store: Buffer | null = null;
  private storeAt = 0;
  /** Bytes copied to gather messages that span chunks (for tests: linear in the bytes received). */
  copied = 0;
  /** where to resume searching for the end of headers */
  private scanFrom = 0;
  /** total length of the current message once its headers are known, else -1 */
  private need = -1;
  private failed = false;
  /** Messages framed so far. */
  frames = 0;

  constructor(
    private readonly sink: FrameSink,
    private readonly maxMessageSize: number,
  ) {}

  /** Bytes buffered and not yet framed. */
  get buffered(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    if (this.buf.length === 0) {
      this.buf = chunk;
      this.store = null;
    } else this.append(chunk);
    this.drain();
  }

  private append(chunk: Buffer): void {
    const len = this.buf.length;
    const total = len + chunk.length;
    let s = this.store;
    if (s !== null && this.storeAt + total <= s.length) {
      chunk.copy(s, this.storeAt + len);
      this.copied += chunk.length;
    } else {
      // room for twice what is there (at most about twice the largest message)
      s = this.store = Buffer.allocUnsafe(Math.max(total, Math.min(2 * total, 2 * this.maxMessageSize), 1024));
      this.buf.copy(s, 0);
      chunk.copy(s, len);
      this.copied += total;
      this.storeAt = 0;
    }
    this.buf = s.subarray(this.storeAt, this.storeAt + total);
  }

  /** Drop the first n bytes of buf. */
  private consume(n: number): Buffer {
    if (n >= this.buf.length) {
      this.buf = EMPTY;
      this.store = null;
    } else {
      this.buf = this.buf.subarray(n);
      this.storeAt += n;
    }
    return this.buf;
  }

  private fail(reason: string): void {
    this.failed = true;
    this.buf = EMPTY;
    this.store = null;
    this.sink.onFramingError(reason);
  }

  private drain(): void {
    for (;;) {
      if (this.failed) return;
      let b = this.buf;
      if (b.length === 0) return;
      if (this.need < 0) {
        // skip keep-alives / stray line ends between messages
        let i = 0;
        while (i < b.length && (b[i] === 13 || b[i] === 10)) {
          if (b[i] === 13 && i + 3 < b.length && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) {
            this.sink.onPing();
            i += 4;
            continue;
          }
          if (b[i] === 13 && b.length - i < 4 && onlyLineEnds(b, i)) {
            // maybe the first half of a CRLFCRLF ping: wait for more bytes
            break;
          }
          i++;
        }
        if (i > 0) {
          b = this.consume(i);
          this.scanFrom = 0;
          if (b.length === 0 || onlyLineEnds(b, 0)) return;
        }
        const end = headerEnd(b, this.scanFrom);
        if (end < 0) {
          if (b.length > this.maxMessageSize) return this.fail("no end of headers within " + this.maxMessageSize + " bytes");
          this.scanFrom = b.length > 3 ? b.length - 3 : 0;
          return;
        }
        const cl = findContentLength(b, end);
        if (cl < 0) return this.fail("bad Content-Length");
        this.need = end + cl;
        if (this.need > this.maxMessageSize) return this.fail("message larger than " + this.maxMessageSize + " bytes");
      }
      if (b.length < this.need) return;
      // a message gathered in a store much larger than itself is copied out, so that what keeps
      // it (a transaction, for 32 s) does not keep the whole store
      const s = this.store;
      const msg = s !== null && s.length > 2 * this.need + 4096 ? Buffer.from(b.subarray(0, this.need)) : b.subarray(0, this.need);
      this.consume(this.need);
      this.need = -1;
      this.scanFrom = 0;
      this.frames++;
      this.sink.onFrame(msg);
    }
  }
}

function onlyLineEnds(b: Buffer, from: number): boolean {
  for (let i = from; i < b.length; i++) if (b[i] !== 13 && b[i] !== 10) return false;
  return true;
}

/** Index just past the blank line ending the headers (CRLFCRLF or LFLF or LFCRLF), or -1. */
export function headerEnd(b: Buffer, from: number): number {
  let i = from;
  for (;;) {
    const lf = b.indexOf(10, i);
    if (lf < 0 || lf + 1 >= b.length) return -1;
    const c = b[lf + 1];
    if (c === 10) return lf + 2;
    if (c === 13) {
      if (lf + 2 >= b.length) return -1;
      if (b[lf + 2] === 10) return lf + 3;
    }
    i = lf + 1;
  }
}

/**
 * Content-Length value from the header block b[0..end): 0 when absent, -1 when unparsable or
 * conflicting. Case-insensitive, compact form "l" accepted, folded lines skipped.
 */
export function findContentLength(b: Buffer, end: number): number {
  let cl = -2;
  let i = 0;
  // skip start line
  let lf = b.indexOf(10, 0);
  if (lf < 0 || lf >= end) return 0;
  i = lf + 1;
  while (i < end) {
    lf = b.indexOf(10, i);
    if (lf < 0 || lf > end) lf = end;
    const c0 = b[i]! | 0x20;
    let nameEnd = -1;
    if (c0 === 108 /* l */) {
      // "l" or "content-length"? only "l" starts with l among the two
      nameEnd = i + 1;
    } else if (c0 === 99 /* c */ && lf - i > 14 && matchCi(b, i, "content-length")) {
      nameEnd = i + 14;
    }
    if (nameEnd > 0) {
      let p = nameEnd;
      while (p < lf && (b[p] === 32 || b[p] === 9)) p++;
      if (p < lf && b[p] === 58) {
        p++;
        while (p < lf && (b[p] === 32 || b[p] === 9)) p++;
        let v = 0;
        const ds = p;
        while (p < lf) {
          const d = b[p]! - 48;
          if (d < 0 || d > 9) break;
          v = v * 10 + d;
          if (v > 0x7fffffff) return -1;
          p++;
        }
        while (p < lf && (b[p] === 32 || b[p] === 9 || b[p] === 13)) p++;
        if (p !== lf || p === ds) return -1;
        if (cl !== -2 && cl !== v) return -1;
        cl = v;
      }
    }
    i = lf + 1;
  }
  return cl === -2 ? 0 : cl;
}

function matchCi(b: Buffer, at: number, lower: string): boolean {
  for (let k = 0; k < lower.length; k++) if ((b[at + k]! | 0x20) !== lower.charCodeAt(k)) return false;
  return true;
}
