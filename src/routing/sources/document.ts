/**
 * Route documents: the YAML, JSON and CSV forms of a route table (config/routes.yaml, imports,
 * exports). Reading is linear in the document's size and passes the entries one at a time, each
 * with its line and column; validation reports every error with the entry's key and place; valid
 * entries are returned even when others are broken, so a caller can choose to skip or to refuse.
 *
 * YAML/JSON: a mapping of key → entry, optionally under a top-level `routes:` mapping.
 * CSV: a header row; `key` is required; either a `json` column with the whole entry, or the flat
 * columns state, tenant, targets (URIs separated by spaces or "|"), failover_on (codes separated
 * by spaces or "|"), ring_timeout_s, webhook, smpp.
 */
import YAML from "yaml";
import { parseOutboundSection, type OutboundEntry } from "../outbound.js";
import { parseRoute, type Route } from "../route.js";
import { parseRouteKey } from "../table.js";
import { parseYamlWhole, scanYamlEntries, type ScanResult } from "./yaml-fast.js";
import { errMessage } from "../../util/errors.js";

export type RouteFormat = "yaml" | "json" | "csv";

/** A problem in a document; line and col are 1-based, 0 when unknown. */
export interface DocError {
  line: number;
  col: number;
  message: string;
}

/** "line 3, column 5: msg" (or `file:3:5: msg` with a file name, as compilers print it). */
export function formatDocError(e: DocError, file?: string): string {
  if (file !== undefined) return e.line > 0 ? `${file}:${e.line}:${e.col}: ${e.message}` : `${file}: ${e.message}`;
  return e.line > 0 ? `line ${e.line}, column ${e.col}: ${e.message}` : e.message;
}

/** Receives the entries of a document in order, before validation. */
export interface DocumentSink {
  /**
   * One (key, entry). `text` is the entry as JSON text when the document holds it as such (JSON
   * files, the json column of a CSV), so that a consumer needing the text need not serialise it.
   */
  entry(key: string, value: unknown, line: number, col: number, text?: string): void;
  /**
   * Forget the entries given so far: the document is read again from the start (by the reference
   * parser, for a shape the entry readers do not take).
   */
  reset(): void;
  /** The `outbound:` section beside the routes (the destination prefix table), as given. */
  outbound?(value: unknown, line: number, col: number): void;
}

export interface ParsedDocument {
  entries: [string, Route][];
  errors: string[];
  /** The `outbound:` table (destination prefix to carriers), when the document has one. */
  outbound?: [string, OutboundEntry][];
}

export function formatFromPath(path: string): RouteFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".json") || lower.endsWith(".ndjson")) return "json";
  return "yaml";
}

/**
 * Validates a key and an entry. Returns the route, or undefined after passing every error (with
 * the entry's line) to `onError`.
 */
export function validateEntry(key: string, value: unknown, line: number, col: number, onError: (e: DocError) => void): Route | undefined {
  if (value instanceof CsvJsonError) {
    onError({ line, col, message: `route ${JSON.stringify(key)}: json column is not valid JSON (${value.message})` });
    return undefined;
  }
  const k = parseRouteKey(key);
  if ("error" in k) {
    onError({ line, col, message: `route ${JSON.stringify(key)}: invalid key: ${k.error}` });
    return undefined;
  }
  const r = parseRoute(key, value);
  if (r.ok) return r.route;
  for (const m of r.errors) onError({ line, col, message: m });
  return undefined;
}

/** Validate a key and an entry; push the result or its errors. */
export function addEntry(out: ParsedDocument, key: string, value: unknown, line = 0, col = 0): void {
  const route = validateEntry(key, value, line, col, (e) => out.errors.push(formatDocError(e)));
  if (route) out.entries.push([key, route]);
}

/**
 * Reads a route document, passing every entry to the sink in document order; returns the errors
 * that stop the reading (syntax, shape). Linear in the size of the document: YAML through
 * yaml-fast.ts, JSON one entry at a time, CSV row by row.
 */
