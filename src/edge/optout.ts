/**
 * SMS opt-out: the standard keywords and who opted out of which number.
 *
 * A message whose whole text (trimmed, any case, trailing punctuation ignored) is a stop word
 * records its sender as opted out of the number it was sent to; a start word removes that; a help
 * word asks for the configured help text. Sending from a number to a recipient that opted out of
 * it is refused (the SMPP and HTTP answers are the caller's). The words are the CTIA / carrier
 * set: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT; START, UNSTOP, YES; HELP, INFO.
 *
 * Storage: with Redis a SET per number, `<prefix>optout:<number>` holding the opted-out senders,
 * shared by every edge; without Redis a bounded in-memory map (one edge).
 */
import type { Cluster, Redis } from "ioredis";
import { FifoCache } from "../util/fifo-cache.js";

export type OptKeyword = "stop" | "start" | "help";

const WORDS: ReadonlyMap<string, OptKeyword> = new Map([
  ["STOP", "stop"],
  ["STOPALL", "stop"],
  ["UNSUBSCRIBE", "stop"],
  ["CANCEL", "stop"],
  ["END", "stop"],
  ["QUIT", "stop"],
  ["START", "start"],
  ["UNSTOP", "start"],
  ["YES", "start"],
  ["HELP", "help"],
  ["INFO", "help"],
]);

/**
 * Whitespace, control characters (a C string's NUL terminator that some SMSCs leave in
 * short_message, CR/LF) and zero-width characters at either end: not part of the word. A STOP
 * followed by a NUL is still a STOP; missing it would leave the sender subscribed.
 */
const EDGE_JUNK = /^[\s\u0000-\u001f\u007f\u200b-\u200d\u2060\ufeff]+|[\s\u0000-\u001f\u007f\u200b-\u200d\u2060\ufeff]+$/g;

/** The opt-out keyword a message text is, if any. */
export function optKeyword(text: string): OptKeyword | null {
  if (text.length > 32) return null;
  const t = text.replace(EDGE_JUNK, "").replace(/[.!?]+$/, "").toUpperCase();
  return WORDS.get(t) ?? null;
}

/** The first word of a text, upper-cased (for route keywords such as JOIN). */
export function firstWord(text: string): string {
  const t = text.slice(0, 256).replace(EDGE_JUNK, "");
  let e = 0;
  while (e < t.length && e < 64 && !/[\s\u0000-\u001f\u007f\u200b-\u200d\u2060\ufeff]/.test(t[e]!)) e++;
  return t.slice(0, e).replace(/[.!?,;:]+$/, "").toUpperCase();
}

export interface OptOutStore {
  /** Record an opt-out; true when the sender was not opted out of the number before. */
  optOut(number: string, sender: string): Promise<boolean>;
  optIn(number: string, sender: string): Promise<void>;
  isOptedOut(number: string, recipient: string): Promise<boolean>;
  /** Redis stores: the set isOptedOut() looks `recipient` up in (for a script that checks it with other writes). */
  redisKey?(number: string): string;
}

export class RedisOptOutStore implements OptOutStore {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
  ) {}
  async optOut(number: string, sender: string): Promise<boolean> {
    return (await this.redis.sadd(`${this.prefix}optout:${number}`, sender)) === 1;
  }
  async optIn(number: string, sender: string): Promise<void> {
    await this.redis.srem(`${this.prefix}optout:${number}`, sender);
  }
  async isOptedOut(number: string, recipient: string): Promise<boolean> {
    return (await this.redis.sismember(this.redisKey(number), recipient)) === 1;
  }
  redisKey(number: string): string {
    return `${this.prefix}optout:${number}`;
  }
}

export class MemoryOptOutStore implements OptOutStore {
  /** Bounded: at the cap the oldest opt-out is forgotten (FifoCache: no walk over deleted entries). */
  private readonly set: FifoCache<string, true>;
  constructor(max = 1_000_000) {
    this.set = new FifoCache(max);
  }
  async optOut(number: string, sender: string): Promise<boolean> {
    const key = number + " " + sender;
    // a repeated STOP (an SMSC's retry) is already recorded: at the cap it must not cost another
    // recipient's opt-out
    if (this.set.has(key)) return false;
    this.set.set(key, true);
    return true;
  }
  async optIn(number: string, sender: string): Promise<void> {
    this.set.delete(number + " " + sender);
  }
  async isOptedOut(number: string, recipient: string): Promise<boolean> {
    return this.set.has(number + " " + recipient);
  }
}
