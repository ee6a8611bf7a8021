import { spawn } from "node:child_process";
import { Writable } from "node:stream";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { createLogger, LOG_FLUSH_MS, unredacted } from "../../src/ops/logger.js";

const LOGGER = resolve("dist/src/ops/logger.js");

/** Run a script against the built logger (stdout buffered as in the daemon); its stdout lines as they arrived, with arrival times. */
function runScript(body: string): Promise<{ lines: Array<{ at: number; line: Record<string, unknown> }>; code: number | null; signal: string | null; t0: number }> {
  const src = `import { createLogger } from ${JSON.stringify(LOGGER)};\nconst log = createLogger("info");\nconst t0 = Date.now();\n${body}`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: ["ignore", "pipe", "inherit"] });
  const lines: Array<{ at: number; line: Record<string, unknown> }> = [];
  let rest = "";
  const t0 = Date.now();
  child.stdout.on("data", (d: Buffer) => {
    const at = Date.now() - t0;
    rest += d.toString();
    const parts = rest.split("\n");
    rest = parts.pop()!;
    for (const p of parts) if (p.length > 0) lines.push({ at, line: JSON.parse(p) as Record<string, unknown> });
  });
  return new Promise((res) => child.on("close", (code, signal) => res({ lines, code, signal, t0 })));
}

describe("logger", { timeout: 30_000 }, () => {
  it("buffered stdout: a line shows within the flush interval while the process runs, and nothing is lost at exit", async () => {
    const r = await runScript(`
      log.info({ n: 1 }, "first");
      setTimeout(() => {
        for (let i = 0; i < 50; i++) log.info({ n: 2 + i }, "more");
        process.exit(0);
      }, 1500);
    `);
    expect(r.code).toBe(0);
    expect(r.lines.map((l) => l.line.n)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
    // the first line came out long before the exit at 1500 ms (process start included)
    const first = r.lines[0]!;
    const last = r.lines[r.lines.length - 1]!;
    expect(last.at - first.at).toBeGreaterThan(1500 - 5 * LOG_FLUSH_MS);
  });

  it("a fatal line is written at once with what was buffered before it, even when the process is killed right after", async () => {
    const r = await runScript(`
      log.info({ n: 1 }, "buffered");
      log.warn({ n: 2 }, "buffered too");
      log.fatal({ n: 3 }, "giving up");
      process.kill(process.pid, "SIGKILL");
    `);
    expect(r.signal).toBe("SIGKILL");
    expect(r.lines.map((l) => [l.line.level, l.line.n])).toEqual([["info", 1], ["warn", 2], ["fatal", 3]]);
  });

  it("unredacted writes the same line without the redaction pass and follows the parent's level", () => {
    const out: string[] = [];
    const dest = new Writable({ write(c: Buffer, _e, cb) { out.push(c.toString()); cb(); } });
    const log = createLogger("info", dest);
    const fields = { trunk: "carrier-a", did: "+15125550100", targets: ["sip:a@127.0.0.1=200"], code: 200, call_id: "c1" };
    log.info(fields, "call");
    unredacted(log).info(fields, "call");
    const [a, b] = out.map((l) => { const j = JSON.parse(l) as Record<string, unknown>; delete j.time; return j; });
    expect(b).toEqual(a);
    expect(Object.keys(b!)).toEqual(Object.keys(a!));
    // the redaction pass is what the child leaves out
    log.info({ secret: "s1" }, "x");
    unredacted(log).info({ secret: "s1" }, "x");
    expect(out[2]).toContain('"[redacted]"');
    expect(out[3]).toContain('"s1"');
    log.level = "warn";
    unredacted(log).info(fields, "call");
    expect(out).toHaveLength(4);
    log.level = "info";
    unredacted(log).info(fields, "call");
    expect(out).toHaveLength(5);
  });
});
