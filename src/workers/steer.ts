/**
 * Which worker owns a SIP datagram (sip.workers > 1). Pure: no sockets, no state.
 *
 * Every worker receives datagrams from the one shared UDP socket, so a message may land on a
 * worker that does not hold its transaction or dialog. The owner is:
 * - a response: the worker named by the tag in the top Via's branch (every branch a worker
 *   generates carries "-w<index>-", see branchTag); without a tag, as a request;
 * - a request (INVITE, ACK, BYE, CANCEL, re-INVITE, any in-dialog request): by hash(Call-ID), in
 *   shares that leave the readers of the socket fewer calls (ownerShares), so every request of a
 *   dialog, and the INVITE that set it up, land on the same worker.
 * A datagram without a Call-ID (or not SIP at all) has no owner (-1): the worker that got it
 * handles it (the stack answers or drops it as it would in one process).
 *
 * The scan reads only the start line and the headers up to the blank line, as latin1 (no UTF-8
 * decoding), the way the parser reads them (folded lines belong to the header before them), so
 * the owner is the hash of the Call-ID the stack will see; it neither validates nor allocates per
 * header. It runs on every datagram before any flood guard, so its work is bounded: the first
 * SCAN_FIRST_BYTES decoded (the rest only if the headers go on), at most SCAN_MAX_LINES header
 * fields (the parser refuses more) and SCAN_MAX_PHYSICAL_LINES lines, and no part of the text is
 * searched twice. A Call-ID beyond that is not seen: the datagram has no owner and the worker that
 * got it handles it.
 */

/** Bytes of a datagram the scan reads at most: a whole UDP datagram (the parser reads them all). */
export const SCAN_MAX_BYTES = 65535;
/** Bytes decoded first; most messages' headers end before. */
const SCAN_FIRST_BYTES = 8192;
/** Header fields the scan visits at most (the parser's limit; continuation lines are part of a field). */
export const SCAN_MAX_LINES = 100;

/** Lines (fields and their continuation lines) the scan visits at most. */
export const SCAN_MAX_PHYSICAL_LINES = 400;

/** Header lines visited by scanMessage since the process started (lets tests check the bound). */
export const scanStats = { lines: 0 };

/** What steering needs of a message. */
export interface SteerInfo {
  response: boolean;
  /** Request method, or the CSeq method of a response ("" when absent). */
  method: string;
  /** The top Via's branch parameter ("" when absent). */
  branch: string;
  /** Call-ID ("" when absent). */
  callId: string;
}

/** The piece a worker puts in the branches it generates: "-w3" (the stack appends "-"). */
export function branchTag(index: number): string {
  return "-w" + index;
}

/** The worker index tagged in a branch ("...-w3-..."), or -1 (no tag, or not below n). */
export function branchWorker(branch: string, n: number): number {
  let from = 0;
  for (;;) {
    const i = branch.indexOf("-w", from);
    if (i < 0) return -1;
    let j = i + 2;
    let v = 0;
    while (j < branch.length) {
      const c = branch.charCodeAt(j);
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
      j++;
    }
    if (j > i + 2 && j - i - 2 <= 4 && branch.charCodeAt(j) === 45 /* - */) return v < n ? v : -1;
    from = i + 2;
  }
}

/**
 * What reading the shared socket costs a reader, as a fraction of the work of the calls: a reader
 * receives and scans every datagram and hands off those of other workers' calls. Measured with two
 * workers (docs/sip.md "Workers"): owning half of the calls at 1,000 calls/s the reader used 0.2
 * of the calls' work more than the other worker; owning 0.4 of them at 1,300 calls/s, 0.29.
 */
export const READ_COST = 0.25;

/** Slots of the ownership table (a prime: every bit of the hash counts). */
export const OWNER_SLOTS = 1021;

/**
 * Each worker's share of the calls (index: worker): readers take less, so that a reader's load (its
 * calls plus reading and steering 1/k of all datagrams) and another worker's (its calls) are equal.
 * With n workers of which k read, a worker that does not read owns (1 + READ_COST) / n of the calls
 * and a reader READ_COST / k less (none, when that is below zero).
 */
