/**
 * The route entry model (README.md "Routes"): validation with errors that name the key and the
 * field, and compilation into the shape the decision uses (targets sorted by priority, schedule
 * windows as minutes and day masks, caller rules as digit prefixes).
 *
 * Validation is hand-written rather than a schema library: the Redis source validates every entry
 * of a million-route table at load, so it must cost well under a microsecond per plain entry.
 */
import { errMessage } from "../util/errors.js";

export const ROUTE_STATES = ["active", "porting_out", "quarantine", "released"] as const;
export type RouteState = (typeof ROUTE_STATES)[number];

export interface Target {
  /** A SIP URI, or "tel:+E164": forwarding to a phone number through the outbound table. */
  readonly uri: string;
  readonly priority: number;
  readonly weight: number;
  /** Seconds this target may ring in sequential mode (only on targets given as objects). */
  readonly timeoutS?: number;
}

/** The E.164 number of a forwarding target ("tel:+E164"), or undefined for a SIP target. */
export function telNumber(uri: string): string | undefined {
  return uri.charCodeAt(0) === 116 && uri.startsWith("tel:") ? uri.slice(4) : undefined;
}

export interface CallerRule {
  readonly match: string;
  /** Digits of the match without "+" and "*". */
  readonly digits: string;
  readonly prefix: boolean;
  readonly targets: readonly Target[];
}

export interface ScheduleWindow {
  /** Bit d set when weekday d (0 = Sunday) is in the window. */
  readonly dayMask: number;
  /** Minutes after midnight, local time in tz. from > to means the window crosses midnight. */
  readonly from: number;
  readonly to: number;
  readonly tz: string;
  readonly targets: readonly Target[];
}

export type RingMode = "sequential" | "simultaneous";
export type ForwardCallerId = "caller" | "did";

export interface VoiceRoute {
  readonly targets: readonly Target[];
  /** sequential: one target at a time in priority order; simultaneous: a priority group at once. */
  readonly ring: RingMode;
  /** Caller ID presented when a call is forwarded to a phone number. */
  readonly forwardCallerId: ForwardCallerId;
  readonly failoverOn: readonly number[];
  readonly ringTimeoutS: number;
  /** Seconds without a provisional response before the next target; undefined: the sip default. */
  readonly inviteTimeoutS: number | undefined;
  readonly schedule: readonly ScheduleWindow[];
  readonly callers: readonly CallerRule[];
  /** STIR/SHAKEN: refuse calls whose Identity fails (reject), or only mark them (mark, the default). */
  readonly stirOnFail: "mark" | "reject";
}

export interface SmsRoute {
  readonly webhook?: string;
  readonly smpp?: string;
  /** Per-route webhook secret (whsec_…), overriding webhooks.secret. */
  readonly webhookSecret?: string;
  /** E.164 numbers every inbound message is sent on to, from the DID (src/edge/sms-keywords.ts). */
  readonly forward?: readonly string[];
  /** Text of a forwarded message: {from}, {to} and {text} are replaced. */
  readonly forwardTemplate?: string;
  /** First word (upper case) → what a message starting with it gets instead of the route's own. */
  readonly keywords?: ReadonlyMap<string, SmsKeyword>;
  /** Answers to the opt-out words; a missing one is the built-in text, "" sends none. */
  readonly optout?: SmsOptOutTexts;
}

export interface SmsKeyword {
  readonly webhook?: string;
  readonly forward?: readonly string[];
  /** Sent back to the sender, from the DID. */
  readonly reply?: string;
}

export interface SmsOptOutTexts {
  readonly stopReply?: string;
  readonly startReply?: string;
  readonly helpReply?: string;
}

/** Words a route keyword may not be: the opt-out and opt-in words always mean that (src/edge/optout.ts). */
export const RESERVED_SMS_KEYWORDS: readonly string[] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "START", "UNSTOP", "YES"];
/** Longest text of a configured reply, confirmation or forward template (characters). */
export const MAX_SMS_REPLY_CHARS = 1600;

export interface Route {
  readonly state: RouteState;
  readonly tenant: string | undefined;
  readonly voice: VoiceRoute | undefined;
  readonly sms: SmsRoute | undefined;
  /** `released_at` (epoch ms): from then the number answers as quarantine, after the quarantine as released. */
  readonly releasedAt: number | undefined;
  /** `port_date` (epoch ms) of a porting_out number: from then it answers as released. */
  readonly portDate: number | undefined;
  /** The entry as given (JSON-compatible), for export and snapshots. */
  readonly source: Readonly<Record<string, unknown>>;
}

