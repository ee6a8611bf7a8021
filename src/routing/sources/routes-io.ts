/**
 * The file side of `didgate routes import|export` for large tables: an import reads the file entry
 * by entry and reports every bad entry with its place (`FILE:LINE:COLUMN: …`), keeping the good
 * ones; its writes can show progress (entries, rate, time left). An export writes the routes in key
 * order batch by batch, never the whole table as one string.
 */
import { parseOutboundSection } from "../outbound.js";
import { formatDocError, formatFromPath, scanRouteDocument, validateEntry, type RouteFormat } from "./document.js";
import type { RedisRouteWriter } from "./redis-writer.js";
import { resolvePlain } from "./yaml-fast.js";
import { errMessage } from "../../util/errors.js";

export interface ImportFile {
  entries: [string, unknown][];
  outbound: [string, unknown][] | undefined;
  /** Bad entries (each listed on err as it was found). */
  bad: number;
  /** The file could not be read past a syntax error (listed on err): import nothing. */
  stopped: boolean;
}

/**
 * Reads a routes file for an import: every bad entry goes to `err` with its place; `keyCheck` may
 * refuse a key (an error message) beyond the entry's own validation.
 */
export function readImportFile(file: string, text: string, format: RouteFormat | undefined, err: (s: string) => void, keyCheck?: (key: string) => string | undefined): ImportFile {
  const entries: [string, unknown][] = [];
  let outbound: [string, unknown][] | undefined;
  const bad = new Set<string>();
  const stop = scanRouteDocument(text, format ?? formatFromPath(file), {
    entry(key, value, line, col) {
      let route = validateEntry(key, value, line, col, (e) => err(formatDocError(e, file) + "\n"));
      const k = route === undefined ? undefined : keyCheck?.(key);
      if (k) {
        err(formatDocError({ line, col, message: `route ${JSON.stringify(key)}: ${k}` }, file) + "\n");
        route = undefined;
      }
      if (route === undefined) {
        bad.add(`${line}:${col}:${key}`);
        return;
      }
      entries.push([key, route.source]);
    },
    reset() {
      entries.length = 0;
      bad.clear();
      outbound = undefined;
    },
    outbound(value, line, col) {
      const o = parseOutboundSection(value);
      for (const message of o.errors) {
        err(formatDocError({ line, col, message }, file) + "\n");
        bad.add(`${line}:${col}:outbound:${message}`);
      }
      outbound = o.entries.map(([k, e]) => [k, e.source]);
    },
  });
  if (stop.length > 0) {
    err(stop.map((e) => formatDocError(e, file) + "\n").join("") + "the file cannot be read past this; nothing imported\n");
    return { entries: [], outbound: undefined, bad: bad.size, stopped: true };
  }
  return { entries, outbound, bad: bad.size, stopped: false };
}

/**
 * Progress of an import on a terminal: "\r123000/1000000 entries (41000/s, about 21 s left)" at
 * most every 200 ms, and a last line when done.
 */
export function importProgress(total: number, err: (s: string) => void, now: () => number): { start(): void; update(done: number): void; end(): void } {
  const started = now();
  let lastShown = -Infinity;
  return {
    start: () => {
      if (total > 0) err(`importing ${total} entries…`);
    },
    update: (done) => {
      const t = now();
      if (done < total && t - lastShown < 200) return;
      lastShown = t;
      const rate = done / Math.max(0.001, (t - started) / 1000);
      const eta = rate > 0 ? Math.ceil((total - done) / rate) : 0;
      err(`\r${done}/${total} entries (${Math.round(rate)}/s, ${done < total ? `about ${eta} s left` : "done"})\x1b[K`);
    },
    end: () => {
      if (total > 0) err("\n");
    },
  };
}

/**
 * Writes the routes hash in key order without holding it whole: the keys are read (HSCAN) and
 * sorted, the entries fetched and written a batch at a time. Entries that do not validate are
 * left out and listed on err.
 */
