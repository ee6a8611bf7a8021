/**
 * A linear-time reader for the YAML that route files are made of, with the `yaml` package as the
 * reference for everything else.
 *
 * The `yaml` package spends tens of microseconds per node and grows worse than linearly on one
 * large mapping (its lexer, parser and composer each do), so a file of a million routes would take
 * minutes. This reader splits the document into its top-level entries (the lines of one route key
 * and the more-indented lines under it) and reads each entry with a small parser for block
 * mappings and sequences, one-line flow collections and one-line scalars, resolving plain scalars
 * with the YAML 1.2 core schema exactly as the `yaml` package does. An entry it does not handle
 * (anchors, aliases, tags, block scalars, multi-line scalars or flow collections, complex keys)
 * goes to the `yaml` package alone, with its line numbers shifted back into the file. A document
 * whose shape is not a plain top-level mapping (or `routes:` over one), or whose entries refer to
 * each other (an alias of an anchor in another entry), is parsed whole by the `yaml` package.
 */
import YAML from "yaml";

/** Thrown inside the fast reader when an entry needs the reference parser. */
class Unsupported extends Error {}
const UNSUPPORTED = new Unsupported("unsupported");

/** Where a document-level problem is, 1-based. */
export interface YamlError {
  line: number;
  col: number;
  message: string;
}

export interface YamlEntrySink {
  /** One top-level entry (of the document or of its `routes:` mapping), in document order. */
  entry(key: string, value: unknown, line: number, col: number): void;
  /** The `outbound:` section beside the routes. */
  outbound?(value: unknown, line: number, col: number): void;
}

/** Options the reference parser is called with (aliases bounded: no billion laughs). */
const REF_OPTIONS = { maxAliasCount: 1000 } as const;

export type ScanResult = { ok: true } | { ok: false; error: YamlError } | { ok: false; whole: true };

/**
 * Reads the entries of a route document. Returns `whole` when the document must be parsed whole
 * by the reference parser (entries may have been passed to the sink already: the caller starts
 * over), or the first syntax error. Duplicate top-level keys are reported like the reference does.
 */