export function ownerShares(n: number): number[] {
  const readers = udpReaders(n);
  const k = readers.length;
  const other = (1 + READ_COST) / n;
  const reader = Math.max(0, other - READ_COST / k);
  const w: number[] = [];
  for (let i = 0; i < n; i++) w.push(readers.includes(i) ? reader : other);
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / sum);
}

/** The table last asked for (a process has one worker count: the lookup per datagram is a compare). */
let tableN = 0;
let table: Uint16Array = new Uint16Array(0);

/**
 * Which worker owns each slot of the Call-ID hash: each worker's share of OWNER_SLOTS, interleaved
 * (smooth weighted round robin, ties to the lower index). Every worker computes the same table from
 * n alone.
 */
export function ownerTable(n: number): Uint16Array {
  if (n === tableN) return table;
  const shares = ownerShares(n);
  const credit = new Array<number>(n).fill(0);
  const t = new Uint16Array(OWNER_SLOTS);
  for (let s = 0; s < OWNER_SLOTS; s++) {
    let best = 0;
    for (let i = 0; i < n; i++) {
      credit[i]! += shares[i]!;
      if (credit[i]! > credit[best]!) best = i;
    }
    credit[best]! -= 1;
    t[s] = best;
  }
  tableN = n;
  table = t;
  return t;
}

/** The worker that owns a Call-ID: FNV-1a (32 bit) of it, its slot in ownerTable(n). */
export function callIdWorker(callId: string, n: number): number {
  if (n <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < callId.length; i++) h = Math.imul(h ^ callId.charCodeAt(i), 0x01000193);
  return ownerTable(n)[(h >>> 0) % OWNER_SLOTS]!;
}

/** Whether a char code is white space as the parser trims it around values: space, tab, CR, LF. */
function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/** text[from, end) without the white space (isWs) at either end. */
function trimmed(text: string, from: number, end: number): string {
  let s = from;
  let e = end;
  while (s < e && isWs(text.charCodeAt(s))) s++;
  while (e > s && isWs(text.charCodeAt(e - 1))) e--;
  return text.slice(s, e);
}

/**
 * Whether text[from, from + lowerAscii.length) equals lowerAscii ignoring ASCII case (what
 * toLowerCase() gives on latin1 text for these names: no other latin1 letter lowers to ASCII).
 * lowerAscii holds lower-case letters and other ASCII that is compared as is.
 */
function equalsCi(text: string, from: number, lowerAscii: string): boolean {
  for (let i = 0; i < lowerAscii.length; i++) {
    const t = lowerAscii.charCodeAt(i);
    const c = text.charCodeAt(from + i);
    if (c !== t && !(t >= 97 && t <= 122 && c === t - 32)) return false;
  }
  return true;
}

/**
 * Which header steering needs a field name is, given the text between the line's start and its
 * colon (trimmed, compared as toLowerCase() would): 1 a Via, 2 a Call-ID, 3 CSeq, 0 any other. No
 * string is made.
 */
function nameKind(text: string, start: number, end: number): number {
  let s = start;
  let e = end;
  while (s < e && isWs(text.charCodeAt(s))) s++;
  while (e > s && isWs(text.charCodeAt(e - 1))) e--;
  switch (e - s) {
    case 1: {
      const c = text.charCodeAt(s) | 32;
      return c === 118 /* v */ ? 1 : c === 105 /* i */ ? 2 : 0;
    }
    case 3:
      return equalsCi(text, s, "via") ? 1 : 0;
    case 4:
      return equalsCi(text, s, "cseq") ? 3 : 0;
    case 7:
      return equalsCi(text, s, "call-id") ? 2 : 0;
    default:
      return 0;
  }
}

/** A header value as the parser gives it: folded lines joined by one space, trimmed (isWs). */
function unfoldValue(v: string): string {
  const u = v.indexOf("\n") >= 0 ? v.replace(/[ \t\r]*\n[ \t]*/g, " ") : v;
  return trimmed(u, 0, u.length);
}

/**
 * The branch parameter of the first Via value in text[from, end) ("" when absent): the first
 * parameter named branch (in any case; space or tab around the ";" and the "=" as RFC 3261 SWS
 * allows) before the first comma, its value up to the next ';', space, tab, CR or comma.
 */
