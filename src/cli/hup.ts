/**
 * SIGHUP from the first line of `didgate serve`: Node's default for SIGHUP ends the process, and
 * loading the daemon's modules and config takes a fraction of a second in which an operator's
 * `systemctl reload` (or a config-management run) would kill it. The entry point calls holdHup()
 * before it loads anything else; a SIGHUP that comes before the daemon is ready to reload is kept
 * and handed over once (onHup), not lost and not fatal. This module imports nothing.
 */
let pending = false;
let handler: (() => void) | undefined;
let held = false;

const onSignal = (): void => {
  if (handler === undefined) pending = true;
  else handler();
};

/** Catch SIGHUP from now on (idempotent). */
export function holdHup(): void {
  if (held) return;
  held = true;
  process.on("SIGHUP", onSignal);
}

/**
 * The daemon's reload from now on; a SIGHUP that came while it had none is passed on at once. The
 * handler should queue the reload itself if the daemon has not finished starting.
 */
export function onHup(fn: () => void): void {
  holdHup();
  handler = fn;
  if (pending) {
    pending = false;
    fn();
  }
}