export async function exportRoutes(writer: RedisRouteWriter, format: RouteFormat, outFn: (s: string) => unknown, err: (s: string) => void, batch = 1000): Promise<number> {
  // `out` is process.stdout.write on the command line: false means its buffer is full, so wait
  // for it to drain rather than buffer the whole table.
  const out = async (s: string) => {
    if ((await outFn(s)) === false) await new Promise<void>((r) => process.stdout.once("drain", () => r()));
  };
  const keys: string[] = [];
  for await (const b of writer.scanKeys()) for (const k of b) keys.push(k);
  keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let first = true;
  let written = 0;
  await out(format === "csv" ? "key,json\n" : format === "json" ? '{\n  "routes": {' : "routes:\n");
  for (let i = 0; i < keys.length; i += batch) {
    const ks = keys.slice(i, i + batch);
    const jsons = await writer.client.hmget(writer.keys.routes, ...ks);
    let chunk = "";
    for (let j = 0; j < ks.length; j++) {
      const key = ks[j]!;
      const json = jsons[j];
      if (json === null || json === undefined) continue; // deleted meanwhile
      let value: unknown;
      try {
        value = JSON.parse(json);
      } catch (e) {
        err(`skipped: route ${JSON.stringify(key)}: not valid JSON (${errMessage(e)})\n`);
        continue;
      }
      if (validateEntry(key, value, 0, 0, (e) => err(`skipped: ${e.message}\n`)) === undefined) continue;
      if (format === "csv") chunk += `${csvField(key)},${csvField(JSON.stringify(value))}\n`;
      else if (format === "json") chunk += `${first ? "" : ","}\n    ${JSON.stringify(key)}: ${JSON.stringify(value)}`;
      else chunk += yamlEntry(key, value, "  ");
      first = false;
      written++;
    }
    if (chunk) await out(chunk);
  }
  // CSV has one row per route: no place for the outbound table.
  const o = format === "csv" ? undefined : await writer.exportOutbound();
  for (const e of o?.errors ?? []) err(`skipped: ${e}\n`);
  const outbound = o?.entries ?? [];
  if (format === "json") {
    let tail = first ? "}" : "\n  }";
    if (outbound.length > 0) tail += ',\n  "outbound": {' + outbound.map(([k, v]) => `\n    ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(",") + "\n  }";
    await out(tail + "\n}\n");
  } else if (format === "yaml" && outbound.length > 0) {
    await out("outbound:\n" + outbound.map(([k, v]) => yamlEntry(k, v, "  ")).join(""));
  }
  return written;
}

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A mapping key: plain when it reads back as the same string, double-quoted otherwise. */
function yamlKey(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) && resolvePlain(k) === k ? k : JSON.stringify(k);
}

function yamlScalar(v: unknown): string {
  // JSON's string escapes are YAML double-quoted escapes; numbers, booleans and null read back alike.
  return JSON.stringify(v) ?? "null";
}

function isScalar(v: unknown): boolean {
  return v === null || typeof v !== "object";
}

/** One `key: value` in block style at the given indentation (lists of scalars in flow style). */
function yamlEntry(key: string, value: unknown, indent: string): string {
  return `${indent}${yamlKey(key)}:${yamlValue(value, indent)}`;
}

/** The text after "key:" (a space and an inline value, or a newline and a nested block). */
function yamlValue(v: unknown, indent: string): string {
  if (isScalar(v)) return ` ${yamlScalar(v)}\n`;
  if (Array.isArray(v)) {
    if (v.length === 0 || v.every(isScalar)) return ` [${v.map(yamlScalar).join(", ")}]\n`;
    let s = "\n";
    for (const item of v) s += yamlItem(item, indent + "  ");
    return s;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length === 0) return " {}\n";
  let s = "\n";
  for (const [k, x] of entries) s += yamlEntry(k, x, indent + "  ");
  return s;
}

/** One "- item" of a block sequence. */
function yamlItem(v: unknown, indent: string): string {
  if (isScalar(v) || Array.isArray(v) || Object.keys(v as object).length === 0) {
    const inline = yamlValue(v, indent);
    if (inline.startsWith(" ")) return `${indent}-${inline}`;
    return `${indent}-${inline.replace(/^\n/, "\n")}`;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  let s = "";
  entries.forEach(([k, x], i) => {
    s += i === 0 ? `${indent}- ${yamlKey(k)}:${yamlValue(x, indent + "  ")}` : yamlEntry(k, x, indent + "  ");
  });
  return s;
}
