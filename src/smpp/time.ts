/**
 * SMPP time fields (SMPP 3.4 7.1.1): schedule_delivery_time, validity_period, final_date.
 *
 * "YYMMDDhhmmsstnnp", 16 characters:
 *   absolute: p is "+" or "-", the time is local time nn quarter hours ahead of ("+") or behind
 *             ("-") UTC; t is tenths of a second; YY is 2000 + YY.
 *   relative: p is "R", YY..ss is a period added to the time the PDU was received (calendar
 *             arithmetic: 1 month after 31 January is 3 March, as Date.UTC rolls over); t and nn
 *             are not used.
 * An empty field means "not given".
 */

export type SmppTimeParse = { ok: true; at: number | null } | { ok: false; reason: string };

const DIGITS = /^[0-9]{15}[+\-R]$/;

/** Days in a month (1-12) of a year. */
function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * An SMPP time as epoch ms; `nowMs` is the base of a relative time. `{ ok: true, at: null }` for an
 * empty field. Never throws.
 */
export function parseSmppTime(s: string, nowMs: number): SmppTimeParse {
  if (s === "") return { ok: true, at: null };
  if (s.length !== 16 || !DIGITS.test(s)) return { ok: false, reason: "not YYMMDDhhmmsstnnp" };
  const n = (i: number): number => (s.charCodeAt(i) - 48) * 10 + (s.charCodeAt(i + 1) - 48);
  const yy = n(0);
  const mo = n(2);
  const dd = n(4);
  const hh = n(6);
  const mi = n(8);
  const ss = n(10);
  const t = s.charCodeAt(12) - 48;
  const nn = n(13);
  const p = s[15];
  if (p === "R") {
    const b = new Date(nowMs);
    return {
      ok: true,
      at: Date.UTC(b.getUTCFullYear() + yy, b.getUTCMonth() + mo, b.getUTCDate() + dd, b.getUTCHours() + hh, b.getUTCMinutes() + mi, b.getUTCSeconds() + ss, b.getUTCMilliseconds()),
    };
  }
  const year = 2000 + yy;
  if (mo < 1 || mo > 12) return { ok: false, reason: "month" };
  if (dd < 1 || dd > daysIn(year, mo)) return { ok: false, reason: "day" };
  if (hh > 23 || mi > 59 || ss > 59) return { ok: false, reason: "time of day" };
  if (nn > 48) return { ok: false, reason: "UTC offset" };
  const offsetMs = nn * 15 * 60_000 * (p === "+" ? 1 : -1);
  return { ok: true, at: Date.UTC(year, mo - 1, dd, hh, mi, ss, t * 100) - offsetMs };
}

/** An absolute SMPP time in UTC ("…00+"), to the tenth of a second. */
export function formatSmppTime(d: Date): string {
  const p = (x: number): string => String(x).padStart(2, "0");
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}${Math.floor(d.getUTCMilliseconds() / 100)}00+`;
}
