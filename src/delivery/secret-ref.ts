/**
 * Webhook secrets are not stored at rest: a job written to the Redis spool (and so to the
 * dead-letter stream) carries a reference to the route whose secret signs it, and the secret is
 * looked up in the current route table when the job is delivered. A Redis dump then holds no
 * signing key. A secret changed since the message was accepted signs with the new one (the
 * receiver follows the route's secret, not the spool's history); a route that lost its secret
 * falls back to webhooks.secret, as a route without one does.
 */
import { createHash } from "node:crypto";
import type { DeliveryTarget, SecretRef } from "./types.js";

/** Looks a number's current webhook secret up (undefined: the route has none, or is gone). */
export type SecretLookup = (number: string) => string | undefined;

export function secretVersion(secret: string): string {
  return createHash("sha256").update(secret).digest("hex").slice(0, 16);
}

/** The target to keep at rest: the secret replaced by its reference. */
export function targetAtRest(t: DeliveryTarget): DeliveryTarget {
  if (t.webhookSecret === undefined) return t;
  const { webhookSecret: _secret, ...rest } = t;
  return rest;
}

/** The secret to sign a job with: the one in memory, else the one its reference names now. */
export function resolveSecret(t: DeliveryTarget, lookup: SecretLookup | undefined): { secret: string | undefined; rotated: boolean } {
  if (t.webhookSecret !== undefined || t.secretRef === undefined || lookup === undefined) return { secret: t.webhookSecret, rotated: false };
  const ref: SecretRef = t.secretRef;
  const secret = typeof ref.number === "string" ? lookup(ref.number) : undefined;
  return { secret, rotated: secret === undefined || secretVersion(secret) !== ref.version };
}

/** A target's secret and its reference, as the edge builds it. */
export function withSecret(t: DeliveryTarget, number: string, secret: string | undefined): DeliveryTarget {
  if (secret === undefined) return t;
  t.webhookSecret = secret;
  t.secretRef = { number, version: secretVersion(secret) };
  return t;
}