export const DEFAULT_FAILOVER_ON: readonly number[] = [408, 480, 500, 502, 503, 504];
export const DEFAULT_RING_TIMEOUT_S = 60;

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

// Shared empty lists: a million-route table must not hold two empty arrays per route.
const NO_WINDOWS: ScheduleWindow[] = Object.freeze([]) as unknown as ScheduleWindow[];
const NO_CALLERS: CallerRule[] = Object.freeze([]) as unknown as CallerRule[];

/** `notJson`: the text was not JSON at all (parseRouteJson), as opposed to a JSON value that is not a route. */
export type RouteResult = { ok: true; route: Route } | { ok: false; errors: string[]; notJson?: true };

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

class Errors {
  list: string[] = NO_ERRORS; // replaced by a real list on the first error (most routes have none)
  constructor(private readonly key: string) {}
  add(path: string, msg: string): void {
    if (this.list === NO_ERRORS) this.list = [];
    this.list.push(`route ${JSON.stringify(this.key)}: ${path ? path + ": " : ""}${msg}`);
  }
}
const NO_ERRORS: string[] = [];

const tzValid = new Map<string, boolean>();
/** True if tz is an IANA time zone this runtime knows. */
export function isValidTimeZone(tz: string): boolean {
  let ok = tzValid.get(tz);
  if (ok === undefined) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: tz });
      ok = true;
    } catch {
      ok = false;
    }
    if (tzValid.size < 10_000) tzValid.set(tz, ok);
  }
  return ok;
}

/** "tel:+E164" or "+E164" as the canonical "tel:+E164", else undefined. */
function telTarget(v: string): string | undefined {
  const n = v.charCodeAt(0) === 43 ? v : v.length > 4 && v.slice(0, 4).toLowerCase() === "tel:" ? v.slice(4) : undefined;
  if (n === undefined || n.length < 2 || n.length > 16 || n.charCodeAt(0) !== 43 || n.charCodeAt(1) === 48) return undefined;
  for (let i = 1; i < n.length; i++) {
    const c = n.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  return "tel:" + n;
}

function parseUri(v: unknown, path: string, e: Errors): string | undefined {
  if (typeof v !== "string" || v.length === 0) {
    e.add(path, "must be a SIP URI string (sip:… or sips:…)");
    return undefined;
  }
  const tel = telTarget(v);
  if (tel !== undefined) return tel;
  if (!hasSipScheme(v) || v.length > 512) {
    e.add(path, `must be a SIP URI (sip:… or sips:…) or a phone number (tel:+E164), got ${JSON.stringify(v.slice(0, 80))}`);
    return undefined;
  }
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c <= 32 || c === 127 || c === 60 || c === 62 || c === 34) {
      e.add(path, `must not contain spaces, quotes or angle brackets, got ${JSON.stringify(v.slice(0, 80))}`);
      return undefined;
    }
  }
  return v;
}

/**
 * What parseUri accepts, without building an error path. A regex: V8 runs it as native code, about
 * twice as fast as a charCodeAt loop over a 40-character URI (a million-route load checks them all).
 */
