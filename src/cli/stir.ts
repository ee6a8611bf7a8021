/** `didgate stir verify`: decode an Identity header and give the verdict, as an inbound call would get it. */
import { readFileSync } from "node:fs";
import type { X509Certificate } from "node:crypto";
import { loadConfig, resolvePath } from "../config/load.js";
import { AddressPolicy } from "../delivery/ssrf.js";
import { parsePemBundle } from "../stir/certs.js";
import { inspectIdentity } from "../stir/inspect.js";
import { normalizeNumber } from "../routing/number.js";
import { bool, line, parseCommand, str, UsageError, type Io } from "./args.js";
import { errMessage } from "../util/errors.js";
import { STIR_USAGE } from "./usage.js";

export async function stirCommand(argv: string[], io: Io): Promise<number> {
  if (argv[0] === "--help" || argv[0] === "-h") {
    io.out(STIR_USAGE);
    return 0;
  }
  if (argv[0] !== "verify") throw new UsageError(argv[0] === undefined ? "stir needs a subcommand" : `unknown stir subcommand ${JSON.stringify(argv[0])}`, STIR_USAGE);
  const p = parseCommand(
    argv.slice(1),
    { from: { type: "string" }, to: { type: "string" }, anchors: { type: "string" }, "max-age": { type: "string" }, "allow-http": { type: "boolean" }, "allow-private": { type: "string" }, json: { type: "boolean" }, config: { type: "string", short: "c" } },
    STIR_USAGE,
    { min: 1, max: 1 },
  );
  if (p === "help") {
    io.out(STIR_USAGE);
    return 0;
  }
  const from = str(p, "from");
  const to = str(p, "to");
  if (from === undefined || to === undefined) throw new UsageError("--from and --to are required", STIR_USAGE);
  const f = normalizeNumber(from, { countryCode: "1" });
  const t = normalizeNumber(to, { countryCode: "1" });
  if (!f.ok || !t.ok) {
    io.err(line(`not a phone number: ${!f.ok ? from : to}`));
    return 1;
  }
  let anchors: X509Certificate[] = [];
  let anchorsFile = str(p, "anchors");
  let maxAge = 60;
  let allowPrivate: readonly string[] = [];
  try {
    const loaded = loadConfig(str(p, "config"));
    const v = loaded.config.stir?.verify;
    if (v !== undefined) {
      anchorsFile ??= resolvePath(loaded.baseDir, v.trust_anchors);
      maxAge = v.max_age_s;
      allowPrivate = v.allow_private;
    }
  } catch {
    // no config: --anchors is then required, and no private address is reached
  }
  if (anchorsFile === undefined) {
    io.err(line("no trust anchors: give --anchors FILE (PEM) or a config with stir.verify.trust_anchors"));
    return 1;
  }
  try {
    anchors = parsePemBundle(readFileSync(anchorsFile));
  } catch (e) {
    io.err(line(`cannot read trust anchors ${anchorsFile}: ${errMessage(e)}`));
    return 1;
  }
  const ap = str(p, "allow-private");
  if (ap !== undefined) {
    allowPrivate = ap.split(",").map((c) => c.trim()).filter((c) => c !== "");
    try {
      new AddressPolicy(allowPrivate);
    } catch (e) {
      throw new UsageError(`--allow-private: ${errMessage(e)}`, STIR_USAGE);
    }
  }
  const ma = str(p, "max-age");
  if (ma !== undefined) {
    maxAge = Number(ma);
    if (!(maxAge > 0)) throw new UsageError("--max-age must be a number of seconds", STIR_USAGE);
  }
  const r = await inspectIdentity(p.positionals[0]!, f.e164, t.e164, { anchors, maxAgeS: maxAge, allowHttp: bool(p, "allow-http"), allowPrivate });
  if (bool(p, "json")) io.out(JSON.stringify(r, null, 2) + "\n");
  else {
    io.out(line(`identity: info=${r.identity?.info ?? "-"} alg=${r.identity?.alg ?? "-"} ppt=${r.identity?.ppt ?? "-"}`));
    io.out(line(`header:   ${r.header ? JSON.stringify(r.header) : "unreadable"}`));
    io.out(line(`claims:   ${r.claims ? JSON.stringify(r.claims) : "unreadable"}`));
    if (r.iat) io.out(line(`iat:      ${r.iat.time} (${r.iat.age_s} s ago)`));
    const v = r.verdict;
    io.out(line(`verdict:  ${v.verstat} (${v.reason}${v.detail ? ": " + v.detail : ""})${v.status ? `; a route with on_fail: reject answers ${v.status}` : ""}`));
  }
  return r.verdict.reason === "passed" ? 0 : 1;
}
