export { systemClock, type Clock } from "../util/clock.js";
