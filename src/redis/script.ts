/**
 * A Lua script run by its SHA1 (EVALSHA), loaded with EVAL the first time a server answers
 * NOSCRIPT (after a restart or failover, or on each Cluster master the first time).
 */
import { createHash } from "node:crypto";
import type { RedisClient } from "./client.js";
import { errMessage } from "../util/errors.js";

export class Script {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash("sha1").update(source).digest("hex");
  }

  async run(client: RedisClient, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!String(errMessage(err)).startsWith("NOSCRIPT")) throw err;
      return await client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}
