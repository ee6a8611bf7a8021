/**
 * Phone number normalisation to E.164 ("+" and 1 to 15 digits, first digit not 0).
 *
 * Accepts what carriers actually send: "+E164", international prefixes ("00", "011"), national
 * forms per the trunk's country code (NANP 10 and 11 digit forms, a leading national "0"
 * elsewhere), bare international numbers without "+", and tel:/sip: URIs or user parts with
 * visual separators and parameters (";npdi", ";rn=", ";phone-context=").
 *
 * Invalid input is an error value, never an exception.
 */

export interface NumberPlan {
  /** Country calling code of the trunk or peer, digits only ("1", "44"). */
  countryCode?: string;
  /** Trunk prefix dialled before national numbers. Default "0" (NANP: "1"). */
  nationalPrefix?: string;
  /** Prefixes that introduce an international number. Default ["00"] (NANP: ["011"]). */
  internationalPrefixes?: readonly string[];
}

export type NormalizeResult = { ok: true; e164: string } | { ok: false; error: string };

const NANP_INTL = ["011"] as const;
const DEFAULT_INTL = ["00"] as const;

function fail(error: string): NormalizeResult {
  return { ok: false, error };
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** Visual separators of RFC 3966 (and what carriers put in practice). */
function isSeparator(c: number): boolean {
  // - . ( ) space, tab
  return c === 45 || c === 46 || c === 40 || c === 41 || c === 32 || c === 9;
}

/**
 * Extract the user part of a number as the carrier sent it: strips a tel:/sip:/sips: scheme, the
 * host part, URI parameters and percent escapes. Returns the raw (still un-normalised) number.
 */
export function numberUserPart(input: string): string {
  let s = input.trim();
  // Display-name / angle bracket form: "Alice" <sip:+1512...@host>
  const lt = s.indexOf("<");
  if (lt >= 0) {
    const gt = s.indexOf(">", lt + 1);
    s = s.slice(lt + 1, gt > lt ? gt : undefined);
  }
  const lower = s.slice(0, 5).toLowerCase();
  if (lower.startsWith("tel:")) s = s.slice(4);
  else if (lower.startsWith("sips:")) s = s.slice(5);
  else if (lower.startsWith("sip:")) s = s.slice(4);
  const at = s.indexOf("@");
  if (at >= 0) s = s.slice(0, at);
  const semi = s.indexOf(";");
  if (semi >= 0) s = s.slice(0, semi);
  if (s.indexOf("%") >= 0) {
    try {
      s = decodeURIComponent(s);
    } catch {
      // keep as is; the digit check below rejects it
    }
  }
  return s;
}

/** Normalise a number to E.164 per the plan. */
export function normalizeNumber(input: string, plan: NumberPlan = {}): NormalizeResult {
  if (typeof input !== "string") return fail("not a string");
  if (input.length > 256) return fail("too long");
  const user = numberUserPart(input);
  let plus = false;
  let digits = "";
  for (let i = 0; i < user.length; i++) {
    const c = user.charCodeAt(i);
    if (isDigit(c)) digits += user[i];
    else if (c === 43 /* + */ && digits.length === 0 && !plus) plus = true;
    else if (isSeparator(c)) continue;
    else return fail(`invalid character ${JSON.stringify(user[i])}`);
  }
  if (digits.length === 0) return fail("no digits");

  const cc = plan.countryCode ?? "";
  const nanp = cc === "1";
  if (plus) return finish(digits);

  const intl = plan.internationalPrefixes ?? (nanp ? NANP_INTL : DEFAULT_INTL);
  for (const p of intl) {
    if (p.length > 0 && digits.startsWith(p) && digits.length > p.length) return finish(digits.slice(p.length));
  }

  if (nanp) {
    // NANP: NXX-NXX-XXXX (10 digits) or 1 + 10 digits.
    if (digits.length === 10 && digits.charCodeAt(0) >= 50) return finish("1" + digits);
    if (digits.length === 11 && digits[0] === "1" && digits.charCodeAt(1) >= 50) return finish(digits);
    return fail(`not a NANP number (${digits.length} digits)`);
  }

  const national = plan.nationalPrefix ?? "0";
  if (cc !== "") {
    if (national.length > 0 && digits.startsWith(national)) {
      const nsn = digits.slice(national.length);
      if (nsn.length === 0 || nsn[0] === "0") return fail("national number starts with 0 after the trunk prefix");
      return finish(cc + nsn);
    }
    // Bare international form (country code without "+"), as many carriers send it.
    if (digits.startsWith(cc) && digits.length >= cc.length + 6) return finish(digits);
    // National significant number without trunk prefix.
    return finish(cc + digits);
  }
  // No plan: the digits must already be an international number.
  return finish(digits);
}

function finish(digits: string): NormalizeResult {
  if (digits.length < 1 || digits.length > 15) return fail(`E.164 has 1 to 15 digits, got ${digits.length}`);
  if (digits[0] === "0") return fail("E.164 cannot start with 0");
  return { ok: true, e164: "+" + digits };
}

/** True if s is already a canonical E.164 string. */
export function isE164(s: string): boolean {
  if (s.length < 2 || s.length > 16 || s.charCodeAt(0) !== 43 || s.charCodeAt(1) === 48) return false;
  for (let i = 1; i < s.length; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}
