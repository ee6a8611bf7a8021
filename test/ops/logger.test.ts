import { spawn, type ChildProcess } from "node:child_process";
import { Writable } from "node:stream";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { createLogger, isoTimeCached, unredacted } from "../../src/ops/logger.js";

const LOGGER = resolve("dist/src/ops/logger.js");

/**
 * Run a script against the built logger (stdout buffered as in the daemon); its stdout lines as
 * they arrived. `onLine` sees each line as it comes (e.g. to signal the child).
 */
function runScript(body: string, onLine?: (line: Record<string, unknown>, child: ChildProcess) => void): Promise<{ lines: Array<Record<string, unknown>>; code: number | null; signal: string | null }> {
  const src = `import { createLogger } from ${JSON.stringify(LOGGER)};\nconst log = createLogger("info");\n${body}`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: ["ignore", "pipe", "inherit"] });
  const guard = setTimeout(() => child.kill("SIGKILL"), 15_000);
  const lines: Array<Record<string, unknown>> = [];
  let rest = "";
  child.stdout!.on("data", (d: Buffer) => {
    rest += d.toString();
    const parts = rest.split("\n");
    rest = parts.pop()!;
    for (const p of parts) {
      if (p.length === 0) continue;
      const line = JSON.parse(p) as Record<string, unknown>;
      lines.push(line);
      onLine?.(line, child);
    }
  });
  return new Promise((res) =>
    child.on("close", (code, signal) => {
      clearTimeout(guard);
      res({ lines, code, signal });
    }),
  );
}

describe("logger", { timeout: 30_000 }, () => {
  it("buffered stdout: a line shows while the process runs (not only at exit), and nothing is lost at exit", async () => {
    // the child writes one line and waits; only once that line has arrived here is it told to
    // write 50 more and exit: a line held in the buffer until exit ends in the guard's SIGKILL
    const r = await runScript(
      `log.info({ n: 1 }, "first");
      const keep = setInterval(() => {}, 1000);
      process.on("SIGUSR2", () => {
        for (let i = 0; i < 50; i++) log.info({ n: 2 + i }, "more");
        process.exit(0);
      });`,
      (line, child) => {
        if (line.n === 1) child.kill("SIGUSR2");
      },
    );
    expect(r.code).toBe(0);
    expect(r.lines.map((l) => l.n)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
  });

  it("a fatal line is written at once with what was buffered before it, even when the process is killed right after", async () => {
    const r = await runScript(`
      log.info({ n: 1 }, "buffered");
      log.warn({ n: 2 }, "buffered too");
      log.fatal({ n: 3 }, "giving up");
      process.kill(process.pid, "SIGKILL");
    `);
    expect(r.signal).toBe("SIGKILL");
    expect(r.lines.map((l) => [l.level, l.n])).toEqual([["info", 1], ["warn", 2], ["fatal", 3]]);
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

  it("the timestamp is pino's isoTime text, across seconds, milliseconds 0-999 and odd dates", () => {
    let t = 0;
    const cached = isoTimeCached(() => t);
    const realNow = Date.now;
    try {
      const times = [Date.UTC(2026, 11, 6, 5, 3, 1, 0), Date.UTC(2026, 11, 6, 5, 3, 1, 7), Date.UTC(2026, 11, 6, 5, 3, 1, 45), Date.UTC(2026, 11, 6, 5, 3, 1, 999),
        Date.UTC(2026, 11, 6, 5, 3, 2, 0), Date.UTC(2026, 11, 6, 5, 3, 1, 500), 0, -1, -1001, 1e15, Date.UTC(2024, 1, 29, 23, 59, 59, 999), 1.5e12 + 0.25];
      for (let k = 0; k < 3000; k++) times.push(1.7e12 + k * 337);
      for (const x of times) {
        t = x;
        Date.now = () => x;
        expect(cached()).toBe(pino.stdTimeFunctions.isoTime());
      }
    } finally {
      Date.now = realNow;
    }
    expect(cached()).toMatch(/^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/);
  });
});
