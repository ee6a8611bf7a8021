/**
 * Route documents: the YAML, JSON and CSV forms of a route table (config/routes.yaml, imports,
 * exports). Parsing validates every entry and reports every error with its key; valid entries are
 * returned even when others are broken, so a caller can choose to skip or to refuse.
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

export type RouteFormat = "yaml" | "json" | "csv";

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

/** Validate a key and an entry; push the result or its errors. */
export function addEntry(out: ParsedDocument, key: string, value: unknown): void {
  const k = parseRouteKey(key);
  if ("error" in k) {
    out.errors.push(`route ${JSON.stringify(key)}: invalid key: ${k.error}`);
    return;
  }
  const r = parseRoute(key, value);
  if (r.ok) out.entries.push([key, r.route]);
  else out.errors.push(...r.errors);
}

export function parseRouteDocument(text: string, format: RouteFormat): ParsedDocument {
  const out: ParsedDocument = { entries: [], errors: [] };
  if (format === "csv") {
    parseCsvRoutes(text, out);
    return out;
  }
  let doc: unknown;
  try {
    doc = format === "json" ? JSON.parse(text) : YAML.parse(text, { maxAliasCount: 1000 });
  } catch (err) {
    out.errors.push(`not valid ${format.toUpperCase()}: ${(err as Error).message.split("\n")[0]}`);
    return out;
  }
  if (doc === null || doc === undefined) return out;
  if (typeof doc !== "object" || Array.isArray(doc)) {
    out.errors.push("a route file is a mapping of route key to entry (optionally under `routes:`)");
    return out;
  }
  let map = doc as Record<string, unknown>;
  if ("outbound" in map) {
    // "outbound" is never a route key: the section sits beside the routes
    const o = parseOutboundSection(map.outbound);
    out.outbound = o.entries;
    out.errors.push(...o.errors);
    map = { ...map };
    delete map.outbound;
  }
  if ("routes" in map && Object.keys(map).length === 1) {
    const inner = map.routes;
    if (inner === null || inner === undefined) return out;
    if (typeof inner !== "object" || Array.isArray(inner)) {
      out.errors.push("`routes:` must be a mapping of route key to entry");
      return out;
    }
    map = inner as Record<string, unknown>;
  }
  for (const [key, value] of Object.entries(map)) addEntry(out, String(key), value);
  return out;
}

// ---- CSV ---------------------------------------------------------------------------------------

/** RFC 4180 CSV: quoted fields, doubled quotes, CRLF or LF. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field.length === 0) {
      quoted = true;
      i++;
    } else if (c === ",") {
      row.push(field);
      field = "";
      i++;
    } else if (c === "\n" || c === "\r") {
      row.push(field);
      field = "";
      if (row.length > 1 || row[0] !== "") rows.push(row);
      row = [];
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
    } else {
      field += c;
      i++;
    }
  }
  if (field.length > 0 || row.length > 0) {
    row.push(field);
    if (row.length > 1 || row[0] !== "") rows.push(row);
  }
  return rows;
}

const CSV_COLUMNS = ["key", "json", "state", "tenant", "targets", "failover_on", "ring_timeout_s", "webhook", "smpp"];

function splitList(s: string): string[] {
  return s.split(/[\s|]+/).filter((x) => x.length > 0);
}

function parseCsvRoutes(text: string, out: ParsedDocument): void {
  const rows = parseCsv(text);
  if (rows.length === 0) return;
  const header = rows[0]!.map((h) => h.trim().toLowerCase());
  const col = (name: string) => header.indexOf(name);
  if (col("key") < 0) {
    out.errors.push(`CSV header must have a "key" column (columns: ${CSV_COLUMNS.join(", ")})`);
    return;
  }
  for (const h of header) if (!CSV_COLUMNS.includes(h)) out.errors.push(`CSV column ${JSON.stringify(h)} is unknown (columns: ${CSV_COLUMNS.join(", ")})`);
  if (out.errors.length > 0) return;
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r]!;
    const get = (name: string) => {
      const i = col(name);
      return i >= 0 ? (row[i] ?? "").trim() : "";
    };
    const key = get("key");
    const json = get("json");
    if (json) {
      let value: unknown;
      try {
        value = JSON.parse(json);
      } catch (err) {
        out.errors.push(`CSV line ${r + 1}: route ${JSON.stringify(key)}: json column is not valid JSON (${(err as Error).message})`);
        continue;
      }
      addEntry(out, key, value);
      continue;
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
    addEntry(out, key, entry);
  }
}

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Serialise entries (key → entry source JSON) to a re-importable document. */
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
