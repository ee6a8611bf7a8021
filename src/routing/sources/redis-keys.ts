/** Key names of the Redis route table under the configured prefix (docs/redis.md). */
export interface RouteKeys {
  /** HASH route key → route JSON. */
  routes: string;
  /** STREAM of changes (op, key, route; op=oset/odel for the outbound table). */
  changes: string;
  /** HASH destination prefix → outbound entry JSON (carriers by destination). */
  outbound: string;
}

export function routeKeys(prefix: string): RouteKeys {
  return { routes: `${prefix}routes`, changes: `${prefix}changes`, outbound: `${prefix}outbound` };
}

/**
 * Longest route entry text (characters): the writer refuses a longer one and an edge skips one
 * found in Redis unparsed (no route comes near it; a multi-megabyte value is a mistake or an attack).
 */
export const MAX_ENTRY_CHARS = 1_048_576;
