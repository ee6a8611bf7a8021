/**
 * Streamed import bodies: NDJSON (`{"key": "+1…", "route": {…}}` per line) or CSV with the columns
 * of the route file loader (src/routing/sources/document.ts: `key` and either `json` with the
 * whole entry, or the flat columns state, tenant, targets, failover_on, ring_timeout_s, webhook,
 * smpp). The body is read chunk by chunk and cut into records (a CSV record may span lines inside
 * quotes); a record is never longer than MAX_RECORD_BYTES, so memory stays bounded whatever the
 * body size.
 */
import { parseCsv } from "../routing/sources/document.js";
import { errMessage } from "../util/errors.js";

export const MAX_RECORD_BYTES = 1024 * 1024;

export interface ImportRecord {
  /** 1-based line of the record's start in the body. */
  line: number;
  key?: string;
  value?: unknown;
  /** Why the record could not be read (no key/value then). */
  error?: string;
}

/** Cuts a text stream into records: lines, except that CSV newlines inside quotes do not cut. */
export async function* records(body: AsyncIterable<Buffer | string>, csv: boolean): AsyncGenerator<{ line: number; text: string }> {
  const decoder = new TextDecoder("utf-8");
  let buf = "";
  let line = 1; // line of buf's start
  let scanFrom = 0;
  let quoted = false;
  const flush = function* (final: boolean): Generator<{ line: number; text: string }> {
    let start = 0;
    if (!csv) {
      // NDJSON: no quoting across lines; indexOf runs as native code.
      for (let i = buf.indexOf("\n", scanFrom); i >= 0; i = buf.indexOf("\n", start)) {
        const text = buf.slice(start, i);
        yield { line, text: text.endsWith("\r") ? text.slice(0, -1) : text };
        line++;
        start = i + 1;
      }
    } else for (let i = scanFrom; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (csv && c === 34) quoted = !quoted;
      else if (c === 10 && !quoted) {
        const text = buf.slice(start, i);
        const lines = countNewlines(text) + 1;
        yield { line, text: text.endsWith("\r") ? text.slice(0, -1) : text };
        line += lines;
        start = i + 1;
      }
    }
    buf = buf.slice(start);
    scanFrom = buf.length;
    if (final && buf.length > 0) {
      yield { line, text: buf.endsWith("\r") ? buf.slice(0, -1) : buf };
      buf = "";
    }
  };
  for await (const chunk of body) {
    buf += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    yield* flush(false);
    if (buf.length > MAX_RECORD_BYTES) throw new RecordTooLong(line);
  }
  buf += decoder.decode();
  yield* flush(true);
}

export class RecordTooLong extends Error {
  constructor(readonly line: number) {
    super(`line ${line}: a record is longer than ${MAX_RECORD_BYTES} bytes`);
  }
}

function countNewlines(s: string): number {
  let n = 0;
  for (let i = s.indexOf("\n"); i >= 0; i = s.indexOf("\n", i + 1)) n++;
  return n;
}

/** One NDJSON line: {"key": "...", "route": {...}}. Blank lines give undefined. */
export function ndjsonRecord(line: number, text: string): ImportRecord | undefined {
  if (text.trim() === "") return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { line, error: `not valid JSON (${errMessage(err)})` };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { line, error: 'must be an object {"key": "+1…", "route": {…}}' };
  const o = v as Record<string, unknown>;
  if (typeof o.key !== "string") return { line, error: 'key: is required (a route key "+1…", "+1…*" or "*")' };
  for (const k of Object.keys(o)) if (k !== "key" && k !== "route") return { line, key: o.key, error: `${k}: unknown field (allowed: key, route)` };
  if (o.route === undefined) return { line, key: o.key, error: "route: is required (the route entry)" };
  return { line, key: o.key, value: o.route };
}

export const CSV_COLUMNS = ["key", "json", "state", "tenant", "targets", "failover_on", "ring_timeout_s", "webhook", "smpp"];

function splitList(s: string): string[] {
  return s.split(/[\s|]+/).filter((x) => x.length > 0);
}

/** The CSV header: column indexes, or an error. */
export function csvHeader(text: string): { cols: Map<string, number> } | { error: string } {
  const row = parseCsv(text)[0] ?? [];
  const cols = new Map<string, number>();
  row.forEach((h, i) => cols.set(h.trim().toLowerCase(), i));
  if (!cols.has("key")) return { error: `CSV header must have a "key" column (columns: ${CSV_COLUMNS.join(", ")})` };
  for (const h of cols.keys()) if (!CSV_COLUMNS.includes(h)) return { error: `CSV column ${JSON.stringify(h)} is unknown (columns: ${CSV_COLUMNS.join(", ")})` };
  return { cols };
}

/** One CSV record to (key, entry), the way the route file loader maps the columns. */
export function csvRecord(line: number, text: string, cols: Map<string, number>): ImportRecord | undefined {
  if (text.trim() === "") return undefined;
  const row = parseCsv(text)[0] ?? [];
  const get = (name: string) => {
    const i = cols.get(name);
    return i !== undefined ? (row[i] ?? "").trim() : "";
  };
  const key = get("key");
  const json = get("json");
  if (json) {
    try {
      return { line, key, value: JSON.parse(json) };
    } catch (err) {
      return { line, key, error: `json column is not valid JSON (${errMessage(err)})` };
    }
  }
  const entry: Record<string, unknown> = {};
  if (get("state")) entry.state = get("state");
  if (get("tenant")) entry.tenant = get("tenant");
  const targets = splitList(get("targets"));
  if (targets.length > 0) {
    const voice: Record<string, unknown> = { targets };
    const fo = splitList(get("failover_on"));
    if (fo.length > 0) voice.failover_on = fo.map(Number);
    if (get("ring_timeout_s")) voice.ring_timeout_s = Number(get("ring_timeout_s"));
    entry.voice = voice;
  }
  if (get("webhook") || get("smpp")) {
    const sms: Record<string, unknown> = {};
    if (get("webhook")) sms.webhook = get("webhook");
    if (get("smpp")) sms.smpp = get("smpp");
    entry.sms = sms;
  }
  return { line, key, value: entry };
}