const PLAIN_SIP_URI = /^sips?:[^\x00-\x20\x7f<>"]*$/i;
function isPlainSipUri(v: string): boolean {
  return v.length <= 512 && PLAIN_SIP_URI.test(v);
}

/** v starts with "sip:" or "sips:", in any case (no allocation). */
function hasSipScheme(v: string): boolean {
  if (v.length < 4) return false;
  const a = v.charCodeAt(0) | 32;
  const b = v.charCodeAt(1) | 32;
  const c = v.charCodeAt(2) | 32;
  if (a !== 115 || b !== 105 || c !== 112) return false; // s i p
  const d = v.charCodeAt(3);
  return d === 58 || ((d | 32) === 115 && v.charCodeAt(4) === 58);
}

function parseTargets(v: unknown, path: string, e: Errors, required: boolean): Target[] {
  if (v === undefined) {
    if (required) e.add(path, "is required (a list of SIP URIs or {uri, priority, weight})");
    return [];
  }
  if (!Array.isArray(v)) {
    e.add(path, "must be a list of SIP URIs or {uri, priority, weight}");
    return [];
  }
  if (v.length === 0 && required) e.add(path, "must have at least one target");
  // The common case, plain URI strings: an array of exactly the right size (a pushed-to array
  // keeps room for 17 elements, and a table holds a million of these).
  let plain = true;
  for (let i = 0; i < v.length && plain; i++) plain = typeof v[i] === "string";
  if (plain) {
    const out: Target[] = new Array<Target>(v.length);
    let n = 0;
    for (let i = 0; i < v.length; i++) {
      const t = v[i] as string;
      const uri = isPlainSipUri(t) ? t : parseUri(t, `${path}[${i}]`, e); // the slow path names the problem
      if (uri) out[n++] = { uri, priority: 1, weight: 100 };
    }
    if (n < out.length) out.length = n;
    return out;
  }
  const out: Target[] = [];
  for (let i = 0; i < v.length; i++) {
    const t = v[i];
    const p = `${path}[${i}]`;
    if (isObj(t)) {
      const uri = parseUri(t.uri, `${p}.uri`, e);
      let priority = 1;
      let weight = 100;
      if (t.priority !== undefined) {
        if (!Number.isInteger(t.priority) || (t.priority as number) < 0 || (t.priority as number) > 65535) {
          e.add(`${p}.priority`, "must be an integer from 0 to 65535");
        } else priority = t.priority as number;
      }
      if (t.weight !== undefined) {
        if (!Number.isInteger(t.weight) || (t.weight as number) < 0 || (t.weight as number) > 65535) {
          e.add(`${p}.weight`, "must be an integer from 0 to 65535");
        } else weight = t.weight as number;
      }
      let timeoutS: number | undefined;
      if (t.timeout_s !== undefined) {
        if (typeof t.timeout_s !== "number" || !(t.timeout_s > 0 && t.timeout_s <= 3600)) e.add(`${p}.timeout_s`, "must be a number of seconds from 1 to 3600");
        else timeoutS = t.timeout_s;
      }
      for (const k of Object.keys(t)) if (k !== "uri" && k !== "priority" && k !== "weight" && k !== "timeout_s") e.add(`${p}.${k}`, "unknown field (allowed: uri, priority, weight, timeout_s)");
      if (uri) out.push(timeoutS === undefined ? { uri, priority, weight } : { uri, priority, weight, timeoutS });
    } else if (typeof t === "string") {
      const uri = parseUri(t, p, e);
      if (uri) out.push({ uri, priority: 1, weight: 100 });
    } else {
      e.add(p, "must be a SIP URI string or {uri, priority, weight}");
    }
  }
  // Stable sort by priority: lower first.
  out.sort((a, b) => a.priority - b.priority);
  return out.slice(); // exact size
}

function parseHHMM(v: unknown, path: string, e: Errors): number {
  if (typeof v === "string" && v.length === 5 && v[2] === ":") {
    const h = Number(v.slice(0, 2));
    const m = Number(v.slice(3));
    if (Number.isInteger(h) && Number.isInteger(m) && h >= 0 && h <= 24 && m >= 0 && m < 60 && (h < 24 || m === 0)) return h * 60 + m;
  }
  e.add(path, `must be a time "HH:MM" from 00:00 to 24:00, got ${JSON.stringify(v)}`);
  return 0;
}

function parseSchedule(v: unknown, path: string, e: Errors): ScheduleWindow[] {
  if (v === undefined) return NO_WINDOWS;
  if (!Array.isArray(v)) {
    e.add(path, "must be a list of {days, from, to, tz, targets}");
    return [];
  }
  const out: ScheduleWindow[] = [];
  v.forEach((w, i) => {
    const p = `${path}[${i}]`;
    if (!isObj(w)) {
      e.add(p, "must be an object {days, from, to, tz, targets}");
      return;
    }
    let dayMask = 0x7f;
    if (w.days !== undefined) {
      dayMask = 0;
      if (!Array.isArray(w.days) || w.days.length === 0) e.add(`${p}.days`, `must be a non-empty list of ${DAY_NAMES.join(", ")}`);
      else
        for (const d of w.days) {
          const idx = typeof d === "string" ? DAY_NAMES.indexOf(d.toLowerCase().slice(0, 3)) : -1;
          if (idx < 0 || (typeof d === "string" && d.length !== 3 && !isFullDay(d))) e.add(`${p}.days`, `unknown day ${JSON.stringify(d)} (allowed: ${DAY_NAMES.join(", ")})`);
          else dayMask |= 1 << idx;
        }
    }
    const from = parseHHMM(w.from, `${p}.from`, e);
    const to = parseHHMM(w.to, `${p}.to`, e);
    if (from === to && w.from !== undefined) e.add(p, "from and to must differ");
    let tz = "UTC";
    if (w.tz !== undefined) {
      if (typeof w.tz !== "string" || !isValidTimeZone(w.tz)) e.add(`${p}.tz`, `must be an IANA time zone like "America/Chicago", got ${JSON.stringify(w.tz)}`);
      else tz = w.tz;
    }
    const targets = parseTargets(w.targets, `${p}.targets`, e, true);
    for (const k of Object.keys(w)) if (!["days", "from", "to", "tz", "targets"].includes(k)) e.add(`${p}.${k}`, "unknown field (allowed: days, from, to, tz, targets)");
    out.push({ dayMask, from, to, tz, targets });
  });
  return out;
}

function isFullDay(d: string): boolean {
  return ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"].includes(d.toLowerCase());
}

function parseCallers(v: unknown, path: string, e: Errors): CallerRule[] {
  if (v === undefined) return NO_CALLERS;
  if (!Array.isArray(v)) {
    e.add(path, "must be a list of {match, targets}");
    return [];
  }
  const out: CallerRule[] = [];
  v.forEach((r, i) => {
    const p = `${path}[${i}]`;
    if (!isObj(r)) {
      e.add(p, "must be an object {match, targets}");
      return;
    }
    const m = r.match;
    let digits = "";
    let prefix = false;
    let good = typeof m === "string";
    if (typeof m === "string") {
      if (m === "*") prefix = true;
      else {
        prefix = m.endsWith("*");
        const body = prefix ? m.slice(0, -1) : m;
        good = body.startsWith("+") && body.length >= 2 && body.length <= 16;
        for (let j = 1; good && j < body.length; j++) {
          const c = body.charCodeAt(j);
          if (c < 48 || c > 57) good = false;
        }
        digits = body.slice(1);
      }
    }
    if (!good) e.add(`${p}.match`, `must be an E.164 number "+4477…" or prefix "+44*" or "*", got ${JSON.stringify(m)}`);
    const targets = parseTargets(r.targets, `${p}.targets`, e, true);
    for (const k of Object.keys(r)) if (k !== "match" && k !== "targets") e.add(`${p}.${k}`, "unknown field (allowed: match, targets)");
    if (good) out.push({ match: m as string, digits, prefix, targets });
  });
  return out;
}

function parseVoice(v: unknown, e: Errors): VoiceRoute | undefined {
  if (v === undefined) return undefined;
  if (!isObj(v)) {
    e.add("voice", "must be an object");
    return undefined;
  }
  const targets = parseTargets(v.targets, "voice.targets", e, false);
  let failoverOn = DEFAULT_FAILOVER_ON;
  if (v.failover_on !== undefined) {
    if (!Array.isArray(v.failover_on) || !v.failover_on.every((c) => Number.isInteger(c) && c >= 300 && c <= 699)) {
      e.add("voice.failover_on", "must be a list of SIP status codes 300-699");
    } else failoverOn = v.failover_on as number[];
  }
  let ringTimeoutS = DEFAULT_RING_TIMEOUT_S;
  if (v.ring_timeout_s !== undefined) {
    if (typeof v.ring_timeout_s !== "number" || !(v.ring_timeout_s > 0 && v.ring_timeout_s <= 3600)) {
      e.add("voice.ring_timeout_s", "must be a number of seconds from 1 to 3600");
    } else ringTimeoutS = v.ring_timeout_s;
  }
  let ring: RingMode = "sequential";
  if (v.ring !== undefined) {
    if (v.ring !== "sequential" && v.ring !== "simultaneous") e.add("voice.ring", `must be "sequential" or "simultaneous", got ${JSON.stringify(v.ring)}`);
    else ring = v.ring;
  }
  let forwardCallerId: ForwardCallerId = "caller";
  if (v.forward_caller_id !== undefined) {
    if (v.forward_caller_id !== "caller" && v.forward_caller_id !== "did") e.add("voice.forward_caller_id", `must be "caller" or "did", got ${JSON.stringify(v.forward_caller_id)}`);
    else forwardCallerId = v.forward_caller_id;
  }
  let inviteTimeoutS: number | undefined;
  if (v.invite_timeout_s !== undefined) {
    if (typeof v.invite_timeout_s !== "number" || !(v.invite_timeout_s >= 0.1 && v.invite_timeout_s <= 300)) {
      e.add("voice.invite_timeout_s", "must be a number of seconds from 0.1 to 300");
    } else inviteTimeoutS = v.invite_timeout_s;
  }
  let stirOnFail: "mark" | "reject" = "mark";
  if (v.stir !== undefined) {
    const st = v.stir;
    if (!isObj(st) || Object.keys(st).some((k) => k !== "on_fail") || (st.on_fail !== undefined && st.on_fail !== "mark" && st.on_fail !== "reject")) {
      e.add("voice.stir", 'must be { on_fail: "mark" | "reject" }');
    } else if (st.on_fail === "reject") stirOnFail = "reject";
  }
  const schedule = parseSchedule(v.schedule, "voice.schedule", e);
  const callers = parseCallers(v.callers, "voice.callers", e);
  for (const k of Object.keys(v)) {
    if (!VOICE_FIELDS.includes(k)) e.add(`voice.${k}`, `unknown field (allowed: ${VOICE_FIELDS.join(", ")})`);
  }
  if (targets.length === 0 && schedule.length === 0 && callers.length === 0) {
    e.add("voice.targets", "is required when there is no schedule or callers rule");
  }
  return { targets, ring, forwardCallerId, failoverOn, ringTimeoutS, inviteTimeoutS, schedule, callers, stirOnFail };
}

const VOICE_FIELDS = ["targets", "ring", "forward_caller_id", "failover_on", "ring_timeout_s", "invite_timeout_s", "schedule", "callers", "stir"];

function parseSms(v: unknown, e: Errors): SmsRoute | undefined {
  if (v === undefined) return undefined;
  if (!isObj(v)) {
    e.add("sms", "must be an object {webhook?, smpp?, forward?, keywords?}");
    return undefined;
  }
  const out: { -readonly [K in keyof SmsRoute]: SmsRoute[K] } = {};
  const webhook = parseWebhook(v.webhook, "sms.webhook", e);
  if (webhook !== undefined) out.webhook = webhook;
  if (v.smpp !== undefined) {
    if (typeof v.smpp !== "string" || v.smpp.length === 0 || v.smpp.length > 64) e.add("sms.smpp", "must be an SMPP system_id or bind name (1-64 characters)");
    else out.smpp = v.smpp;
  }
  if (v.webhook_secret !== undefined) {
    if (typeof v.webhook_secret !== "string" || v.webhook_secret.length < 8) e.add("sms.webhook_secret", "must be a secret string (whsec_… or at least 8 characters)");
    else out.webhookSecret = v.webhook_secret;
  }
  const forward = parseForward(v.forward, "sms.forward", e);
  if (forward !== undefined) out.forward = forward;
  const tpl = parseText(v.forward_template, "sms.forward_template", e);
  if (tpl !== undefined) out.forwardTemplate = tpl;
  if (v.keywords !== undefined) out.keywords = parseKeywords(v.keywords, e);
  if (v.optout !== undefined) {
    const o = v.optout;
    if (!isObj(o)) e.add("sms.optout", "must be an object {stop_reply?, start_reply?, help_reply?}");
    else {
      const t: { -readonly [K in keyof SmsOptOutTexts]: SmsOptOutTexts[K] } = {};
      const stop = parseText(o.stop_reply, "sms.optout.stop_reply", e, true);
      const start = parseText(o.start_reply, "sms.optout.start_reply", e, true);
      const help = parseText(o.help_reply, "sms.optout.help_reply", e, true);
      if (stop !== undefined) t.stopReply = stop;
      if (start !== undefined) t.startReply = start;
      if (help !== undefined) t.helpReply = help;
      for (const k of Object.keys(o)) if (!OPTOUT_FIELDS.includes(k)) e.add(`sms.optout.${k}`, `unknown field (allowed: ${OPTOUT_FIELDS.join(", ")})`);
      out.optout = t;
    }
  }
  for (const k of Object.keys(v)) if (!SMS_FIELDS.includes(k)) e.add(`sms.${k}`, `unknown field (allowed: ${SMS_FIELDS.join(", ")})`);
  if (out.webhook === undefined && out.smpp === undefined && out.forward === undefined && out.keywords === undefined && e.list.length === 0) e.add("sms", "needs webhook, smpp, forward or keywords");
  return out;
}

const SMS_FIELDS = ["webhook", "smpp", "webhook_secret", "forward", "forward_template", "keywords", "optout"];
const OPTOUT_FIELDS = ["stop_reply", "start_reply", "help_reply"];
const KEYWORD_FIELDS = ["webhook", "forward", "reply"];

function parseWebhook(v: unknown, path: string, e: Errors): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "string" && isHttpUrl(v)) return v;
  e.add(path, `must be an http:// or https:// URL without user:password@, got ${JSON.stringify(v)}`);
  return undefined;
}

