/**
 * Lint of the repository's Dockerfile without a Docker engine: the file is parsed into stages and
 * instructions (comments, line continuations, JSON and shell forms) and checked against what
 * issue #8 asks of the image. Where a check can be made real it is: the config the image installs
 * in /etc/didgate (the bundled config with the Dockerfile's own sed applied) passes
 * `didgate check-config` with the built entry point, and that entry point exists after
 * `npm run build` (which `npm test` runs first).
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { applyEnv, configBaseDir, snapshotPath, validateConfig } from "../../src/config/load.js";
import { tempDir } from "../helpers/app.js";

const ROOT = resolve(import.meta.dirname, "../..");

interface Instruction {
  cmd: string; // upper case
  args: string; // raw argument text, continuations joined
  line: number;
}
interface Stage {
  from: string; // image reference
  name: string | undefined;
  index: number;
  instructions: Instruction[];
}

/** Dockerfile → stages (comments and parser directives dropped, `\` continuations joined). */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split(/\r?\n/);
  let buf = "";
  let start = 0;
  const flush = (): void => {
    const s = buf.trim();
    buf = "";
    if (s === "") return;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(s)!;
    const ins: Instruction = { cmd: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start + 1 };
    if (ins.cmd === "FROM") {
      const f = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!f) throw new Error(`line ${ins.line}: bad FROM ${ins.args}`);
      stages.push({ from: f[1]!, name: f[2], index: stages.length, instructions: [] });
      return;
    }
    if (stages.length === 0) {
      if (ins.cmd === "ARG") return;
      throw new Error(`line ${ins.line}: ${ins.cmd} before FROM`);
    }
    stages.at(-1)!.instructions.push(ins);
  };
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const t = raw.trim();
    if (buf === "" && (t === "" || t.startsWith("#"))) continue;
    if (buf !== "" && t.startsWith("#")) continue; // comment lines inside a continuation
    if (buf === "") start = i;
    if (t.endsWith("\\")) {
      buf += t.slice(0, -1) + " ";
      continue;
    }
    buf += t;
    flush();
  }
  flush();
  return stages;
}

/** JSON (exec) form → array; shell form → ["/bin/sh", "-c", text]. */
function execForm(args: string): string[] {
  if (args.startsWith("[")) return JSON.parse(args) as string[];
  return ["/bin/sh", "-c", args];
}

/** LINT_DOCKERFILE: lint another file (used to check that these tests catch a broken Dockerfile). */
const DOCKERFILE = process.env.LINT_DOCKERFILE ?? join(ROOT, "Dockerfile");
const dockerfile = (): Stage[] => parseDockerfile(readFileSync(DOCKERFILE, "utf8"));
const final = (): Stage => dockerfile().at(-1)!;
const all = (s: Stage, cmd: string): Instruction[] => s.instructions.filter((i) => i.cmd === cmd);
const last = (s: Stage, cmd: string): Instruction | undefined => all(s, cmd).at(-1);
/** Stage a `COPY --from=X` refers to (by name or index). */
const stageRef = (stages: Stage[], ref: string): Stage | undefined => stages.find((s) => s.name === ref) ?? (/^\d+$/.test(ref) ? stages[Number(ref)] : undefined);
/** COPY/ADD → { from, sources, dest }. */
function copyParts(i: Instruction): { from: string | undefined; sources: string[]; dest: string } {
  const words = i.args.startsWith("[") ? (JSON.parse(i.args) as string[]) : i.args.split(/\s+/);
  let from: string | undefined;
  const rest: string[] = [];
  for (const w of words) {
    if (w.startsWith("--from=")) from = w.slice(7);
    else if (!w.startsWith("--")) rest.push(w);
  }
  return { from, sources: rest.slice(0, -1), dest: rest.at(-1)! };
}
function envOf(s: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of all(s, "ENV")) {
    for (const m of i.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, "");
    const legacy = /^(\w+)\s+([^=]+)$/.exec(i.args);
    if (legacy) env[legacy[1]!] = legacy[2]!.trim();
  }
  return env;
}
/** The command line the container runs: ENTRYPOINT + CMD (exec forms). */
function command(s: Stage): string[] {
  const ep = last(s, "ENTRYPOINT");
  const cmd = last(s, "CMD");
  return [...(ep ? execForm(ep.args) : []), ...(cmd ? execForm(cmd.args) : [])];
}

