/**
 * HMAC-SHA256 (RFC 2104, FIPS 180-4) of short strings, in JavaScript, for the one MAC on every
 * call's path: the dialog token of the INVITE's Record-Route (src/sip/rr.ts).
 *
 * Why not `createHmac`: in a busy daemon each `createHmac(...).update(...).digest()` cost about
 * 40 µs (OpenSSL's context set-up, run once a call, cold each time), against 6 µs in a tight loop.
 * Here the key's inner and outer pad blocks are compressed once, in the constructor; a MAC of a
 * 100-200 byte input is then 3-5 compressions of 64 rounds of 32-bit adds, xors and rotates
 * (nothing indexed by secret data), into buffers allocated once. Results are the same bytes as
 * node:crypto's (the tests compare them on random keys and inputs).
 */
import { createHash } from "node:crypto";

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
  0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
  0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
  0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
  0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
  0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/** The message schedule, shared (JavaScript runs one MAC at a time). */
const W = new Int32Array(64);

/** One SHA-256 compression of the 64-byte block b[off, off + 64) into the state st. */
function compress(st: Int32Array, b: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++) {
    const j = off + i * 4;
    W[i] = (b[j]! << 24) | (b[j + 1]! << 16) | (b[j + 2]! << 8) | b[j + 3]!;
  }
  for (let i = 16; i < 64; i++) {
    const x = W[i - 15]!;
    const y = W[i - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
  }
  let a = st[0]!;
  let b1 = st[1]!;
  let c = st[2]!;
  let d = st[3]!;
  let e = st[4]!;
  let f = st[5]!;
  let g = st[6]!;
  let h = st[7]!;
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + s1 + ch + K[i]! + W[i]!) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b1) ^ (a & c) ^ (b1 & c);
    const t2 = (s0 + maj) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b1;
    b1 = a;
    a = (t1 + t2) | 0;
  }
  st[0] = (st[0]! + a) | 0;
  st[1] = (st[1]! + b1) | 0;
  st[2] = (st[2]! + c) | 0;
  st[3] = (st[3]! + d) | 0;
  st[4] = (st[4]! + e) | 0;
  st[5] = (st[5]! + f) | 0;
  st[6] = (st[6]! + g) | 0;
  st[7] = (st[7]! + h) | 0;
}

/** The state after one block: the key xor'ed with a pad byte. */
function padState(key: Uint8Array, pad: number): Int32Array {
  const block = new Uint8Array(64);
  block.set(key);
  for (let i = 0; i < 64; i++) block[i]! ^= pad;
  const st = Int32Array.from(IV);
  compress(st, block, 0);
  return st;
}

function putWord(out: Uint8Array, off: number, v: number): void {
  out[off] = v >>> 24;
  out[off + 1] = (v >>> 16) & 255;
  out[off + 2] = (v >>> 8) & 255;
  out[off + 3] = v & 255;
}

const encoder = new TextEncoder();

export class HmacSha256 {
  private readonly inner: Int32Array;
  private readonly outer: Int32Array;
  private readonly st = new Int32Array(8);
  /** The message after the key block, padded; grown for longer inputs. */
  private buf = new Uint8Array(512);

  constructor(key: Uint8Array) {
    // a key longer than a block is hashed first (RFC 2104)
    const k = key.length > 64 ? createHash("sha256").update(key).digest() : key;
    this.inner = padState(k, 0x36);
    this.outer = padState(k, 0x5c);
  }

  /** The first `n` bytes (at most 32) of HMAC-SHA256(key, UTF-8 of input), as a new Buffer. */
  mac(input: string, n = 32): Buffer {
    let len = input.length;
    // UTF-8 needs at most 3 bytes per UTF-16 unit; plus padding (at most 72 bytes)
    if (this.buf.length < len * 3 + 72) this.buf = new Uint8Array(len * 3 + 72 + 256);
    const buf = this.buf;
    let ascii = true;
    for (let i = 0; i < len; i++) {
      const c = input.charCodeAt(i);
      if (c >= 0x80) {
        ascii = false;
        break;
      }
      buf[i] = c;
    }
    if (!ascii) len = encoder.encodeInto(input, buf).written;
    const st = this.st;
    st.set(this.inner);
    this.finish(st, len);
    for (let i = 0; i < 8; i++) putWord(buf, i * 4, st[i]!);
    st.set(this.outer);
    this.finish(st, 32);
    const out = Buffer.allocUnsafe(32);
    for (let i = 0; i < 8; i++) putWord(out, i * 4, st[i]!);
    return n >= 32 ? out : out.subarray(0, n);
  }

  /** Pad buf[0, len) (a message after one key block) and compress it into st. */
  private finish(st: Int32Array, len: number): void {
    const buf = this.buf;
    let n = len;
    buf[n++] = 0x80;
    while (n % 64 !== 56) buf[n++] = 0;
    // the length in bits of the key block and the message, big-endian 64 bit
    const bits = (len + 64) * 8;
    putWord(buf, n, Math.floor(bits / 0x100000000));
    putWord(buf, n + 4, bits >>> 0);
    n += 8;
    for (let off = 0; off < n; off += 64) compress(st, buf, off);
  }
}
