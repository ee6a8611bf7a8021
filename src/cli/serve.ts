/** `didgate serve`: run the daemon until SIGTERM/SIGINT; SIGHUP re-reads the config. */
import cluster from "node:cluster";
import { Didgate } from "../app.js";
import { workerCount } from "../workers/config.js";
import { runPrimary, runWorker, workerEnv } from "../workers/cluster.js";
import { loadConfig } from "../config/load.js";
import { errMessage } from "../util/errors.js";
import { CONFIG_OPTION, parseCommand, str, type Io } from "./args.js";
import { onHup } from "./hup.js";
import { SERVE_USAGE } from "./usage.js";


/** Returns -1: the process keeps running (the signal handlers exit it). */
export async function serveCommand(argv: string[], io: Io): Promise<number> {
  const p = parseCommand(argv, CONFIG_OPTION, SERVE_USAGE);
  if (p === "help") {
    io.out(SERVE_USAGE);
    return 0;
  }
  // a worker's role, count and config file are the primary's, whatever the file says now
  if (workerEnv() !== undefined) {
    await runWorker();
    return -1;
  }
  const loaded = loadConfig(str(p, "config"));
  const workers = workerCount(loaded.config);
  if (workers > 1 && cluster.isPrimary) {
    await runPrimary(loaded, workers);
    return -1;
  }
  const app = new Didgate(loaded);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.logger.info({ signal }, "signal received, draining");
    app.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        app.logger.error({ err: errMessage(err) }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // a SIGHUP before the daemon has started is applied once it has (the file may have changed
  // since it was read)
  let started = false;
  let reloadQueued = false;
  const reload = (): void => {
    if (!started) {
      reloadQueued = true;
      return;
    }
    try {
      app.reload();
    } catch (err) {
      app.logger.error({ err: errMessage(err) }, "config reload failed");
    }
  };
  onHup(reload);
  await app.start();
  started = true;
  if (reloadQueued && !stopping) {
    reloadQueued = false;
    reload();
  }
  return -1;
}