/** "+E164" (a leading "+", 2-15 digits, not starting with 0). */
export function isE164(v: string): boolean {
  return /^\+[1-9][0-9]{1,14}$/.test(v);
}

/** A number or a list of numbers (at most 10: every inbound message becomes that many outbound). */
function parseForward(v: unknown, path: string, e: Errors): string[] | undefined {
  if (v === undefined) return undefined;
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || list.length > 10 || !list.every((n) => typeof n === "string" && isE164(n))) {
    e.add(path, `must be an E.164 number "+15125550100" or a list of 1 to 10 of them, got ${JSON.stringify(v).slice(0, 80)}`);
    return undefined;
  }
  return [...new Set(list as string[])];
}

function parseText(v: unknown, path: string, e: Errors, emptyOk = false): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v.length > MAX_SMS_REPLY_CHARS || (!emptyOk && v.length === 0)) {
    e.add(path, `must be a text of ${emptyOk ? 0 : 1} to ${MAX_SMS_REPLY_CHARS} characters`);
    return undefined;
  }
  return v;
}

function parseKeywords(v: unknown, e: Errors): Map<string, SmsKeyword> {
  const out = new Map<string, SmsKeyword>();
  if (!isObj(v)) {
    e.add("sms.keywords", "must be an object mapping a first word to {webhook?, forward?, reply?}");
    return out;
  }
  for (const [word, kv] of Object.entries(v)) {
    const p = `sms.keywords.${word}`;
    const w = word.toUpperCase();
    if (!/^[A-Z0-9]{1,20}$/.test(w)) {
      e.add(p, "a keyword must be one word of 1 to 20 letters or digits");
      continue;
    }
    if (RESERVED_SMS_KEYWORDS.includes(w)) {
      e.add(p, "is an opt-out or opt-in word: it always records an opt-out or opt-in (sms.optout sets its answer)");
      continue;
    }
    if (out.has(w)) {
      e.add(p, `is given twice (keywords match in any case)`);
      continue;
    }
    if (!isObj(kv)) {
      e.add(p, "must be an object {webhook?, forward?, reply?}");
      continue;
    }
    const k: { -readonly [K in keyof SmsKeyword]: SmsKeyword[K] } = {};
    const webhook = parseWebhook(kv.webhook, `${p}.webhook`, e);
    if (webhook !== undefined) k.webhook = webhook;
    const forward = parseForward(kv.forward, `${p}.forward`, e);
    if (forward !== undefined) k.forward = forward;
    const reply = parseText(kv.reply, `${p}.reply`, e);
    if (reply !== undefined) k.reply = reply;
    for (const f of Object.keys(kv)) if (!KEYWORD_FIELDS.includes(f)) e.add(`${p}.${f}`, `unknown field (allowed: ${KEYWORD_FIELDS.join(", ")})`);
    if (k.webhook === undefined && k.forward === undefined && k.reply === undefined && kv.webhook === undefined && kv.forward === undefined && kv.reply === undefined) e.add(p, "needs webhook, forward or reply");
    out.set(w, k);
  }
  return out;
}

