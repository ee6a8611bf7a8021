/**
 * A durable part store (RedisPartStore in spool mode, JournalPartStore in direct mode) as the SMPP
 * layer's DurablePartStore (src/smpp/types.ts). One difference in what
 * add() answers: a part re-added to a buffer that is complete but not done (its message was
 * answered with a temporary failure, so the peer retries the final part) is "complete" again, with
 * every part, instead of "duplicate": the retry completes the message again, as with the in-memory
 * reassembler. This holds for whichever part is re-added while the buffer is complete, so a
 * retransmission in the moment between completion and done() delivers the message a second time
 * (delivery of reassembled messages is at least once, see parts.ts).
 */
import type { DurablePartAdd, DurablePartStore } from "../smpp/types.js";
import type { PartStore, SweptBuffer } from "../delivery/parts.js";

export class SmppPartStore implements DurablePartStore {
  constructor(readonly store: PartStore) {}

  async add(key: string, total: number, seq: number, part: string): Promise<DurablePartAdd> {
    const r = await this.store.add(key, total, seq, part);
    if (r.kind !== "duplicate") return r;
    const parts = await this.store.completed(key);
    return parts !== undefined ? { kind: "complete", parts } : r;
  }

  done(key: string): Promise<void> {
    return this.store.done(key);
  }

  sweep(limit?: number): Promise<SweptBuffer[]> {
    return this.store.sweep(limit);
  }
}
