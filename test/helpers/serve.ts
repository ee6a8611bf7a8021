/** Helpers to run `didgate serve` as a child process (the built CLI on the pinned Node) and bind an app to it. */
import { spawn, type ChildProcess } from "node:child_process";
import { openSync } from "node:fs";
import { dirname, join } from "node:path";
import { waitFor } from "./app.js";
import { connectEsme, type TestEsme } from "./smsc.js";

const ROOT = join(import.meta.dirname, "..", "..");
export const CLI = join(ROOT, "dist/src/cli.js");
export const NODE = join(ROOT, "node_modules/.bin/node");

/** Start `didgate serve --config cfgPath`; its log (JSON lines) goes to didgate.log beside the config, to read when a case fails. */
export function spawnServe(cfgPath: string): ChildProcess {
  const c = spawn(NODE, [CLI, "serve", "--config", cfgPath], { stdio: ["ignore", openSync(join(dirname(cfgPath), "didgate.log"), "a"), "pipe"] });
  c.stderr!.on("data", (d: Buffer) => process.stderr.write(d));
  return c;
}

/** SIGKILL a child (if still running) and wait for its exit. */
export async function kill9(c: ChildProcess | undefined): Promise<void> {
  if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once("exit", () => r()));
  c.kill("SIGKILL");
  await exited;
}

/** Bind an app (transceiver) once the daemon's SMPP listener is up and accepts the account. */
export async function bindAppWhenUp(port: number, systemId: string, password: string, timeoutMs = 20_000): Promise<TestEsme> {
  return waitFor(async () => {
    let e: TestEsme;
    try {
      e = await connectEsme(port);
    } catch {
      return undefined;
    }
    if ((await e.bind("bind_transceiver", systemId, password)).command_status === 0) return e;
    await e.close();
    return undefined;
  }, timeoutMs, 200);
}
