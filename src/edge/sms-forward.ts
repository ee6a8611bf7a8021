/**
 * SMPP forward: delivery's SmppForwarder on top of the SMPP service. A route's `sms.smpp` names an app
 * ESME bound to didgate (deliver_sm, round robin across its binds) or an outbound bind (submit_sm).
 * One attempt per call; delivery owns retries and the max age.
 */
import type { SmppForwarder } from "../delivery/smpp-forward.js";
import type { AttemptResult, DeliveryJob } from "../delivery/types.js";
import type { SmppService } from "../smpp/service.js";
import type { OutboundSms, SmsAddress } from "../smpp/types.js";
import type { ReceiptCorrelator, SentMessage } from "./receipts.js";

/** E.164 → international TON/NPI; anything else (an alphanumeric sender) → TON 5. */
export function toSmppAddress(a: string): SmsAddress {
  if (a.startsWith("+")) return { addr: a.slice(1), ton: 1, npi: 1 };
  for (let i = 0; i < a.length; i++) {
    const c = a.charCodeAt(i);
    if (c < 48 || c > 57) return { addr: a, ton: 5, npi: 0 };
  }
  return { addr: a, ton: 0, npi: 1 };
}

/** A 16-bit concatenation reference derived from the job id (FNV-1a). */
export function referenceOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h ^ (h >>> 16)) & 0xffff;
}

export class SmppServiceForwarder implements SmppForwarder {
  constructor(
    private readonly smpp: () => SmppService | undefined,
    private readonly receipts?: ReceiptCorrelator,
    /** Sends an app's outbound messages (src/edge/sms-outbound.ts). */
    private readonly outbound?: () => { forward(job: DeliveryJob, signal: AbortSignal): Promise<AttemptResult> } | undefined,
  ) {}

  async forward(job: DeliveryJob, signal: AbortSignal): Promise<AttemptResult> {
    const peer = job.target.smpp;
    const smpp = this.smpp();
    if (peer === undefined) return { kind: "dead", reason: "no smpp target" };
    const body = job.body;
    if (body.type === "message.outbound") {
      const o = this.outbound?.();
      return o === undefined ? { kind: "retry", reason: "outbound SMS is not running" } : o.forward(job, signal);
    }
    // Delivery starts before SMPP: a spooled message re-read at start waits for it.
    if (smpp === undefined) return { kind: "retry", reason: "SMPP is not running yet" };
    if (body.type !== "message.received") return { kind: "dead", reason: "receipts are delivered to webhooks only" };
    // The same concatenation reference on every retry of this job (any edge): a receiver that
    // got some parts of a failed attempt puts the retried parts with them instead of starting over.
    const msg: OutboundSms = { source: toSmppAddress(body.from), destination: toSmppAddress(body.to), reference: referenceOf(job.id) };
    if (body.binary !== undefined) {
      msg.binary = Buffer.from(body.binary, "base64");
      if (body.smpp.data_coding !== undefined) msg.data_coding = body.smpp.data_coding;
    } else msg.text = body.text ?? "";
    const toBind = smpp.clients.has(peer);
    // The submitter asked for a receipt: ask the carrier for one, to relay it.
    if (job.receipt !== undefined && toBind) msg.registered_delivery = 1;
    if (signal.aborted) return { kind: "retry", reason: "aborted" };
    // A receipt may come in the same read as the submit_sm_resp (an SMSC that delivers at once) or
    // overtake it: while the submit is out, a receipt through this bind that names an unknown id
    // waits for it (ReceiptCorrelator.findOrWait) instead of being routed by number.
    const track = this.receipts !== undefined && toBind ? this.receipts : undefined;
    track?.submitStart(peer);
    let r: Awaited<ReturnType<SmppService["send"]>>;
    try {
      r = await smpp.send(peer, msg);
      // Submitted through an outbound bind: the SMSC's receipt will name its message id (one per part).
      if (r.outcome === "ok" && track !== undefined) {
        const sent: SentMessage = { id: job.id, did: body.to };
        if (job.receipt !== undefined) sent.receipt = job.receipt;
        for (const smscId of r.message_ids) if (smscId) track.remember(peer, smscId, sent);
      }
    } finally {
      track?.submitEnd(peer);
    }
    if (r.outcome === "ok") return { kind: "delivered" };
    const reason = r.error ?? `command_status 0x${(r.status ?? 0).toString(16).padStart(2, "0")}`;
    if (r.outcome === "temporary") return { kind: "retry", reason };
    return { kind: "dead", reason };
  }
}