/**
 * An absolute http(s) URL with a host, no credentials (user:password@: they would be sent to
 * wherever the host part points, and hide it from a reader), no whitespace or control characters.
 * Hand-written (no `new URL`, which costs microseconds): a million-route load validates every
 * webhook.
 */
export function isHttpUrl(u: string): boolean {
  if (u.length > 2048) return false;
  let i: number;
  if (u.startsWith("https://")) i = 8;
  else if (u.startsWith("http://")) i = 7;
  else return false;
  const hostStart = i;
  for (; i < u.length; i++) {
    const c = u.charCodeAt(i);
    if (c === 47 || c === 63 || c === 35) break; // / ? #
    const ok = (c >= 48 && c <= 58) || (c >= 65 && c <= 91) || c === 93 || (c >= 97 && c <= 122) || c === 45 || c === 46 || c === 95 || c === 37 || c === 126;
    if (!ok) return false;
  }
  if (i === hostStart || u.charCodeAt(hostStart) === 58) return false;
  for (; i < u.length; i++) {
    const c = u.charCodeAt(i);
    if (c <= 32 || c === 127 || c === 34 || c === 60 || c === 62 || c === 92) return false;
  }
  return true;
}

/** Validate and compile one route entry. `key` is only used in error messages. */
export function parseRoute(key: string, value: unknown): RouteResult {
  const e = new Errors(key);
  if (!isObj(value)) {
    e.add("", "entry must be a JSON object");
    return { ok: false, errors: e.list };
  }
  let state: RouteState = "active";
  if (value.state !== undefined) {
    if (typeof value.state !== "string" || !(ROUTE_STATES as readonly string[]).includes(value.state)) {
      e.add("state", `must be one of ${ROUTE_STATES.join(", ")}, got ${JSON.stringify(value.state)}`);
    } else state = value.state as RouteState;
  }
  let tenant: string | undefined;
  if (value.tenant !== undefined) {
    if (typeof value.tenant !== "string" || value.tenant.length > 128) e.add("tenant", "must be a string of at most 128 characters");
    else tenant = value.tenant;
  }
  const voice = parseVoice(value.voice, e);
  const sms = parseSms(value.sms, e);
  const releasedAt = parseInstant(value.released_at, "released_at", e);
  const portDate = parseInstant(value.port_date, "port_date", e);
  if (portDate !== undefined && state !== "porting_out") e.add("port_date", "applies only to state porting_out");
  for (const k of Object.keys(value)) if (!ROUTE_FIELDS.includes(k)) e.add(k, `unknown field (allowed: ${ROUTE_FIELDS.join(", ")})`);
  if (e.list.length > 0) return { ok: false, errors: e.list };
  // Every route has the same shape (one hidden class): the decision reads these on the hot path.
  const route: Route = { state, tenant, voice, sms, releasedAt, portDate, source: value };
  return { ok: true, route };
}