function branchIn(text: string, from: number, end: number): string {
  let e = text.indexOf(",", from);
  if (e < 0 || e > end) e = end;
  for (let i = text.indexOf(";", from); i >= 0 && i < e; i = text.indexOf(";", i + 1)) {
    let j = i + 1;
    while (j < e && isSpTab(text.charCodeAt(j))) j++;
    if (j + 6 > e || !equalsCi(text, j, "branch")) continue;
    j += 6;
    while (j < e && isSpTab(text.charCodeAt(j))) j++;
    if (j >= e || text.charCodeAt(j) !== 61 /* = */) continue;
    j++;
    while (j < e && isSpTab(text.charCodeAt(j))) j++;
    let k = j;
    while (k < e) {
      const c = text.charCodeAt(k);
      if (c === 59 || c === 32 || c === 9 || c === 13 || c === 44) break;
      k++;
    }
    return text.slice(j, k);
  }
  return "";
}

function isSpTab(c: number): boolean {
  return c === 32 || c === 9;
}

/** The method of a CSeq value in text[from, end): its second word ("" when it has none). */
function cseqMethodIn(text: string, from: number, end: number): string {
  let i = from;
  while (i < end && isWs(text.charCodeAt(i))) i++;
  while (i < end && !isWs(text.charCodeAt(i))) i++;
  while (i < end && isWs(text.charCodeAt(i))) i++;
  let j = i;
  while (j < end && !isWs(text.charCodeAt(j))) j++;
  return text.slice(i, j);
}

/**
 * The header fields steering needs, or null when the bytes are not a SIP message. It reads the
 * headers as the parser (src/sip/parse.ts) does, so that the owner is the hash of the Call-ID the
 * stack will see: a line starting with a space or tab continues the header before it (never a
 * header of its own), and the headers end at the first empty line (CRLF or LF). It makes no
 * string but the Call-ID, the branch and the method: names and values are compared in place.
 */