export function scanRouteDocument(text: string, format: RouteFormat, sink: DocumentSink): DocError[] {
  if (format === "csv") return scanCsvRoutes(text, sink);
  const r: ScanResult = format === "json" ? scanJsonEntries(text, sink) : scanYamlEntries(text, { entry: (k, v, l, c) => sink.entry(k, v, l, c), outbound: (v, l, c) => sink.outbound?.(v, l, c) });
  if (r.ok) return [];
  if (!("whole" in r)) return [{ ...r.error, message: `not valid YAML: ${r.error.message}` }];
  // The reference parsers on the whole document (shapes the entry readers do not take).
  sink.reset();
  let doc: unknown;
  if (format === "json") {
    try {
      doc = JSON.parse(text);
    } catch (err) {
      return [jsonError(text, err as Error)];
    }
  } else {
    const w = parseYamlWhole(text);
    if (!w.ok) return [{ ...w.error, message: `not valid YAML: ${w.error.message}` }];
    doc = w.doc;
  }
  if (doc === null || doc === undefined) return [];
  if (typeof doc !== "object" || Array.isArray(doc)) return [{ line: 0, col: 0, message: "a route file is a mapping of route key to entry (optionally under `routes:`)" }];
  let map = doc as Record<string, unknown>;
  if ("outbound" in map) {
    // "outbound" is never a route key: the section sits beside the routes
    sink.outbound?.(map.outbound, 0, 0);
    map = { ...map };
    delete map.outbound;
  }
  if ("routes" in map && Object.keys(map).length === 1) {
    const inner = map.routes;
    if (inner === null || inner === undefined) return [];
    if (typeof inner !== "object" || Array.isArray(inner)) return [{ line: 0, col: 0, message: "`routes:` must be a mapping of route key to entry" }];
    map = inner as Record<string, unknown>;
  }
  for (const [key, value] of Object.entries(map)) sink.entry(String(key), value, 0, 0);
  return [];
}

export function parseRouteDocument(text: string, format: RouteFormat): ParsedDocument {
  const out: ParsedDocument = { entries: [], errors: [] };
  const stop = scanRouteDocument(text, format, {
    entry: (key, value, line, col) => addEntry(out, key, value, line, col),
    reset: () => {
      out.entries.length = 0;
      out.errors.length = 0;
      delete out.outbound;
    },
    outbound: (value, line, col) => {
      const o = parseOutboundSection(value);
      out.outbound = o.entries;
      for (const message of o.errors) out.errors.push(formatDocError({ line, col, message }));
    },
  });
  if (stop.length > 0) return { entries: [], errors: stop.map((e) => formatDocError(e)) };
  return out;
}

// ---- JSON ----------------------------------------------------------------------------------------

/** A JSON.parse error of the whole text, with its line and column. */
function jsonError(text: string, err: Error): DocError {
  const msg = err.message.split("\n")[0]!;
  let line = 0;
  let col = 0;
  const lc = /\(line (\d+) column (\d+)\)/.exec(msg);
  const at = /at position (\d+)/.exec(msg);
  if (lc) {
    line = Number(lc[1]);
    col = Number(lc[2]);
  } else if (at) {
    const p = Number(at[1]);
    const lines = new LineCounter(text);
    line = lines.lineAt(p);
    col = p - lines.lineStart + 1;
  }
  return { line, col, message: `not valid JSON: ${msg}` };
}

/** Line numbers of increasing offsets, counted once over the text. */
class LineCounter {
  private pos = 0;
  private line = 1;
  /** Offset where the line of the last lineAt() starts. */
  lineStart = 0;
  /**
   * The first newline at or after `pos` (-1: none left), -2 when not looked up yet. Kept so that a
   * document on one long line (JSON.stringify output) is searched once, not once per entry.
   */
  private nextNl = -2;
  constructor(private readonly text: string) {}
  lineAt(p: number): number {
    const t = this.text;
    for (;;) {
      if (this.nextNl === -2) this.nextNl = t.indexOf("\n", this.pos);
      const nl = this.nextNl;
      if (nl < 0 || nl >= p) break;
      this.line++;
      this.pos = nl + 1;
      this.lineStart = this.pos;
      this.nextNl = -2;
    }
    return this.line;
  }
}

/**
 * The entries of a JSON route document one at a time: the top-level object (or its only member
 * `routes`) is walked by hand and each entry's text is given to JSON.parse on its own, so the
 * document is never held as one object graph. Anything unusual (another shape, a syntax error)
 * returns `whole`: the caller then parses the whole text, which also words the error.
 */
