/**
 * A durable part store (RedisPartStore in spool mode, JournalPartStore in direct mode) as the SMPP
 * layer's DurablePartStore (src/smpp/types.ts). One difference in what
 * add() answers: a part re-added to a buffer that is complete but not done (its message was
 * answered with a temporary failure, so the peer retries the final part) is "complete" again, with
 * every part, instead of "duplicate": the retry completes the message again, as with the in-memory
 * reassembler. While this edge is still delivering the completed message (between "complete" and
 * done() or release()), a repeated part is a "duplicate": an app that sends a part twice, or
 * retries one before its answer came, does not get the whole message sent twice. (A repeat that
 * reaches another edge in that moment still completes it there: delivery of reassembled messages
 * is at least once, see parts.ts.)
 */
import type { DurablePartAdd, DurablePartStore } from "../smpp/types.js";
import type { PartStore, SweptBuffer } from "../delivery/parts.js";

export class SmppPartStore implements DurablePartStore {
  /** Completed messages this edge is delivering now (bounded by the deliveries in progress). */
  private readonly delivering = new Set<string>();

  constructor(readonly store: PartStore) {}

  async add(key: string, total: number, seq: number, part: string): Promise<DurablePartAdd> {
    const r = await this.store.add(key, total, seq, part);
    if (r.kind === "complete") this.delivering.add(key);
    if (r.kind !== "duplicate" || this.delivering.has(key)) return r;
    const parts = await this.store.completed(key);
    if (parts === undefined || this.delivering.has(key)) return r;
    this.delivering.add(key);
    return { kind: "complete", parts };
  }

  done(key: string): Promise<void> {
    this.delivering.delete(key);
    return this.store.done(key);
  }

  /** The completed message's delivery failed for now: a retried part completes it again. */
  release(key: string): void {
    this.delivering.delete(key);
  }

  sweep(limit?: number): Promise<SweptBuffer[]> {
    return this.store.sweep(limit);
  }
}
