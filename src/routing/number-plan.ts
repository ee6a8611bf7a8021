/**
 * National significant number (NSN) lengths of some common country calling codes: enough to
 * catch a DID typed one digit short, or a route key that no number of its country can have.
 *
 * The lengths are the "possible lengths" of every number type (fixed, mobile, toll-free, ...) in
 * libphonenumber's metadata for these countries. Countries not listed are not checked. The full
 * metadata (libphonenumber-js) was not taken as a dependency: didgate needs only the length per
 * country, not formatting or per-type patterns; see docs/dependencies.md.
 */

export interface CountryPlan {
  /** Country calling code, digits. */
  cc: string;
  name: string;
  /** Possible NSN lengths, ascending. */
  lengths: readonly number[];
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

const PLANS: readonly CountryPlan[] = [
  { cc: "1", name: "NANP (US, CA, ...)", lengths: [10] },
  { cc: "31", name: "Netherlands", lengths: range(5, 11) },
  { cc: "33", name: "France", lengths: [9] },
  { cc: "34", name: "Spain", lengths: [9] },
  { cc: "39", name: "Italy", lengths: range(6, 11) },
  { cc: "44", name: "United Kingdom", lengths: [7, 9, 10] },
  { cc: "49", name: "Germany", lengths: range(4, 15) },
  { cc: "51", name: "Peru", lengths: [8, 9] },
  { cc: "52", name: "Mexico", lengths: [10, 11] },
  { cc: "55", name: "Brazil", lengths: [8, 9, 10, 11] },
  { cc: "61", name: "Australia", lengths: [5, 6, 7, 8, 9, 10, 12] },
  { cc: "91", name: "India", lengths: range(8, 13) },
];

const BY_CC = new Map(PLANS.map((p) => [p.cc, p]));

/** The plan of a country calling code, if listed. */
export function countryPlan(cc: string): CountryPlan | undefined {
  return BY_CC.get(cc);
}

/** The listed country of an E.164 number or digit string ("+15125550100" or "1512"), with the rest of the digits. */
export function splitCountry(e164: string): { plan: CountryPlan; nsn: string } | undefined {
  const digits = e164.startsWith("+") ? e164.slice(1) : e164;
  for (let n = 1; n <= 3 && n <= digits.length; n++) {
    const p = BY_CC.get(digits.slice(0, n));
    if (p) return { plan: p, nsn: digits.slice(n) };
  }
  return undefined;
}

/**
 * A warning when an E.164 number is one digit short of a length its country allows (and its own
 * length is not allowed), else undefined. Countries not listed are not checked.
 */
export function shortNumberWarning(e164: string): string | undefined {
  const s = splitCountry(e164);
  if (!s) return undefined;
  const len = s.nsn.length;
  if (s.plan.lengths.includes(len) || !s.plan.lengths.includes(len + 1)) return undefined;
  return `${e164} looks one digit short: +${s.plan.cc} ${s.plan.name} numbers have ${describe(s.plan.lengths)} digits after the country code, this one has ${len}`;
}

function describe(lengths: readonly number[]): string {
  if (lengths.length === 1) return String(lengths[0]);
  const contiguous = lengths.every((l, i) => i === 0 || l === lengths[i - 1]! + 1);
  if (contiguous) return `${lengths[0]} to ${lengths[lengths.length - 1]}`;
  return `${lengths.slice(0, -1).join(", ")} or ${lengths[lengths.length - 1]}`;
}

/**
 * Why a route key cannot match a number of its country plan, or undefined when it can (or the
 * country is not listed). Exact keys must have a possible length; prefix keys (`+44*`) may be
 * shorter than a full number but not longer than the longest.
 */
export function routeKeyPlanError(key: string): string | undefined {
  if (key === "*" || !key.startsWith("+")) return undefined;
  const prefix = key.endsWith("*");
  const s = splitCountry(prefix ? key.slice(0, -1) : key);
  if (!s) return undefined;
  const len = s.nsn.length;
  const max = s.plan.lengths[s.plan.lengths.length - 1]!;
  if (prefix) {
    if (len > max) return `prefix ${key} is longer than any +${s.plan.cc} ${s.plan.name} number (at most ${max} digits after the country code): it can never match`;
    return undefined;
  }
  if (!s.plan.lengths.includes(len)) {
    return `${key} cannot be a +${s.plan.cc} ${s.plan.name} number: those have ${describe(s.plan.lengths)} digits after the country code, this one has ${len}`;
  }
  return undefined;
}
