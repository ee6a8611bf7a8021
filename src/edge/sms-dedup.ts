/**
 * Stable message ids across an SMSC's retries. A peer that got no answer in time (or a temporary
 * failure) sends the same PDU again; the SMPP layer sees a new PDU with a new message_id. This
 * table recognises the message by what identifies it (peer, command, source and destination with
 * TON/NPI, data_coding, esm_class, the parts, a digest of the user data, and the SMSC's own message
 * id when it gives one) and hands back the id the first copy got, so every delivery of one message
 * carries the same `webhook-id` (docs/delivery.md "Stable ids across SMSC retries").
 *
 * A copy seen again within `windowMs` of the previous copy is the same message. The trade-off: two
 * identical texts from one sender to one number within the window are one message to the receiver.
 * The table is an LRU of at most `max` entries (about 150 bytes each), so memory is bounded; an
 * entry pushed out early only costs a new id for a late retry.
 */
import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { InboundSms } from "../smpp/types.js";

export interface DedupOptions {
  /** 0 disables: every PDU gets a new id. */
  windowMs: number;
  max: number;
  now: () => number;
}

interface Entry {
  id: string;
  lastSeen: number;
  /** A delivery of this message was accepted (delivered in direct mode, spooled in spool mode). */
  accepted: boolean;
}

export interface DedupResult {
  id: string;
  /** Seen within the window before. */
  duplicate: boolean;
  /** An earlier copy was accepted: this one need not be delivered again. */
  accepted: boolean;
  /** Tell the table the outcome of this copy's delivery. */
  settle(accepted: boolean): void;
}

const NUL = "\u0000";

/** A digest of what identifies one message from a peer (not its per-PDU message_id). */
export function messageKey(m: InboundSms): string {
  const h = createHash("sha256");
  h.update(
    [
      m.peer_kind,
      m.peer,
      m.command,
      m.source.addr,
      m.source.ton,
      m.source.npi,
      m.destination.addr,
      m.destination.ton,
      m.destination.npi,
      m.data_coding,
      m.esm_class,
      m.total_parts,
      m.parts,
      m.partial ? 1 : 0,
      m.smsc_message_id ?? "",
      m.text !== undefined ? "t" : "b",
    ].join(NUL) + NUL,
  );
  if (m.text !== undefined) h.update(m.text, "utf8");
  else if (m.binary !== undefined) h.update(m.binary);
  return h.digest("base64url").slice(0, 22);
}

export class MessageIds {
  private readonly seen: LRUCache<string, Entry> | null;

  constructor(private readonly o: DedupOptions) {
    this.seen = o.windowMs > 0 ? new LRUCache<string, Entry>({ max: Math.max(1, o.max) }) : null;
  }

  get size(): number {
    return this.seen?.size ?? 0;
  }

  /** The id for this message: the earlier copy's when seen within the window, else a new one. */
  idFor(m: InboundSms): DedupResult {
    const seen = this.seen;
    if (seen === null) return { id: `msg_${m.message_id}`, duplicate: false, accepted: false, settle: () => {} };
    const now = this.o.now();
    const key = messageKey(m);
    let e = seen.get(key);
    let duplicate = true;
    if (e === undefined || now - e.lastSeen > this.o.windowMs) {
      e = { id: `msg_${m.message_id}`, lastSeen: now, accepted: false };
      seen.set(key, e);
      duplicate = false;
    } else {
      e.lastSeen = now;
    }
    const entry = e;
    return {
      id: entry.id,
      duplicate,
      accepted: entry.accepted,
      settle: (accepted) => {
        if (accepted) entry.accepted = true;
      },
    };
  }
}