export function scanYamlEntries(text: string, sink: YamlEntrySink): ScanResult {
  const n = text.length;
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  let sawDocStart = false;
  // Find the first content line.
  let entryIndent = 0;
  for (;;) {
    if (pos >= n) return { ok: true }; // empty document
    const eol = lineEnd(text, pos);
    const ind = indentOf(text, pos, eol);
    if (ind < 0) return { ok: false, whole: true }; // a tab in the indentation
    const c = pos + ind;
    if (c >= eol || text.charCodeAt(c) === 35 /* # */) {
      pos = next(text, eol);
      line++;
      continue;
    }
    if (ind === 0 && text.startsWith("---", pos) && restIsBlank(text, pos + 3, eol) && !sawDocStart) {
      sawDocStart = true;
      pos = next(text, eol);
      line++;
      continue;
    }
    if (ind !== 0) return { ok: false, whole: true };
    const ch = text.charCodeAt(c);
    if (ch === 37 /* % */ || ch === 123 /* { */ || ch === 91 /* [ */ || ch === 45 /* - */ || ch === 46 /* . */ || ch === 63 /* ? */ || ch === 58 /* : */) return { ok: false, whole: true };
    // `routes:` alone on its line wraps the entries.
    const rk = routesKeyEnd(text, pos, eol);
    if (rk >= 0) {
      if (!restIsBlank(text, rk, eol)) return { ok: false, whole: true }; // `routes: {...}` and the like
      pos = next(text, eol);
      line++;
      // The entries' indentation: that of the next content line.
      let p = pos;
      let l = line;
      for (;;) {
        if (p >= n) return { ok: true }; // `routes:` and nothing: no routes
        const e = lineEnd(text, p);
        const i = indentOf(text, p, e);
        if (i < 0) return { ok: false, whole: true };
        if (p + i >= e || text.charCodeAt(p + i) === 35) {
          p = next(text, e);
          l++;
          continue;
        }
        if (i === 0) return { ok: false, whole: true }; // another top-level key after `routes:`
        entryIndent = i;
        break;
      }
    }
    break;
  }

  const keys = new Set<string>();
  const fast = new EntryReader(text);
  // Entry chunks: a content line at entryIndent starts one.
  let start = -1;
  let startLine = 0;
  const flush = (end: number): ScanResult | undefined => {
    if (start < 0) return undefined;
    const r = readEntry(fast, text, start, end, startLine, entryIndent);
    if ("whole" in r) return { ok: false, whole: true };
    if ("error" in r) return { ok: false, error: r.error };
    if (keys.has(r.key)) return { ok: false, error: { line: startLine, col: entryIndent + 1, message: "Map keys must be unique" } };
    keys.add(r.key);
    // A flat document's `outbound:` is the outbound table, never a route key.
    if (entryIndent === 0 && r.key === "outbound") sink.outbound?.(r.value, startLine, 1);
    else sink.entry(r.key, r.value, startLine, entryIndent + 1);
    return undefined;
  };
  while (pos < n) {
    const eol = lineEnd(text, pos);
    const ind = indentOf(text, pos, eol);
    if (ind < 0) return { ok: false, whole: true };
    const c = pos + ind;
    const blank = c >= eol || text.charCodeAt(c) === 35;
    if (!blank) {
      if (ind < entryIndent) {
        // `outbound:` after the `routes:` block: the rest of the document is that section.
        if (ind !== 0 || !text.startsWith("outbound:", pos)) return { ok: false, whole: true };
        const r = flush(pos);
        if (r) return r;
        let doc: unknown;
        try {
          doc = YAML.parse(text.slice(pos), REF_OPTIONS);
        } catch (err) {
          return { ok: false, error: yamlError(err, line - 1) };
        }
        if (doc === null || typeof doc !== "object" || Object.keys(doc).length !== 1) return { ok: false, whole: true };
        sink.outbound?.((doc as { outbound: unknown }).outbound, line, 1);
        return { ok: true };
      }
      if (ind === entryIndent) {
        const ch = text.charCodeAt(c);
        // A sequence, `---`, `...`, a directive, or a complex key (`? k` / `: v` lines).
        if (ch === 45 /* - */ || ch === 46 /* . */ || ch === 37 /* % */ || ch === 63 /* ? */ || ch === 58 /* : */) return { ok: false, whole: true };
        const r = flush(pos);
        if (r) return r;
        start = pos;
        startLine = line;
      } else if (start < 0) return { ok: false, whole: true };
    }
    pos = next(text, eol);
    line++;
  }
  const r = flush(n);
  if (r) return r;
  return { ok: true };
}

/** Parses the whole document with the reference parser (what scanYamlEntries defers to). */
export function parseYamlWhole(text: string): { ok: true; doc: unknown } | { ok: false; error: YamlError } {
  try {
    return { ok: true, doc: YAML.parse(text, REF_OPTIONS) };
  } catch (err) {
    return { ok: false, error: yamlError(err, 0) };
  }
}

function yamlError(err: unknown, lineOffset: number): YamlError {
  const e = err as Error & { linePos?: { line: number; col: number }[] };
  let message = (e.message ?? String(err)).split("\n")[0]!;
  let line = 0;
  let col = 0;
  if (e.linePos && e.linePos[0]) {
    line = e.linePos[0].line + lineOffset;
    col = e.linePos[0].col;
    message = message.replace(/ at line \d+, column \d+:?$/, "");
  }
  return { line, col, message };
}

type EntryResult = { key: string; value: unknown } | { error: YamlError } | { whole: true };

