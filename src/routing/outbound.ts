/**
 * The outbound table (least-cost routing): destination prefix to an ordered list of carrier names,
 * per service. Keys are route keys ("+44*", "+442071234567", "*"): the same digit trie as the
 * route table answers a lookup, the longest prefix wins, "*" is the default.
 *
 *   outbound:
 *     "+44*": { voice: [carrier-uk, carrier-b], sms: [smsc-b] }
 *     "*":    { voice: [carrier-b] }
 *
 * Pure: validation and compilation only. Names are checked against the configured carriers where
 * the table is used (a name of a carrier that is not configured is skipped and logged there), so
 * a routes file does not depend on the config file's contents.
 */
import { parseRouteKey } from "./table.js";
import { errMessage } from "../util/errors.js";

export interface OutboundEntry {
  /** Carrier trunk names for calls, in the order to try them. */
  readonly voice: readonly string[];
  /** SMPP bind names for messages, in the order to try them. */
  readonly sms: readonly string[];
  /** The entry as given (JSON-compatible), for export. */
  readonly source: Readonly<Record<string, unknown>>;
}

export type OutboundResult = { ok: true; entry: OutboundEntry } | { ok: false; errors: string[] };

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const NONE: readonly string[] = Object.freeze([]) as readonly string[];

function names(v: unknown, path: string, err: (p: string, m: string) => void): readonly string[] {
  if (v === undefined) return NONE;
  if (!Array.isArray(v) || v.length === 0 || v.length > 32) {
    err(path, "must be a list of 1 to 32 names");
    return NONE;
  }
  const out: string[] = [];
  for (let i = 0; i < v.length; i++) {
    const n = v[i];
    if (typeof n !== "string" || !NAME.test(n)) err(`${path}[${i}]`, `must be a name of 1-64 letters, digits, '_', '.', '-', got ${JSON.stringify(n)}`);
    else if (out.includes(n)) err(`${path}[${i}]`, `${JSON.stringify(n)} is listed twice`);
    else out.push(n);
  }
  return out;
}

/** Validate and compile one outbound entry. `key` is only used in error messages. */
export function parseOutbound(key: string, value: unknown): OutboundResult {
  const errors: string[] = [];
  const err = (p: string, m: string): void => {
    errors.push(`outbound ${JSON.stringify(key)}: ${p ? p + ": " : ""}${m}`);
  };
  const k = parseRouteKey(key);
  if ("error" in k) {
    err("", `invalid key: ${k.error}`);
    return { ok: false, errors };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    err("", "entry must be an object {voice?: [carrier, …], sms?: [bind, …]}");
    return { ok: false, errors };
  }
  const o = value as Record<string, unknown>;
  const voice = names(o.voice, "voice", err);
  const sms = names(o.sms, "sms", err);
  for (const f of Object.keys(o)) if (f !== "voice" && f !== "sms") err(f, "unknown field (allowed: voice, sms)");
  if (errors.length === 0 && voice.length === 0 && sms.length === 0) err("", "needs voice or sms");
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, entry: { voice, sms, source: o } };
}

/** Parse an outbound entry from its JSON text (Redis values, CLI arguments). */
export function parseOutboundJson(key: string, json: string): OutboundResult {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    return { ok: false, errors: [`outbound ${JSON.stringify(key)}: not valid JSON (${errMessage(e)})`] };
  }
  return parseOutbound(key, v);
}

/** Parse the `outbound:` mapping of a routes document; valid entries and every error. */
export function parseOutboundSection(v: unknown): { entries: [string, OutboundEntry][]; errors: string[] } {
  const out: { entries: [string, OutboundEntry][]; errors: string[] } = { entries: [], errors: [] };
  if (v === undefined || v === null) return out;
  if (typeof v !== "object" || Array.isArray(v)) {
    out.errors.push("`outbound:` must be a mapping of destination prefix to {voice, sms}");
    return out;
  }
  for (const [key, value] of Object.entries(v as Record<string, unknown>)) {
    const r = parseOutbound(key, value);
    if (r.ok) out.entries.push([key, r.entry]);
    else out.errors.push(...r.errors);
  }
  return out;
}