describe("the Dockerfile parser", () => {
  it("splits stages, joins continuations, drops comments, reads COPY --from", () => {
    const s = parseDockerfile(
      "# syntax=docker/dockerfile:1\nARG V=1\nFROM node:24-slim AS build\nRUN a \\\n  # inside\n && b\nFROM --platform=linux/amd64 node:24-slim\nCOPY --from=build --chown=node /app/dist ./dist\nCMD [\"x\"]\n",
    );
    expect(s.map((x) => [x.from, x.name])).toEqual([["node:24-slim", "build"], ["node:24-slim", undefined]]);
    expect(s[0]!.instructions).toEqual([{ cmd: "RUN", args: "a  && b", line: 4 }]);
    expect(copyParts(s[1]!.instructions[0]!)).toEqual({ from: "build", sources: ["/app/dist"], dest: "./dist" });
    expect(execForm(s[1]!.instructions[1]!.args)).toEqual(["x"]);
    expect(() => parseDockerfile("RUN x\n")).toThrow(/before FROM/);
  });
});

describe("Dockerfile", () => {
  it("is multi-stage and the final stage runs on a Node LTS slim image the package supports", () => {
    const stages = dockerfile();
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const m = /^node:(\d+)(?:\.\d+){0,2}-(?:(?:bookworm|trixie|bullseye)-)?slim(?:@sha256:[0-9a-f]{64})?$/.exec(final().from);
    expect(m, `final stage FROM ${final().from}`).not.toBeNull();
    const major = Number(m![1]);
    expect(major % 2, "Node LTS lines are the even majors").toBe(0);
    const engines = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).engines.node as string;
    expect(major).toBeGreaterThanOrEqual(Number(/>=\s*(\d+)/.exec(engines)![1]));
    // build and runtime on the same Node major
    for (const s of stages) if (s.from.startsWith("node:")) expect(s.from.split(/[:.-]/)[1], s.from).toBe(String(major));
  });

  it("runs as a non-root user in the final stage", () => {
    const f = final();
    const u = last(f, "USER");
    expect(u, "no USER in the final stage").toBeDefined();
    const user = u!.args.split(":")[0]!;
    expect(["root", "0"]).not.toContain(user);
    // the switch happens before what the container runs
    const at = (cmd: string): number => f.instructions.findLastIndex((i) => i.cmd === cmd);
    expect(f.instructions.indexOf(u!)).toBeLessThan(Math.max(at("CMD"), at("ENTRYPOINT")));
    // the state directory is the user's (chown in a RUN before the switch)
    expect(all(f, "RUN").some((i) => new RegExp(`chown -R ${user}(:${user})? /var/lib/didgate`).test(i.args))).toBe(true);
  });

  it("has a HEALTHCHECK that requests /healthz on the admin port", () => {
    const h = last(final(), "HEALTHCHECK");
    expect(h, "no HEALTHCHECK").toBeDefined();
    expect(h!.args).not.toMatch(/^NONE$/i);
    const cmd = /\bCMD\s+([\s\S]+)$/.exec(h!.args)![1]!;
    const line = execForm(cmd).join(" ");
    const url = /https?:\/\/(127\.0\.0\.1|localhost|\[::1\]):(\d+)\/healthz\b/.exec(line);
    expect(url, line).not.toBeNull();
    const admin = envOf(final()).DIDGATE_ADMIN_LISTEN;
    expect(admin, "the admin listener must be reachable from outside the container").toMatch(/^0\.0\.0\.0:\d+$/);
    expect(url![2]).toBe(admin!.split(":")[1]);
    expect(h!.args).toMatch(/--interval=\d+s/);
  });

  it("EXPOSEs the SIP, SMPP and admin ports of the bundled config", () => {
    const exposed = new Set(all(final(), "EXPOSE").flatMap((i) => i.args.split(/\s+/)).map((p) => (p.includes("/") ? p : `${p}/tcp`)));
    const cfg = YAML.parse(readFileSync(join(ROOT, "config/didgate.yaml"), "utf8"));
    const want: string[] = [];
    for (const l of cfg.sip.listen as string[]) {
      const m = /^(udp|tcp|tls):\/\/.*:(\d+)$/.exec(l)!;
      want.push(`${m[2]}/${m[1] === "udp" ? "udp" : "tcp"}`);
    }
    want.push(`${String(cfg.smpp.listen).split(":").at(-1)}/tcp`);
    want.push(`${envOf(final()).DIDGATE_ADMIN_LISTEN!.split(":")[1]}/tcp`);
    expect(want).toEqual(expect.arrayContaining(["5060/udp", "5060/tcp", "2775/tcp", "9464/tcp"]));
    for (const p of want) expect(exposed.has(p), `EXPOSE ${p}`).toBe(true);
  });

  it("installs only production dependencies in the final stage (npm ci --omit=dev)", () => {
    const stages = dockerfile();
    const f = final();
    const own = all(f, "RUN").filter((i) => /\bnpm (ci|install|i)\b/.test(i.args));
    for (const i of own) expect(i.args, `final stage line ${i.line}`).toMatch(/--omit=dev|--production|--only=prod/);
    const copies = all(f, "COPY").map(copyParts).filter((c) => c.sources.some((s) => /node_modules/.test(s)));
    expect(own.length + copies.length, "the final stage needs node_modules").toBeGreaterThan(0);
    for (const c of copies) {
      expect(c.from, "node_modules must come from a stage, not the build context").toBeDefined();
      const src = stageRef(stages, c.from!)!;
      expect(src, `COPY --from=${c.from}`).toBeDefined();
      const installs = all(src, "RUN").filter((i) => /\bnpm (ci|install|i)\b/.test(i.args));
      expect(installs.length, `stage ${c.from} installs nothing`).toBeGreaterThan(0);
      for (const i of installs) expect(i.args, `stage ${c.from} line ${i.line}`).toMatch(/npm ci\b.*--omit=dev/);
    }
    // no dev tooling copied wholesale from a build stage
    for (const c of all(f, "COPY").map(copyParts)) expect(c.sources.join(" "), `COPY ${c.sources.join(" ")}`).not.toMatch(/^\.$|^\/app\/?$|node_modules\/\.bin/);
  });

  it("runs the built entry point dist/src/cli.js with the config in /etc/didgate", () => {
    const stages = dockerfile();
    const f = final();
    const argv = command(f);
    expect(argv[0]).toBe("node");
    const cliIdx = argv.findIndex((a) => /(^|\/)dist\/src\/cli\.js$/.test(a));
    expect(cliIdx, argv.join(" ")).toBeGreaterThan(0);
    expect(argv[cliIdx + 1]).toBe("serve");
    const cfgIdx = argv.indexOf("--config");
    const cfgPath = cfgIdx > 0 ? argv[cfgIdx + 1] : envOf(f).DIDGATE_CONFIG;
    expect(cfgPath).toBe("/etc/didgate/didgate.yaml");
    // dist/src comes from a stage that compiles the sources
    const dist = all(f, "COPY").map(copyParts).find((c) => c.sources.some((s) => /dist\/src\/?$/.test(s)));
    expect(dist?.from, "COPY --from=<build stage> …/dist/src").toBeDefined();
    const build = stageRef(stages, dist!.from!)!;
    expect(all(build, "RUN").some((i) => /\b(tsc|npm run build)\b/.test(i.args))).toBe(true);
    // ESM: package.json ("type": "module") must sit beside dist in the final stage
    expect(all(f, "COPY").map(copyParts).some((c) => c.from === undefined && c.sources.includes("package.json"))).toBe(true);
    // the entry point the image runs is what the build produces (npm test builds first)
    expect(existsSync(join(ROOT, "dist/src/cli.js")), "dist/src/cli.js: run `npm run build`").toBe(true);
    expect(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).bin.didgate).toBe("dist/src/cli.js");
  });

  it("the config it installs in /etc/didgate passes `didgate check-config`", () => {
    const f = final();
    const run = all(f, "RUN").find((i) => i.args.includes("/etc/didgate"));
    expect(run, "no RUN that installs the config into /etc/didgate").toBeDefined();
    expect(run!.args).toMatch(/cp config\/didgate\.yaml config\/routes\.yaml \/etc\/didgate\//);
    // replay the Dockerfile's edits of /etc/didgate/didgate.yaml (sed 's#A#B#') on a copy
    const dir = tempDir("didgate-image-");
    try {
      const etc = join(dir, "etc", "didgate");
      mkdirSync(etc, { recursive: true });
      copyFileSync(join(ROOT, "config/didgate.yaml"), join(etc, "didgate.yaml"));
      copyFileSync(join(ROOT, "config/routes.yaml"), join(etc, "routes.yaml"));
      let text = readFileSync(join(etc, "didgate.yaml"), "utf8");
      for (const m of run!.args.matchAll(/sed -i '(s(.)(.*?)\2(.*?)\2g?)' \/etc\/didgate\/didgate\.yaml/g)) {
        expect(text, `sed ${m[1]} must match the bundled config`).toContain(m[3]!);
        text = text.replace(m[3]!, m[4]!);
      }
      writeFileSync(join(etc, "didgate.yaml"), text);
      const r = spawnSync(process.execPath, [join(ROOT, "dist/src/cli.js"), "check-config", "--config", join(etc, "didgate.yaml")], {
        encoding: "utf8",
        // the image's environment: no DIDGATE_* overrides from ours, the image's own ENV
        env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("DIDGATE_"))), ...envOf(f) },
        timeout: 20_000,
      });
      expect(r.status, r.stdout + r.stderr).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // The build script copies didgate.lua into dist/src: the image must run it (or copy the file),
  // or `didgate routes functions` cannot find the library in the image.
  it("ships every file the build script copies into dist/src (didgate.lua)", () => {
    const stages = dockerfile();
    const script = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.build as string;
    const assets = [...script.matchAll(/cp (\S+) (dist\/\S+)/g)].map((m) => m[1]!);
    expect(assets).toContain("src/routing/sources/didgate.lua");
    const dist = all(final(), "COPY").map(copyParts).find((c) => c.sources.some((s) => /dist\/src\/?$/.test(s)))!;
    const build = stageRef(stages, dist.from!)!;
    const runsBuild = all(build, "RUN").some((i) => /\bnpm run build\b/.test(i.args));
    const copiesAll = assets.every((a) => all(final(), "COPY").some((i) => i.args.includes(a)) || all(build, "RUN").some((i) => i.args.includes(`cp ${a}`)));
    expect(runsBuild || copiesAll).toBe(true);
  });

  // With Redis routes the snapshot (state_dir) must be writable by the image's non-root USER, or
  // an edge cannot start from it while Redis is down.
  it("with Redis routes, the snapshot lands in a directory the image's USER owns", () => {
    const f = final();
    const user = last(f, "USER")!.args.split(":")[0]!;
    const raw = YAML.parse(readFileSync(join(ROOT, "config/didgate.yaml"), "utf8")) as Record<string, unknown>;
    const env = { ...envOf(f), DIDGATE_ROUTES_REDIS_URL: "redis://redis:6379" };
    const errs = applyEnv(raw, env);
    expect(errs).toEqual([]);
    const v = validateConfig(raw);
    if (!v.ok) throw new Error(v.errors.join("\n"));
    const snapshot = snapshotPath(v.config, configBaseDir("/etc/didgate/didgate.yaml"));
    const owned = all(f, "RUN").flatMap((i) => [...i.args.matchAll(new RegExp(`chown -R ${user}(?::${user})? (\\S+)`, "g"))].map((m) => m[1]!));
    expect(owned.some((d) => snapshot.startsWith(d.replace(/\/?$/, "/"))), `${snapshot} not under ${owned.join(", ")}`).toBe(true);
  });
});