function scanJsonEntries(text: string, sink: DocumentSink): ScanResult {
  const n = text.length;
  const lines = new LineCounter(text);
  const ws = (i: number): number => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 10 || c === 13 || c === 9) i++;
      else break;
    }
    return i;
  };
  /** End (after the closing quote) of the string starting at i, or -1. */
  const stringEnd = (i: number): number => {
    let j = i + 1;
    for (;;) {
      const q = text.indexOf('"', j);
      if (q < 0) return -1;
      let b = q - 1;
      while (text.charCodeAt(b) === 92) b--;
      if ((q - 1 - b) % 2 === 0) return q + 1;
      j = q + 1;
    }
  };
  /** End of the JSON value starting at i (not checked: JSON.parse does that), or -1. */
  const valueEnd = (i: number): number => {
    const c = text.charCodeAt(i);
    if (c === 34) return stringEnd(i);
    if (c === 123 || c === 91) {
      let depth = 0;
      for (let j = i; j < n; j++) {
        const d = text.charCodeAt(j);
        if (d === 34) {
          const e = stringEnd(j);
          if (e < 0) return -1;
          j = e - 1;
        } else if (d === 123 || d === 91) depth++;
        else if (d === 125 || d === 93) {
          if (--depth === 0) return j + 1;
        }
      }
      return -1;
    }
    let j = i;
    while (j < n) {
      const d = text.charCodeAt(j);
      if (d === 44 || d === 125 || d === 93 || d === 32 || d === 10 || d === 13 || d === 9) break;
      j++;
    }
    return j > i ? j : -1;
  };
  const WHOLE: ScanResult = { ok: false, whole: true };
  let i = ws(text.charCodeAt(0) === 0xfeff ? 1 : 0);
  if (text.charCodeAt(i) !== 123) return WHOLE;
  i = ws(i + 1);
  if (text.charCodeAt(i) === 125) return ws(i + 1) === n ? { ok: true } : WHOLE;
  // Is the first member `"routes": {`? Then its members are the entries.
  let wrapped = false;
  if (text.startsWith('"routes"', i)) {
    const j = ws(i + 8);
    if (text.charCodeAt(j) === 58) {
      const k = ws(j + 1);
      if (text.charCodeAt(k) !== 123) return WHOLE;
      wrapped = true;
      i = ws(k + 1);
    }
  }
  // Members of the entries object, starting at i (after "{" and spaces).
  if (text.charCodeAt(i) === 125) {
    i++;
  } else {
    for (;;) {
      if (text.charCodeAt(i) !== 34) return WHOLE;
      const ke = stringEnd(i);
      if (ke < 0) return WHOLE;
      const raw = text.slice(i + 1, ke - 1);
      let key: string;
      if (raw.indexOf("\\") >= 0) {
        try {
          key = JSON.parse(text.slice(i, ke)) as string;
        } catch {
          return WHOLE;
        }
      } else key = raw;
      const line = lines.lineAt(i);
      const col = i - lines.lineStart + 1;
      let j = ws(ke);
      if (text.charCodeAt(j) !== 58) return WHOLE;
      j = ws(j + 1);
      const ve = valueEnd(j);
      if (ve < 0) return WHOLE;
      const vtext = text.slice(j, ve);
      let value: unknown;
      try {
        value = JSON.parse(vtext);
      } catch {
        return WHOLE;
      }
      // Beside the routes (flat document): the outbound table, never a route key.
      if (!wrapped && key === "outbound") sink.outbound?.(value, line, col);
      else sink.entry(key, value, line, col, vtext);
      i = ws(ve);
      const c = text.charCodeAt(i);
      if (c === 44) {
        i = ws(i + 1);
        continue;
      }
      if (c === 125) {
        i++;
        break;
      }
      return WHOLE;
    }
  }
  if (wrapped) {
    i = ws(i);
    if (text.charCodeAt(i) === 44) {
      // `"outbound": {…}` after the routes; anything else: the reference decides
      const k = ws(i + 1);
      if (!text.startsWith('"outbound"', k)) return WHOLE;
      const line = lines.lineAt(k);
      const col = k - lines.lineStart + 1;
      let j = ws(k + 10);
      if (text.charCodeAt(j) !== 58) return WHOLE;
      j = ws(j + 1);
      const ve = valueEnd(j);
      if (ve < 0) return WHOLE;
      let value: unknown;
      try {
        value = JSON.parse(text.slice(j, ve));
      } catch {
        return WHOLE;
      }
      sink.outbound?.(value, line, col);
      i = ws(ve);
    }
    if (text.charCodeAt(i) !== 125) return WHOLE; // more members beside `routes`
    i++;
  }
  return ws(i) === n ? { ok: true } : WHOLE;
}

// ---- CSV ---------------------------------------------------------------------------------------

/** RFC 4180 CSV: quoted fields, doubled quotes, CRLF or LF. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  forEachCsvRow(text, (row) => void rows.push(row));
  return rows;
}

/**
 * Calls fn(fields, line) for every non-empty row of an RFC 4180 CSV text (quoted fields, doubled
 * quotes, CRLF or LF), with the line the row starts on.
 */
