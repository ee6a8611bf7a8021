/**
 * The rules a pool change must pass, shared by the pools API and `didgate pools set` so that a
 * pool written either way obeys the same limits (the edges trust what is in Redis).
 */
import type { PoolInfo } from "./sessions.js";

/** Most numbers in one pool (API and CLI). */
export const MAX_POOL_NUMBERS = 100_000;

export const POOL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const E164 = /^\+[1-9]\d{1,14}$/;

export interface PoolRefusal {
  status: 409 | 422;
  code: "invalid_name" | "pool_in_config" | "too_many_numbers" | "invalid_number" | "name_taken" | "too_many_pools" | "number_in_other_pool";
  message: string;
}

export interface PoolChange {
  name: string;
  tenant: string;
  /** Deduplicated. */
  numbers: readonly string[];
  /** The pools the store knows now (refreshed). */
  pools: readonly PoolInfo[];
  configPools: ReadonlySet<string>;
  maxPools: number;
  maxNumbers: number;
  /** Whether the caller may see a pool of this tenant (a tenant token sees its own only). */
  visible?: (tenant: string) => boolean;
}

/** Input errors of a create-or-replace, before any store is read. */
export function checkPoolInput(c: Pick<PoolChange, "name" | "numbers" | "configPools" | "maxNumbers">): PoolRefusal | undefined {
  if (!POOL_NAME.test(c.name)) return { status: 422, code: "invalid_name", message: "a pool name is 1-64 letters, digits, '_', '.', '-'" };
  if (c.configPools.has(c.name)) return { status: 409, code: "pool_in_config", message: `pool ${c.name} is defined in the config file (masking.pools): change it there` };
  if (c.numbers.length > c.maxNumbers) return { status: 422, code: "too_many_numbers", message: `a pool has at most ${c.maxNumbers} numbers` };
  const bad = c.numbers.find((n) => !E164.test(n));
  if (bad !== undefined) return { status: 422, code: "invalid_number", message: `numbers: ${JSON.stringify(bad.slice(0, 32))} is not an E.164 number like "+15125550100"` };
  return undefined;
}

/** Why a create-or-replace is refused given the pools there are (refreshed), or undefined when it may be written. */
export function checkPoolAgainst(c: PoolChange): PoolRefusal | undefined {
  const visible = c.visible ?? (() => true);
  const old = c.pools.find((p) => p.name === c.name);
  if (old !== undefined && !visible(old.tenant)) return { status: 409, code: "name_taken", message: `pool name ${c.name} is taken` };
  if (old !== undefined && old.tenant !== c.tenant) return { status: 409, code: "name_taken", message: `pool ${c.name} belongs to tenant ${JSON.stringify(old.tenant)}` };
  if (old === undefined && c.pools.length >= c.maxPools) return { status: 409, code: "too_many_pools", message: `at most ${c.maxPools} pools (masking.max_pools)` };
  // A number serves one pool: "who is calling the proxy" must name one tenant.
  for (const other of c.pools) {
    if (other.name === c.name) continue;
    const set = new Set(other.numbers);
    const clash = c.numbers.find((n) => set.has(n));
    if (clash !== undefined) return { status: 409, code: "number_in_other_pool", message: `${clash} is already a number of ${visible(other.tenant) ? `pool ${other.name}` : "another pool"}` };
  }
  return undefined;
}
