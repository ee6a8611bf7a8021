/**
 * Which worker owns a SIP datagram (sip.workers > 1). Pure: no sockets, no state.
 *
 * Every worker receives datagrams from the one shared UDP socket, so a message may land on a
 * worker that does not hold its transaction or dialog. The owner is:
 * - a response: the worker named by the tag in the top Via's branch (every branch a worker
 *   generates carries "-w<index>-", see branchTag); without a tag, as a request;
 * - a request (INVITE, ACK, BYE, CANCEL, re-INVITE, any in-dialog request): hash(Call-ID) mod N,
 *   so every request of a dialog, and the INVITE that set it up, land on the same worker.
 * A datagram without a Call-ID (or not SIP at all) has no owner (-1): the worker that got it
 * handles it (the stack answers or drops it as it would in one process).
 *
 * The scan reads only the start line and the headers up to the blank line, as latin1 (no UTF-8
 * decoding); it neither validates nor allocates per header. It runs on every datagram before any
 * flood guard, so its work is bounded: at most SCAN_MAX_BYTES of the datagram and SCAN_MAX_LINES
 * header lines, and no part of the text is searched twice. A Call-ID beyond that is not seen: the
 * datagram has no owner and the worker that got it handles it.
 */

/** Bytes of a datagram the scan reads at most. */
export const SCAN_MAX_BYTES = 8192;
/** Header lines the scan visits at most. */
export const SCAN_MAX_LINES = 100;

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

/** FNV-1a (32 bit) of a Call-ID, mod n. */
export function callIdWorker(callId: string, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < callId.length; i++) h = Math.imul(h ^ callId.charCodeAt(i), 0x01000193);
  return (h >>> 0) % n;
}

function lower(s: string): string {
  return s.length <= 8 ? s.toLowerCase() : s;
}

/** The header fields steering needs, or null when the bytes are not a SIP message. */
export function scanMessage(buf: Buffer): SteerInfo | null {
  const head = buf.length > SCAN_MAX_BYTES ? buf.subarray(0, SCAN_MAX_BYTES) : buf;
  let end = head.indexOf("\r\n\r\n");
  if (end < 0) end = head.length;
  const text = head.toString("latin1", 0, end);
  let eol = text.indexOf("\n");
  if (eol < 0) eol = text.length;
  const first = text.slice(0, eol).trim();
  let response: boolean;
  let method = "";
  if (first.startsWith("SIP/2.0 ")) response = true;
  else {
    const sp = first.indexOf(" ");
    if (sp <= 0 || !first.endsWith("SIP/2.0")) return null;
    response = false;
    method = first.slice(0, sp);
  }
  let branch = "";
  let callId = "";
  let sawVia = false;
  let cseqMethod = "";
  let pos = eol + 1;
  let lines = 0;
  let nextColon = -1;
  while (pos < text.length && lines < SCAN_MAX_LINES) {
    lines++;
    scanStats.lines++;
    let nl = text.indexOf("\n", pos);
    if (nl < 0) nl = text.length;
    // the next colon in the text, searched again only once the scan has passed it: lines
    // without one do not each search to the end
    if (nextColon < pos) {
      nextColon = text.indexOf(":", pos);
      if (nextColon < 0) nextColon = text.length;
    }
    const colon = nextColon;
    if (colon > pos && colon < nl) {
      const name = lower(text.slice(pos, colon).trim());
      if (!sawVia && (name === "via" || name === "v")) {
        sawVia = true;
        let v = text.slice(colon + 1, nl);
        const comma = v.indexOf(",");
        if (comma >= 0) v = v.slice(0, comma);
        const b = v.toLowerCase().indexOf(";branch=");
        if (b >= 0) {
          let e = b + 8;
          while (e < v.length) {
            const c = v.charCodeAt(e);
            if (c === 59 || c === 32 || c === 9 || c === 13 || c === 44) break;
            e++;
          }
          branch = v.slice(b + 8, e);
        }
      } else if (callId === "" && (name === "call-id" || name === "i")) callId = text.slice(colon + 1, nl).trim();
      else if (response && cseqMethod === "" && name === "cseq") {
        const parts = text.slice(colon + 1, nl).trim().split(/\s+/);
        cseqMethod = parts[1] ?? "";
      }
    }
    pos = nl + 1;
  }
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

/** The method as a metric label (a closed set). */
export function methodLabel(m: string): "INVITE" | "ACK" | "BYE" | "CANCEL" | "OPTIONS" | "other" {
  switch (m) {
    case "INVITE":
    case "ACK":
    case "BYE":
    case "CANCEL":
    case "OPTIONS":
      return m;
    default:
      return "other";
  }
}