/** Parse a route entry from its JSON text (Redis values, CLI arguments). */
export function parseRouteJson(key: string, json: string): RouteResult {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    return { ok: false, errors: [`route ${JSON.stringify(key)}: not valid JSON (${clip(errMessage(err), 200)})`], notJson: true };
  }
  return parseRoute(key, value);
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}

const ROUTE_FIELDS = ["state", "tenant", "voice", "sms", "released_at", "port_date"];

/** An ISO 8601 date ("2026-12-01") or date-time with a zone ("2026-12-01T10:00:00Z"), as epoch ms. */
function parseInstant(v: unknown, field: string, e: Errors): number | undefined {
  if (v === undefined) return undefined;
  const ok = typeof v === "string" && /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/.test(v);
  const t = ok ? Date.parse(v as string) : NaN;
  if (!Number.isFinite(t)) {
    e.add(field, `must be an ISO 8601 date or date-time with a zone (2026-12-01, 2026-12-01T10:00:00Z), got ${JSON.stringify(v).slice(0, 80)}`);
    return undefined;
  }
  return t;
}

const DAY_MS = 86_400_000;

/**
 * The state a number answers with at `atMs` (the lifecycle runs by time alone, so every edge
 * agrees without anyone rewriting entries): from `released_at` it is in quarantine, and
 * `quarantineDays` later released; a porting_out number is released from its `port_date`.
 */
export function stateAt(route: Route, atMs: number, quarantineDays: number): RouteState {
  const r = route.releasedAt;
  if (r !== undefined && atMs >= r) return atMs < r + quarantineDays * DAY_MS ? "quarantine" : "released";
  const p = route.portDate;
  if (p !== undefined && route.state === "porting_out" && atMs >= p) return "released";
  return route.state;
}

/** True for states that never route (a recycled number must not reach its previous holder). */
export function isGone(state: RouteState): boolean {
  return state === "quarantine" || state === "released";
}
