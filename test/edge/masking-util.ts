/** Helpers shared by the masked-call tests: what a sipp party received, call records, Redis routes. */
import { existsSync, readFileSync } from "node:fs";
import { routesCommand } from "../../src/cli/routes.js";
import type { Party } from "./sip-util.js";

/** Everything a party received, as text (requests and responses). */
export function receivedText(p: Party): string {
  return p
    .trace()
    .filter((t) => t.dir === "received")
    .map((t) => t.msg.toString())
    .join("\n");
}

/** The records of a records.jsonl file written so far. */
export function jsonlRecords(file: string): Array<Record<string, unknown>> {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** `didgate routes …` against a Redis (prefix didgate:); throws with the command's error output. */
export function redisRoutes(url: string): (...argv: string[]) => Promise<void> {
  const settings = { url, prefix: "didgate:", stream_maxlen: 100_000 };
  return async (...argv) => {
    let err = "";
    const code = await routesCommand(argv, settings, () => undefined, (s) => (err += s));
    if (code !== 0) throw new Error(`routes ${argv.join(" ")}: ${err}`);
  };
}