/** One entry's lines [start, end) starting at file line `line`; fast reader, else the reference. */
function readEntry(fast: EntryReader, text: string, start: number, end: number, line: number, indent: number): EntryResult {
  try {
    return fast.read(start, end, indent);
  } catch (err) {
    if (!(err instanceof Unsupported)) throw err;
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text.slice(start, end), REF_OPTIONS);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    // An alias of an anchor defined in another entry: only the whole document can resolve it.
    if (e.code === "BAD_ALIAS" || /alias/i.test(e.message ?? "")) return { whole: true };
    return { error: yamlError(err, line - 1) };
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return { whole: true };
  const keys = Object.keys(doc);
  if (keys.length !== 1) return { whole: true };
  return { key: keys[0]!, value: (doc as Record<string, unknown>)[keys[0]!] };
}

function lineEnd(text: string, pos: number): number {
  const e = text.indexOf("\n", pos);
  const end = e < 0 ? text.length : e;
  return end > pos && text.charCodeAt(end - 1) === 13 ? end - 1 : end;
}

/** Start of the line after the one whose content ends at eol (at its "\r\n", "\n" or the end). */
function next(text: string, eol: number): number {
  return text.charCodeAt(eol) === 13 ? eol + 2 : eol + 1;
}

/** Spaces before the first other character of the line; -1 if a tab is among them. */
function indentOf(text: string, pos: number, eol: number): number {
  let i = pos;
  while (i < eol) {
    const c = text.charCodeAt(i);
    if (c === 32) i++;
    else if (c === 9) {
      // A tab after the indentation on a blank line is fine; in the indentation it is not YAML.
      let j = i;
      while (j < eol && (text.charCodeAt(j) === 9 || text.charCodeAt(j) === 32)) j++;
      if (j >= eol || text.charCodeAt(j) === 35) return j - pos;
      return -1;
    } else break;
  }
  return i - pos;
}

function restIsBlank(text: string, p: number, eol: number): boolean {
  while (p < eol) {
    const c = text.charCodeAt(p);
    if (c === 35) return true;
    if (c !== 32 && c !== 9) return false;
    p++;
  }
  return true;
}

/** If the line at pos is `routes:` (plain or quoted key), the offset after the colon; else -1. */
function routesKeyEnd(text: string, pos: number, eol: number): number {
  for (const k of ["routes:", '"routes":', "'routes':"]) {
    if (text.startsWith(k, pos)) {
      const p = pos + k.length;
      if (p >= eol || text.charCodeAt(p) === 32 || text.charCodeAt(p) === 9) return p;
    }
  }
  return -1;
}

// ---- the entry reader ---------------------------------------------------------------------------

const NULL_RE = /^(?:~|[Nn]ull|NULL)?$/;
const BOOL_RE = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const OCT_RE = /^0o[0-7]+$/;
const INT_RE = /^[-+]?[0-9]+$/;
const HEX_RE = /^0x[0-9a-fA-F]+$/;
const NAN_RE = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
const EXP_RE = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/;
const FLOAT_RE = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;

