/** One short-lived Redis connection for a CLI command (standalone, Sentinel or Cluster URL). */
import { RedisConnector, type RedisClient } from "../redis/client.js";
import { errMessage } from "../util/errors.js";

export type { RedisClient };

/** The part of `routes.redis` the commands need. */
export interface CliRedisConfig {
  url: string;
  prefix: string;
  /** routes.redis.stream_maxlen (the routes commands' change stream). */
  stream_maxlen?: number;
}

/** Where the commands get their Redis settings: given, or from the config file named by --config. */
export type RedisSettings = CliRedisConfig | undefined | ((configPath: string | undefined) => CliRedisConfig | undefined);

export function resolveSettings(s: RedisSettings, configPath: string | undefined): CliRedisConfig | undefined {
  return typeof s === "function" ? s(configPath) : s;
}

export class CliRedisError extends Error {}

/** Connect or throw CliRedisError with a message that names the endpoint. */
export async function connectCli(url: string, name = "didgate-cli"): Promise<RedisClient> {
  let connector: RedisConnector;
  try {
    connector = RedisConnector.fromUrl(url);
  } catch (e) {
    throw new CliRedisError(`routes.redis.url: ${errMessage(e)}`);
  }
  const client = connector.client({ name, redis: { retryStrategy: () => null, maxRetriesPerRequest: 1, connectTimeout: 5000 } });
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (e) {
    client.disconnect();
    throw new CliRedisError(`cannot connect to Redis at ${connector.describe()}: ${errMessage(e)}`);
  }
  return client;
}

export const NO_REDIS = (what: string) =>
  `routes.redis is not configured: ${what} (set routes.redis.url or DIDGATE_ROUTES_REDIS_URL)\n`;
