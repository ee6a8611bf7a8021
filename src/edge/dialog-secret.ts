/**
 * The secret that signs didgate's Record-Route values (src/sip/rr.ts). Every edge that may see a
 * request of the same dialog (edges behind one address, or sharing Redis) must use the same one:
 * `sip.dialog_secret` in the config (or DIDGATE_SIP_DIALOG_SECRET). Without it, a random secret is
 * generated once and kept in the state directory, so a restarted edge still routes the BYE of a
 * call it set up before. `sip.dialog_secret_previous` keeps tokens of the old secret valid while
 * the new one is rolled out.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";

export const SECRET_FILE = "sip-dialog-secret";

export interface DialogSecretOptions {
  secret: string | undefined;
  previous: readonly string[];
  /** Resolved state directory. */
  stateDir: string;
  logger: Logger;
  /** Other edges share this one's routes (Redis): they must share the secret too. */
  shared: boolean;
}

/** Secrets in order: the one that signs first, then those still accepted. */
export function loadDialogSecrets(o: DialogSecretOptions): string[] {
  if (o.secret !== undefined) return [o.secret, ...o.previous];
  const path = join(o.stateDir, SECRET_FILE);
  let secret: string | undefined;
  try {
    secret = readFileSync(path, "utf8").trim();
  } catch {
    secret = undefined;
  }
  if (secret === undefined || secret.length < 32) {
    secret = randomBytes(32).toString("hex");
    mkdirSync(o.stateDir, { recursive: true });
    try {
      writeFileSync(path, secret + "\n", { mode: 0o600, flag: "wx" });
      o.logger.info({ path }, "sip: generated the dialog secret (Record-Route signing) in the state directory");
    } catch (err) {
      // another process created it first (EEXIST): use that one
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      secret = readFileSync(path, "utf8").trim();
    }
  }
  if (o.shared) {
    o.logger.warn(
      { path },
      "sip.dialog_secret is not set: this edge signs Record-Route with a secret of its own; edges sharing routes must set the same sip.dialog_secret or in-dialog requests that reach another edge get 403",
    );
  }
  return [secret, ...o.previous];
}