/** A plain scalar's value under the YAML 1.2 core schema (as the `yaml` package resolves it). */
export function resolvePlain(s: string): unknown {
  const c = s.charCodeAt(0);
  // Most values are strings that cannot be anything else: skip the tests.
  if (!((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46 || c === 126 || c === 110 || c === 78 || c === 116 || c === 84 || c === 102 || c === 70 || s.length === 0)) return s;
  if (NULL_RE.test(s)) return null;
  if (BOOL_RE.test(s)) return s.charCodeAt(0) === 116 || s.charCodeAt(0) === 84;
  if (OCT_RE.test(s)) return parseInt(s.substring(2), 8);
  if (INT_RE.test(s)) return parseInt(s, 10);
  if (HEX_RE.test(s)) return parseInt(s.substring(2), 16);
  if (NAN_RE.test(s)) return s.slice(-3).toLowerCase() === "nan" ? NaN : s[0] === "-" ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  if (EXP_RE.test(s) || FLOAT_RE.test(s)) return parseFloat(s);
  return s;
}

/** A map key from a resolved plain scalar, as the reference turns it into an object key. */
function plainKey(s: string): string {
  const v = resolvePlain(s);
  if (typeof v === "string") return v;
  if (v === null) return "";
  if (typeof v === "boolean") return String(v);
  if (typeof v === "number" && Number.isSafeInteger(v) && INT_RE.test(s)) return String(v);
  throw UNSUPPORTED; // floats and the like: the reference's key formatting
}

const SPACE = 32;
const HASH = 35;
const COLON = 58;
const DASH = 45;

/** Plain scalars may not start with these (c-indicator), except - ? : followed by a non-space. */
function badPlainStart(c: number): boolean {
  return c === 91 || c === 93 || c === 123 || c === 125 || c === 44 || c === HASH || c === 38 || c === 42 || c === 33 || c === 124 || c === 62 || c === 39 || c === 34 || c === 37 || c === 64 || c === 96;
}

class EntryReader {
  private pos = 0; // start of the current line
  private end = 0; // end of the entry
  private eol = 0; // end of the current line's content (before "\r"/"\n")
  private ind = 0; // indentation of the current line
  private col = 0; // where reading goes on within the current line

  constructor(private readonly text: string) {}

  read(start: number, end: number, indent: number): { key: string; value: unknown } {
    this.end = end;
    this.setLine(start);
    this.col = start + indent;
    const key = this.readKey();
    const value = this.readValueAfterKey(indent);
    this.skipBlankLines();
    if (this.pos < this.end) throw UNSUPPORTED; // something left over
    return { key, value };
  }

  // -- lines

  private setLine(p: number): void {
    const t = this.text;
    this.pos = p;
    if (p >= this.end) {
      this.eol = this.end;
      this.ind = 0;
      return;
    }
    let e = t.indexOf("\n", p);
    if (e < 0 || e > this.end) e = this.end;
    if (e > p && t.charCodeAt(e - 1) === 13) e--;
    this.eol = e;
    let i = p;
    while (i < e && t.charCodeAt(i) === SPACE) i++;
    if (i < e && t.charCodeAt(i) === 9) throw UNSUPPORTED;
    this.ind = i - p;
    this.col = i;
  }

  private nextLine(): void {
    const t = this.text;
    let p = this.eol;
    if (p < this.end && t.charCodeAt(p) === 13) p++;
    this.setLine(p + 1);
  }

  /** Moves to the next line that has content (or to the end). */
  private skipBlankLines(): void {
    while (this.pos < this.end && (this.col >= this.eol || this.text.charCodeAt(this.col) === HASH)) this.nextLine();
  }

  /** The rest of the current line is blank or a comment. */
  private restBlank(p: number): boolean {
    const t = this.text;
    while (p < this.eol) {
      const c = t.charCodeAt(p);
      if (c === HASH) return t.charCodeAt(p - 1) === SPACE || t.charCodeAt(p - 1) === 9;
      if (c !== SPACE) return false;
      p++;
    }
    return true;
  }

  private skipSpaces(p: number): number {
    const t = this.text;
    while (p < this.eol && t.charCodeAt(p) === SPACE) p++;
    return p;
  }

  // -- keys and values

  /** Reads `key:` at this.col; leaves this.col after the colon. */
  private readKey(): string {
    const t = this.text;
    const c = t.charCodeAt(this.col);
    let key: string;
    if (c === 34 || c === 39) {
      const r = this.readQuoted(this.col);
      key = r.value;
      const p = this.skipSpaces(r.end);
      if (t.charCodeAt(p) !== COLON) throw UNSUPPORTED;
      this.col = p + 1;
    } else {
      if (badPlainStart(c) || c === 63 /* ? */ || c === COLON || c === DASH) throw UNSUPPORTED;
      const colon = this.findMappingColon(this.col);
      if (colon < 0) throw UNSUPPORTED;
      let e = colon;
      while (e > this.col && t.charCodeAt(e - 1) === SPACE) e--;
      const raw = t.slice(this.col, e);
      key = plainKey(raw);
      this.col = colon + 1;
    }
    if (this.col < this.eol && t.charCodeAt(this.col) !== SPACE) throw UNSUPPORTED;
    if (key === "__proto__") throw UNSUPPORTED;
    return key;
  }

  /** Offset of the ": " (or ":" at the line end) that ends a plain key, or -1. */
  private findMappingColon(p: number): number {
    const t = this.text;
    const e = this.eol;
    for (let i = p; i < e; i++) {
      const c = t.charCodeAt(i);
      if (c === COLON) {
        if (i + 1 >= e || t.charCodeAt(i + 1) === SPACE) return i;
        if (t.charCodeAt(i + 1) === 9) throw UNSUPPORTED;
      } else if (c === HASH && i > p && t.charCodeAt(i - 1) === SPACE) return -1;
      else if (c === 9) throw UNSUPPORTED;
    }
    return -1;
  }

  /**
   * The value after `key:` of a mapping at indentation `indent` (this.col just after the colon):
   * inline on this line, or the block under it.
   */
  private readValueAfterKey(indent: number): unknown {
    const p = this.skipSpaces(this.col);
    if (this.restBlank(p)) {
      this.nextLine();
      this.skipBlankLines();
      if (this.pos >= this.end) return null;
      if (this.ind > indent) return this.readBlock(this.ind);
      if (this.ind === indent && this.isSeqItem(this.col)) return this.readSequence(indent);
      return null;
    }
    const v = this.readInline(p);
    this.nextLine();
    this.skipBlankLines();
    // A more-indented line after an inline value: a multi-line scalar (or an error).
    if (this.pos < this.end && this.ind > indent) throw UNSUPPORTED;
    return v;
  }

  private isSeqItem(p: number): boolean {
    const t = this.text;
    return t.charCodeAt(p) === DASH && (p + 1 >= this.eol || t.charCodeAt(p + 1) === SPACE);
  }

  /** A block node whose first line is the current one, at indentation `indent`. */
  private readBlock(indent: number): unknown {
    if (this.isSeqItem(this.col)) return this.readSequence(indent);
    return this.readMapping(indent);
  }

  /** A block mapping at column `indent`; the first key is at this.col (maybe after a "- "). */
  private readMapping(indent: number): Record<string, unknown> {
    const obj: Record<string, unknown> = {};
    for (;;) {
      const key = this.readKey();
      if (Object.prototype.hasOwnProperty.call(obj, key)) throw UNSUPPORTED; // the reference reports it
      obj[key] = this.readValueAfterKey(indent);
      if (this.pos >= this.end || this.ind !== indent) {
        if (this.pos < this.end && this.ind > indent) throw UNSUPPORTED;
        return obj;
      }
      if (this.isSeqItem(this.col)) throw UNSUPPORTED; // "- " after a pair at the same indentation
    }
  }

  /** A block sequence whose "- " items are at column `indent`. */
  private readSequence(indent: number): unknown[] {
    const out: unknown[] = [];
    const t = this.text;
    for (;;) {
      if (this.pos >= this.end || this.ind !== indent || !this.isSeqItem(this.col)) {
        if (this.pos < this.end && this.ind > indent) throw UNSUPPORTED;
        return out;
      }
      const p = this.skipSpaces(this.col + 1);
      if (this.restBlank(p)) {
        this.nextLine();
        this.skipBlankLines();
        if (this.pos < this.end && this.ind > indent) out.push(this.readBlock(this.ind));
        else out.push(null);
        continue;
      }
      const c = t.charCodeAt(p);
      if (c === DASH && (p + 1 >= this.eol || t.charCodeAt(p + 1) === SPACE)) throw UNSUPPORTED; // "- - x"
      if (this.startsPair(p)) {
        // A compact mapping: its keys line up with the first one.
        const col = p - this.pos;
        this.col = p;
        out.push(this.readMapping(col));
        continue;
      }
      out.push(this.readInline(p));
      this.nextLine();
      this.skipBlankLines();
    }
  }

  /** Whether a `key: ` pair starts at p (for sequence items). */
  private startsPair(p: number): boolean {
    const t = this.text;
    const c = t.charCodeAt(p);
    if (c === 34 || c === 39) {
      const r = this.readQuoted(p);
      const q = this.skipSpaces(r.end);
      return t.charCodeAt(q) === COLON && (q + 1 >= this.eol || t.charCodeAt(q + 1) === SPACE);
    }
    if (c === 91 || c === 123) return false;
    return this.findMappingColon(p) >= 0;
  }

  /** A one-line value at p: flow collection, quoted or plain scalar; the rest must be blank. */
  private readInline(p: number): unknown {
    const t = this.text;
    const c = t.charCodeAt(p);
    let v: unknown;
    let after: number;
    if (c === 91 || c === 123) {
      const r = this.readFlow(p);
      v = r.value;
      after = r.end;
    } else if (c === 34 || c === 39) {
      const r = this.readQuoted(p);
      v = r.value;
      after = r.end;
    } else {
      if (badPlainStart(c) || ((c === DASH || c === 63 || c === COLON) && (p + 1 >= this.eol || t.charCodeAt(p + 1) === SPACE))) throw UNSUPPORTED;
      let e = p;
      for (; e < this.eol; e++) {
        const d = t.charCodeAt(e);
        if (d === HASH && t.charCodeAt(e - 1) === SPACE) break;
        if (d === COLON && (e + 1 >= this.eol || t.charCodeAt(e + 1) === SPACE)) throw UNSUPPORTED; // "a: b: c"
        if (d === 9) throw UNSUPPORTED;
      }
      let s = e;
      while (s > p && t.charCodeAt(s - 1) === SPACE) s--;
      return resolvePlain(t.slice(p, s));
    }
    if (!this.restBlank(after)) throw UNSUPPORTED;
    return v;
  }

  /** A quoted scalar on one line starting at p (at the quote). */
  private readQuoted(p: number): { value: string; end: number } {
    const t = this.text;
    const q = t.charCodeAt(p);
    const e = this.eol;
    if (q === 39) {
      let out = "";
      let from = p + 1;
      for (let i = p + 1; i < e; i++) {
        if (t.charCodeAt(i) === 39) {
          if (t.charCodeAt(i + 1) === 39 && i + 1 < e) {
            out += t.slice(from, i + 1);
            i++;
            from = i + 1;
            continue;
          }
          return { value: out + t.slice(from, i), end: i + 1 };
        }
      }
      throw UNSUPPORTED; // continues on the next line
    }
    let i = p + 1;
    let from = i;
    let out = "";
    for (; i < e; i++) {
      const c = t.charCodeAt(i);
      if (c === 34) return { value: out + t.slice(from, i), end: i + 1 };
      if (c === 92) {
        out += t.slice(from, i);
        const d = t.charCodeAt(i + 1);
        if (i + 1 >= e) throw UNSUPPORTED;
        switch (d) {
          case 34:
            out += '"';
            break;
          case 92:
            out += "\\";
            break;
          case 47:
            out += "/";
            break;
          case 110:
            out += "\n";
            break;
          case 116:
          case 9:
            out += "\t";
            break;
          case 114:
            out += "\r";
            break;
          case 98:
            out += "\b";
            break;
          case 102:
            out += "\f";
            break;
          case 48:
            out += "\0";
            break;
          case 97:
            out += "\x07";
            break;
          case 118:
            out += "\v";
            break;
          case 101:
            out += "\x1b";
            break;
          case 32:
            out += " ";
            break;
          case 117: {
            const h = t.slice(i + 2, i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(h)) throw UNSUPPORTED;
            out += String.fromCharCode(parseInt(h, 16));
            i += 4;
            break;
          }
          default:
            throw UNSUPPORTED;
        }
        i++;
        from = i + 1;
      }
    }
    throw UNSUPPORTED;
  }

  /** A flow collection on one line starting at p ("[" or "{"). */
  private readFlow(p: number): { value: unknown; end: number } {
    const t = this.text;
    const open = t.charCodeAt(p);
    const close = open === 91 ? 93 : 125;
    const seq: unknown[] = [];
    const map: Record<string, unknown> = {};
    let i = p + 1;
    for (;;) {
      i = this.skipSpaces(i);
      if (i >= this.eol) throw UNSUPPORTED; // continues on the next line
      let c = t.charCodeAt(i);
      if (c === close) return { value: open === 91 ? seq : map, end: i + 1 };
      let key: string | undefined;
      if (open === 123) {
        // key
        if (c === 34 || c === 39) {
          const r = this.readQuoted(i);
          key = r.value;
          i = this.skipSpaces(r.end);
          if (t.charCodeAt(i) !== COLON) throw UNSUPPORTED;
          i++;
        } else {
          const r = this.flowPlain(i, true);
          key = plainKey(r.raw);
          i = r.end;
          if (t.charCodeAt(i) !== COLON) throw UNSUPPORTED;
          i++;
          const d = t.charCodeAt(i);
          if (!(d === SPACE || d === 44 || d === close)) throw UNSUPPORTED;
        }
        if (key === "__proto__" || Object.prototype.hasOwnProperty.call(map, key)) throw UNSUPPORTED;
        i = this.skipSpaces(i);
        c = t.charCodeAt(i);
        if (c === 44 || c === close) {
          map[key] = null;
          if (c === 44) i++;
          continue;
        }
      }
      let v: unknown;
      if (c === 91 || c === 123) {
        const r = this.readFlow(i);
        v = r.value;
        i = r.end;
      } else if (c === 34 || c === 39) {
        const r = this.readQuoted(i);
        v = r.value;
        i = r.end;
      } else {
        const r = this.flowPlain(i, false);
        v = resolvePlain(r.raw);
        i = r.end;
      }
      i = this.skipSpaces(i);
      c = t.charCodeAt(i);
      if (open === 91 && c === COLON) throw UNSUPPORTED; // a single-pair mapping in a sequence
      if (key === undefined) seq.push(v);
      else map[key] = v;
      if (c === 44) i++;
      else if (c !== close) throw UNSUPPORTED;
    }
  }

  /** A plain scalar in a flow collection: up to , [ ] { } or ": " (key: also ":" before those). */
  private flowPlain(p: number, isKey: boolean): { raw: string; end: number } {
    const t = this.text;
    const c0 = t.charCodeAt(p);
    if (badPlainStart(c0) || ((c0 === DASH || c0 === 63 || c0 === COLON) && (t.charCodeAt(p + 1) === SPACE || p + 1 >= this.eol))) throw UNSUPPORTED;
    let i = p;
    for (; i < this.eol; i++) {
      const c = t.charCodeAt(i);
      if (c === 44 || c === 91 || c === 93 || c === 123 || c === 125) break;
      if (c === COLON) {
        const d = t.charCodeAt(i + 1);
        if (i + 1 >= this.eol || d === SPACE || d === 44 || d === 91 || d === 93 || d === 123 || d === 125) {
          if (isKey) break;
          throw UNSUPPORTED;
        }
      }
      if (c === HASH && t.charCodeAt(i - 1) === SPACE) throw UNSUPPORTED;
      if (c === 9) throw UNSUPPORTED;
    }
    if (i >= this.eol) throw UNSUPPORTED;
    let e = i;
    while (e > p && t.charCodeAt(e - 1) === SPACE) e--;
    return { raw: t.slice(p, e), end: i };
  }
}
