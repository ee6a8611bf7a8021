/**
 * The lifecycle of a component the app builds (an edge, a listener, a store): started once,
 * drained (no new work; what is in flight gets until the deadline), then closed. app.ts lists its
 * components in shutdown order and stops them with stopComponents().
 */
import { errMessage } from "./errors.js";

export interface Component {
  /** A fixed word for logs ("sip", "smpp", "delivery"). */
  name: string;
  start?(): Promise<void>;
  /** Refuse new work and let work in flight finish until `deadlineMs` (epoch ms of the app's clock). */
  drain?(deadlineMs: number): Promise<void>;
  close?(): Promise<void>;
}

/** Where stopComponents reports a failure. */
export interface WarnLog {
  warn(fields: object, msg: string): void;
}

/**
 * Drains every component in order (each after the previous one's drain ended), then closes every
 * one in the same order. A drain or close that fails is logged ("<name> drain" / "<name> close")
 * and the rest go on: it never throws.
 */
export async function stopComponents(components: readonly Component[], deadlineMs: number, log: WarnLog): Promise<void> {
  for (const c of components) {
    if (c.drain === undefined) continue;
    try {
      await c.drain(deadlineMs);
    } catch (err) {
      log.warn({ component: c.name, err: errMessage(err) }, `${c.name} drain`);
    }
  }
  for (const c of components) {
    if (c.close === undefined) continue;
    try {
      await c.close();
    } catch (err) {
      log.warn({ component: c.name, err: errMessage(err) }, `${c.name} close`);
    }
  }
}
