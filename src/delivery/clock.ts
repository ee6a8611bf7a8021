/** Time source for delivery timers and schedules: the shared clock of src/util. */
import { systemClock, type Clock } from "../util/clock.js";

export type DeliveryClock = Pick<Clock, "now" | "setTimeout" | "clearTimeout">;

/** The real clock; its timers are unref'd so they never keep the process alive on their own. */
export const realClock: DeliveryClock = systemClock;
