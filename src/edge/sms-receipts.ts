/**
 * Delivery receipts didgate sends back to a peer that asked for one (registered_delivery on its
 * submit_sm or deliver_sm): a deliver_sm with esm_class 0x04, the text of SMPP 3.4 Appendix B
 * (`id:… sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000
 * text:…`) with `id:` the message id didgate returned, and the receipted_message_id and
 * message_state TLVs. One receipt per id (each part of a long message has its own id).
 */
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import type { ReceiptRequest } from "../delivery/types.js";
import type { InboundSms, OutboundReceipt, SendResult } from "../smpp/types.js";
import { MemoryPendingReceipts, type PendingReceipts } from "./receipt-queue.js";

/** message_state (SMPP 3.4 5.2.28) of a receipt stat. */
const STATE: Record<string, number> = { DELIVRD: 2, EXPIRED: 3, DELETED: 4, UNDELIV: 5, ACCEPTD: 6, UNKNOWN: 7, REJECTD: 8 };

/** The receipt stats didgate sends; anything else a carrier reports is relayed as UNKNOWN. */
export type ReceiptStat = "DELIVRD" | "EXPIRED" | "DELETED" | "UNDELIV" | "ACCEPTD" | "UNKNOWN" | "REJECTD";

export function normaliseStat(stat: string): ReceiptStat {
  const s = stat.toUpperCase();
  if (s === "DELIVERED") return "DELIVRD";
  if (s === "UNDELIVERABLE") return "UNDELIV";
  if (s === "REJECTED") return "REJECTD";
  return (s in STATE ? s : "UNKNOWN") as ReceiptStat;
}

/** YYMMDDhhmm in UTC. */
export function receiptDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) + p(d.getUTCHours()) + p(d.getUTCMinutes());
}

/** Printable ASCII only (the receipt text goes out as data_coding 0). */
function ascii(s: string, max: number): string {
  let out = "";
  for (const ch of s) {
    if (out.length >= max) break;
    const c = ch.codePointAt(0)!;
    out += c >= 0x20 && c < 0x7f ? ch : "?";
  }
  return out;
}

/** What a submitter that asked for a receipt (registered_delivery) gets it for: the message as it sent it. */
export function receiptRequestOf(msg: InboundSms): ReceiptRequest {
  return {
    peer: msg.peer,
    ids: msg.part_ids ?? [msg.message_id],
    when: msg.registered_delivery & 0x03,
    source: msg.source,
    destination: msg.destination,
    submitted_at: msg.received_at.getTime(),
    text: (msg.text ?? "").slice(0, 20),
  };
}

/** Does registered_delivery (bits 0-1) ask for a receipt of this outcome? */
export function wanted(when: number, delivered: boolean): boolean {
  switch (when & 0x03) {
    case 1:
      return true;
    case 2:
      return !delivered;
    case 3:
      return delivered; // SMPP 5.0: success only
    default:
      return false;
  }
}

export function buildReceipts(req: ReceiptRequest, stat: ReceiptStat, err: string, doneAt: number): OutboundReceipt[] {
  const delivered = stat === "DELIVRD";
  const e = /^[0-9]{1,3}$/.test(err) ? err.padStart(3, "0") : "000";
  return req.ids.map((id) => ({
    source: req.destination,
    destination: req.source,
    message_id: id,
    message_state: STATE[stat] ?? 7,
    text:
      `id:${id} sub:001 dlvrd:${delivered ? "001" : "000"} submit date:${receiptDate(req.submitted_at)} ` +
      `done date:${receiptDate(doneAt)} stat:${stat} err:${e} text:${ascii(req.text, 20)}`,
  }));
}

export interface ReceiptSenderOptions {
  send(peer: string, r: OutboundReceipt): Promise<SendResult>;
  /** Accounts with a session on this edge that can take deliver_sm now. */
  readyPeers(): Iterable<string>;
  /** Where receipts wait while their submitter is not bound here (default: in memory). */
  pending?: PendingReceipts;
  logger: Logger;
  registry: Registry;
  now: () => number;
  /** How often waiting receipts are looked for (ms, default 1000). */
  pumpMs?: number;
  /** Waiting receipts older than this are dropped (ms, default 72 h). */
  maxAgeMs?: number;
}

type Outcome = "sent" | "queued" | "refused" | "expired" | "error";

export class ReceiptSender {
  private readonly sent: Counter<"stat" | "outcome">;
  private readonly pending: PendingReceipts;
  private timer: NodeJS.Timeout | undefined;
  private pumping = false;

  constructor(private readonly o: ReceiptSenderOptions) {
    this.pending = o.pending ?? new MemoryPendingReceipts();
    this.sent = new Counter({
      name: "didgate_sms_receipts_sent_total",
      help: "Delivery receipts to submitters by stat and outcome (sent, queued: waiting for the submitter's bind, refused, expired, error)",
      labelNames: ["stat", "outcome"],
      registers: [o.registry],
    });
  }

  /** Start looking for waiting receipts of accounts bound here. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.pump(), this.o.pumpMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Send the receipts of `req` with this outcome, if the submitter asked for it. Never throws. */
  async send(req: ReceiptRequest, stat: ReceiptStat, err = "000"): Promise<void> {
    if (!wanted(req.when, stat === "DELIVRD")) return;
    for (const r of buildReceipts(req, stat, err, this.o.now())) {
      let outcome = await this.attempt(req.peer, r);
      if (outcome === "queued") {
        try {
          await this.pending.push(req.peer, { at: this.o.now(), r });
        } catch (e) {
          this.o.logger.warn({ peer: req.peer, err: (e as Error)?.message }, "receipt queue failed: receipt dropped");
          outcome = "error";
        }
      }
      this.count(req.peer, r, outcome);
    }
  }

  private statOf(r: OutboundReceipt): string {
    const m = /stat:([A-Z]+)/.exec(r.text);
    return m !== null && m[1]! in STATE ? m[1]! : "UNKNOWN";
  }

  private count(peer: string, r: OutboundReceipt, outcome: Outcome): void {
    const stat = this.statOf(r);
    this.sent.inc({ stat, outcome });
    this.o.logger[outcome === "sent" || outcome === "queued" ? "info" : "warn"]({ peer, message_id: r.message_id, stat, result: outcome }, "sms receipt to submitter");
  }

  /** One try now: sent, queued (no session here, or a temporary failure), refused. */
  private async attempt(peer: string, r: OutboundReceipt): Promise<Outcome> {
    try {
      const res = await this.o.send(peer, r);
      if (res.outcome === "ok") return "sent";
      return res.outcome === "temporary" ? "queued" : "refused";
    } catch {
      return "queued";
    }
  }

  /** Send the waiting receipts of every account bound here. */
  async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const maxAge = this.o.maxAgeMs ?? 72 * 3600_000;
      for (const peer of [...this.o.readyPeers()]) {
        for (let round = 0; round < 10; round++) {
          const list = await this.pending.take(peer, 100);
          if (list.length === 0) break;
          let i = 0;
          for (; i < list.length; i++) {
            const w = list[i]!;
            if (this.o.now() - w.at > maxAge) {
              this.count(peer, w.r, "expired");
              continue;
            }
            const outcome = await this.attempt(peer, w.r);
            if (outcome === "queued") break;
            this.count(peer, w.r, outcome);
          }
          if (i < list.length) {
            await this.pending.putBack(peer, list.slice(i));
            break;
          }
        }
      }
    } catch (e) {
      this.o.logger.warn({ err: (e as Error)?.message }, "receipt queue pump failed");
    } finally {
      this.pumping = false;
    }
  }
}
