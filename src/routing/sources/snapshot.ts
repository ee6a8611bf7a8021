/**
 * Local snapshot of the route table, so an edge that starts while Redis is down can still route.
 *
 * Format (NDJSON, UTF-8):
 *   {"didgate_snapshot":1,"version":"<stream id>","entries":N,"written_at":"<ISO time>"}
 *   ["<route key>", <entry JSON>]          (N lines)
 *   {"end":N}
 * Written to "<path>.tmp-<pid>-<random>", fsynced, then renamed over <path> (atomic on POSIX). The
 * writer serialises in slices and yields to the event loop between them, so a large table never
 * stalls routing; a reader refuses a file without its end line.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { parseRoute, type Route } from "../route.js";
import { EntryColumns, parseRouteKey, RouteTable } from "../table.js";
import { errMessage } from "../../util/errors.js";

export interface SnapshotHeader {
  didgate_snapshot: 1;
  version: string;
  entries: number;
  written_at: string;
}

export interface LoadedSnapshot {
  table: RouteTable<Route>;
  header: SnapshotHeader;
  /** Entries that failed validation (skipped). */
  invalid: string[];
}

const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

/**
 * Writes entries (key, route) atomically. `entries` must not change while this runs (pass an
 * array taken from the table, not the live table).
 */
export async function writeSnapshot(
  path: string,
  version: string,
  entries: readonly (readonly [string, Route])[] | EntryColumns<Route>,
  now: number = Date.now(),
): Promise<void> {
  const cols = entries instanceof EntryColumns ? entries : undefined;
  const pairs = cols === undefined ? (entries as readonly (readonly [string, Route])[]) : undefined;
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  const fh = await open(tmp, "w", 0o644);
  try {
    const header: SnapshotHeader = { didgate_snapshot: 1, version, entries: entries.length, written_at: new Date(now).toISOString() };
    let buf = JSON.stringify(header) + "\n";
    const SLICE = 5000;
    for (let i = 0; i < entries.length; i++) {
      const key = cols ? cols.keys[i]! : pairs![i]![0];
      const route = cols ? cols.values[i]! : pairs![i]![1];
      buf += "[" + JSON.stringify(key) + "," + JSON.stringify(route.source) + "]\n";
      if ((i + 1) % SLICE === 0) {
        await fh.write(buf);
        buf = "";
        await yieldToLoop();
      }
    }
    buf += JSON.stringify({ end: entries.length }) + "\n";
    await fh.write(buf);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Reads only the header line (cheap: the entry count for the shrink guard). */
export async function readSnapshotHeader(path: string): Promise<SnapshotHeader | undefined> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const text = buf.subarray(0, bytesRead).toString("utf8");
    const nl = text.indexOf("\n");
    if (nl < 0) return undefined;
    const h = JSON.parse(text.slice(0, nl)) as SnapshotHeader;
    return h && h.didgate_snapshot === 1 ? h : undefined;
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

/** Loads and validates a snapshot. Throws Error when the file is missing, truncated or not a snapshot. */
export async function loadSnapshot(path: string): Promise<LoadedSnapshot> {
  const text = await readFile(path, "utf8");
  let pos = text.indexOf("\n");
  if (pos < 0) throw new Error(`${path}: not a didgate snapshot`);
  let header: SnapshotHeader;
  try {
    header = JSON.parse(text.slice(0, pos)) as SnapshotHeader;
  } catch {
    throw new Error(`${path}: not a didgate snapshot`);
  }
  if (!header || header.didgate_snapshot !== 1) throw new Error(`${path}: not a didgate snapshot`);
  const entries: [string, Route][] = [];
  const invalid: string[] = [];
  let ended = false;
  let rows = 0;
  pos++;
  while (pos < text.length) {
    let nl = text.indexOf("\n", pos);
    if (nl < 0) nl = text.length;
    const line = text.slice(pos, nl);
    pos = nl + 1;
    if (line.length === 0) continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new Error(`${path}: corrupt line ${rows + 2}`);
    }
    if (Array.isArray(row) && row.length === 2 && typeof row[0] === "string") {
      rows++;
      const k = parseRouteKey(row[0]);
      if ("error" in k) {
        invalid.push(`route ${JSON.stringify(row[0])}: invalid key: ${k.error}`);
        continue;
      }
      const r = parseRoute(row[0], row[1]);
      if (r.ok) entries.push([row[0], r.route]);
      else invalid.push(...r.errors);
      continue;
    }
    if (row && typeof row === "object" && (row as { end?: unknown }).end === header.entries) {
      ended = true;
      break;
    }
    throw new Error(`${path}: corrupt line ${rows + 2}`);
  }
  if (!ended || rows !== header.entries) throw new Error(`${path}: truncated snapshot (no end line)`);
  let table: RouteTable<Route>;
  try {
    table = RouteTable.build(entries);
  } catch (err) {
    throw new Error(`${path}: ${errMessage(err)}`);
  }
  table.version = header.version;
  return { table, header, invalid };
}