export function forEachCsvRow(text: string, fn: (row: string[], line: number) => void): void {
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  while (i < n) {
    const rowLine = line;
    const row: string[] = [];
    // One row: fields up to an unquoted line break.
    for (;;) {
      let field: string;
      if (text.charCodeAt(i) === 34) {
        let out = "";
        let j = i + 1;
        for (;;) {
          const q = text.indexOf('"', j);
          if (q < 0) {
            out += text.slice(j);
            j = n;
            break;
          }
          out += text.slice(j, q);
          if (text.charCodeAt(q + 1) === 34) {
            out += '"';
            j = q + 2;
            continue;
          }
          j = q + 1;
          break;
        }
        for (let k = i; k < j; k++) if (text.charCodeAt(k) === 10) line++;
        // Anything between the closing quote and the separator is kept, as before.
        let e = j;
        while (e < n) {
          const c = text.charCodeAt(e);
          if (c === 44 || c === 10 || c === 13) break;
          e++;
        }
        field = e > j ? out + text.slice(j, e) : out;
        i = e;
      } else {
        let e = i;
        while (e < n) {
          const c = text.charCodeAt(e);
          if (c === 44 || c === 10 || c === 13) break;
          e++;
        }
        field = text.slice(i, e);
        i = e;
      }
      row.push(field);
      if (i >= n) break;
      const c = text.charCodeAt(i);
      if (c === 44) {
        i++;
        if (i >= n) {
          row.push("");
          break;
        }
        continue;
      }
      // a line break
      i += c === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1;
      line++;
      break;
    }
    if (row.length > 1 || row[0] !== "") fn(row, rowLine);
  }
}

const CSV_COLUMNS = ["key", "json", "state", "tenant", "targets", "failover_on", "ring_timeout_s", "webhook", "smpp"];

function splitList(s: string): string[] {
  return s.split(/[\s|]+/).filter((x) => x.length > 0);
}

function scanCsvRoutes(text: string, sink: DocumentSink): DocError[] {
  const errors: DocError[] = [];
  let col: Int32Array | undefined; // column index per CSV_COLUMNS name, -1 when absent
  forEachCsvRow(text, (row, line) => {
    if (errors.length > 0) return;
    if (col === undefined) {
      const header = row.map((h) => h.trim().toLowerCase());
      col = Int32Array.from(CSV_COLUMNS, (name) => header.indexOf(name));
      if (col[0]! < 0) {
        errors.push({ line, col: 1, message: `CSV header must have a "key" column (columns: ${CSV_COLUMNS.join(", ")})` });
        return;
      }
      for (const h of header) if (!CSV_COLUMNS.includes(h)) errors.push({ line, col: 1, message: `CSV column ${JSON.stringify(h)} is unknown (columns: ${CSV_COLUMNS.join(", ")})` });
      return;
    }
    const c = col;
    const get = (k: number) => {
      const i = c[k]!;
      return i >= 0 ? (row[i] ?? "").trim() : "";
    };
    const key = get(0);
    const json = get(1);
    if (json) {
      let value: unknown;
      try {
        value = JSON.parse(json);
      } catch (err) {
        // An entry that does not parse is an entry error: the other rows go on.
        sink.entry(key, new CsvJsonError(errMessage(err)), line, 1);
        return;
      }
      sink.entry(key, value, line, 1, json);
      return;
    }
    const entry: Record<string, unknown> = {};
    const state = get(2);
    const tenant = get(3);
    if (state) entry.state = state;
    if (tenant) entry.tenant = tenant;
    const targets = splitList(get(4));
    if (targets.length > 0) {
      const voice: Record<string, unknown> = { targets };
      const fo = splitList(get(5));
      if (fo.length > 0) voice.failover_on = fo.map(Number);
      const rt = get(6);
      if (rt) voice.ring_timeout_s = Number(rt);
      entry.voice = voice;
    }
    const webhook = get(7);
    const smpp = get(8);
    if (webhook || smpp) {
      const sms: Record<string, unknown> = {};
      if (webhook) sms.webhook = webhook;
      if (smpp) sms.smpp = smpp;
      entry.sms = sms;
    }
    sink.entry(key, entry, line, 1);
  });
  return errors;
}

/** The value given for a CSV row whose json column is not JSON (validation reports it). */
export class CsvJsonError {
  constructor(readonly message: string) {}
}

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Serialise entries (key → entry source JSON) to a re-importable document, in one string (small
 * tables; `didgate routes export` streams instead).
 */
export function serializeRoutes(
  entries: Iterable<readonly [string, Readonly<Record<string, unknown>>]>,
  format: RouteFormat,
  outbound?: Iterable<readonly [string, Readonly<Record<string, unknown>>]>,
): string {
  if (format === "csv") {
    const lines = ["key,json"];
    for (const [k, v] of entries) lines.push(`${csvField(k)},${csvField(JSON.stringify(v))}`);
    return lines.join("\n") + "\n";
  }
  const obj: Record<string, unknown> = {};
  for (const [k, v] of entries) obj[k] = v;
  const doc: Record<string, unknown> = { routes: obj };
  if (outbound !== undefined) {
    const o: Record<string, unknown> = {};
    for (const [k, v] of outbound) o[k] = v;
    if (Object.keys(o).length > 0) doc.outbound = o;
  }
  if (format === "json") return JSON.stringify(doc, null, 2) + "\n";
  return YAML.stringify(doc);
}