export function scanMessage(buf: Buffer): SteerInfo | null {
  const head = buf.length > SCAN_MAX_BYTES ? buf.subarray(0, SCAN_MAX_BYTES) : buf;
  // at first only SCAN_FIRST_BYTES are decoded, the rest only when the headers go on (no search
  // for the blank line ahead: Buffer.indexOf of "\r\n\r\n" is slow on bytes made of "\r\n")
  const full = head.length;
  let text = head.toString("latin1", 0, Math.min(full, SCAN_FIRST_BYTES));
  // CR and LF before the start line are skipped, as the parser does (RFC 3261 7.5)
  let sl = 0;
  while (sl < text.length && (text.charCodeAt(sl) === 13 || text.charCodeAt(sl) === 10)) sl++;
  let eol = text.indexOf("\n", sl);
  if (eol < 0) eol = text.length;
  // the start line, trimmed
  let fs = sl;
  let fe = eol;
  while (fs < fe && isWs(text.charCodeAt(fs))) fs++;
  while (fe > fs && isWs(text.charCodeAt(fe - 1))) fe--;
  let response: boolean;
  let method = "";
  // the version in any case, as the parser reads it
  if (fe - fs > 8 && equalsCi(text, fs, "sip/2.0 ")) response = true;
  else {
    const sp = text.indexOf(" ", fs);
    if (sp <= fs || sp >= fe || fe - fs < 7 || !equalsCi(text, fe - 7, "sip/2.0")) return null;
    response = false;
    method = text.slice(fs, sp);
  }
  let branch = "";
  let callId = "";
  let sawVia = false;
  let cseqMethod = "";
  /** The header being read that steering needs (0: none; 1: the top Via; 2: Call-ID; 3: CSeq) and where its value starts. */
  let kind = 0;
  let vs = 0;
  let ve = 0;
  /** Whether the value being read goes on over more than one line. */
  let folded = false;
  const done = (): void => {
    if (kind === 0) return;
    if (kind === 2) callId = folded ? unfoldValue(text.slice(vs, ve)) : trimmed(text, vs, ve);
    else if (folded) {
      const v = unfoldValue(text.slice(vs, ve));
      if (kind === 1) branch = branchIn(v, 0, v.length);
      else cseqMethod = cseqMethodIn(v, 0, v.length);
    } else if (kind === 1) {
      // the value's end once trimmed (a branch ends there, as at a CR)
      let e = ve;
      while (e > vs && isWs(text.charCodeAt(e - 1))) e--;
      branch = branchIn(text, vs, e);
    } else cseqMethod = cseqMethodIn(text, vs, ve);
    kind = 0;
  };
  let pos = eol + 1;
  let fields = 0;
  let lines = 0;
  let nextColon = -1;
  while (pos < text.length) {
    let nl = text.indexOf("\n", pos);
    if (nl < 0) {
      if (text.length < full) {
        // the headers go on past what was decoded: decode them all (latin1: offsets do not change)
        text = head.toString("latin1", 0, full);
        nextColon = -1;
        continue;
      }
      nl = text.length;
    }
    if (++lines > SCAN_MAX_PHYSICAL_LINES) break;
    const c = text.charCodeAt(pos);
    // an empty line: the end of the headers
    if (nl === pos || (c === 13 && nl === pos + 1)) break;
    scanStats.lines++;
    if (c === 32 || c === 9) {
      // a continuation of the header before it
      if (kind !== 0) {
        ve = nl;
        folded = true;
      }
      pos = nl + 1;
      continue;
    }
    done();
    // all that steering reads has been read (the top Via, a Call-ID, a response's CSeq): later
    // headers change nothing
    if (sawVia && callId !== "" && (!response || cseqMethod !== "")) break;
    if (++fields > SCAN_MAX_LINES) break;
    // the next colon in the text, searched again only once the scan has passed it: lines
    // without one do not each search to the end
    if (nextColon < pos) {
      nextColon = text.indexOf(":", pos);
      if (nextColon < 0) nextColon = text.length;
    }
    const colon = nextColon;
    if (colon > pos && colon < nl) {
      const k = nameKind(text, pos, colon);
      if (k === 1 && !sawVia) {
        sawVia = true;
        kind = 1;
      } else if (k === 2 && callId === "") kind = 2;
      else if (k === 3 && response && cseqMethod === "") kind = 3;
      vs = colon + 1;
      ve = nl;
      folded = false;
    }
    pos = nl + 1;
  }
  done();
  return { response, method: response ? cseqMethod : method, branch, callId };
}

/** The owning worker of a message (see the file comment), or -1: whoever received it. */
export function ownerOf(info: SteerInfo, n: number): number {
  if (info.response) {
    const w = branchWorker(info.branch, n);
    if (w >= 0) return w;
  }
  if (info.callId === "") return -1;
  return callIdWorker(info.callId, n);
}

/**
 * The workers that read the shared UDP socket (the others only send from it): the last
 * ceil(n/4). One reader steers a datagram for about the cost of reading it, and every extra
 * reader of a shared socket is woken for every datagram (docs/sip.md "Workers").
 */
export function udpReaders(n: number): number[] {
  const r = Math.max(1, Math.ceil(n / 4));
  const out: number[] = [];
  for (let i = n - r; i < n; i++) out.push(i);
  return out;
}

/**
 * Whether worker `index` of `n` reads the shared UDP socket, given the workers serving: a reader
 * does; while any reader is not serving (starting, gone, not answering) every worker does, so
 * that the datagrams do not wait in the kernel for it.
 */
export function readsUdp(index: number, n: number, serving: readonly number[]): boolean {
  const readers = udpReaders(n);
  if (readers.includes(index)) return true;
  return readers.some((r) => !serving.includes(r));
}

/** The method labels of the hand-off counters (a closed set), in the order methodLabelIndex counts. */
export const METHOD_LABELS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "other"] as const;

/** The index in METHOD_LABELS of a method's label. */
export function methodLabelIndex(m: string): number {
  switch (m) {
    case "INVITE":
      return 0;
    case "ACK":
      return 1;
    case "BYE":
      return 2;
    case "CANCEL":
      return 3;
    case "OPTIONS":
      return 4;
    default:
      return 5;
  }
}

