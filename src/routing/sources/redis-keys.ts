/** Key names of the Redis route table under the configured prefix (docs/redis.md). */
export interface RouteKeys {
  /** HASH route key → route JSON. */
  routes: string;
  /** STREAM of changes (op, key, route). */
  changes: string;
}

export function routeKeys(prefix: string): RouteKeys {
  return { routes: `${prefix}routes`, changes: `${prefix}changes` };
}
