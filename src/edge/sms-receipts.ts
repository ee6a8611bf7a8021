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
import type { OutboundReceipt, SendResult } from "../smpp/types.js";

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
  logger: Logger;
  registry: Registry;
  now: () => number;
}

export class ReceiptSender {
  private readonly sent: Counter<"stat" | "outcome">;

  constructor(private readonly o: ReceiptSenderOptions) {
    this.sent = new Counter({
      name: "didgate_sms_receipts_sent_total",
      help: "Delivery receipts didgate sent to submitters, by stat and outcome (sent, not_bound, refused, error)",
      labelNames: ["stat", "outcome"],
      registers: [o.registry],
    });
  }

  /** Send the receipts of `req` with this outcome, if the submitter asked for it. Never throws. */
  async send(req: ReceiptRequest, stat: ReceiptStat, err = "000"): Promise<void> {
    if (!wanted(req.when, stat === "DELIVRD")) return;
    for (const r of buildReceipts(req, stat, err, this.o.now())) {
      let outcome: string;
      try {
        const res = await this.o.send(req.peer, r);
        outcome = res.outcome === "ok" ? "sent" : res.error === "not_bound" ? "not_bound" : res.status !== undefined ? "refused" : "error";
      } catch {
        outcome = "error";
      }
      this.sent.inc({ stat, outcome });
      this.o.logger[outcome === "sent" ? "info" : "warn"]({ peer: req.peer, message_id: r.message_id, stat, result: outcome }, "sms receipt to submitter");
    }
  }
}
