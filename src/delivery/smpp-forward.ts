/**
 * The SMPP side of delivery. Delivery calls a forwarder for jobs whose target names an SMPP peer
 * (`sms.smpp`: the system_id of an app ESME bound to didgate, or the name of an outbound bind).
 * The lead implements it on top of src/smpp (round robin across the ESME's binds, window, response
 * timeout). Delivery owns retries and the max age; the forwarder makes one attempt.
 */
import type { AttemptResult, DeliveryJob } from "./types.js";

export interface SmppForwarder {
  /**
   * One attempt to hand `job` to `job.target.smpp`. Resolve (never reject) with:
   * - `{ kind: "delivered" }` when the peer answered ESME_ROK (deliver_sm_resp / submit_sm_resp);
   * - `{ kind: "retry", reason }` when no bind of that peer is up, the window stayed full, the
   *   response timed out, or the peer answered a temporary error (ESME_RTHROTTLED, ESME_RX_T_APPN,
   *   ESME_RMSGQFUL…); `retryAfterMs` may suggest a wait;
   * - `{ kind: "dead", reason }` when the peer is unknown or refused permanently (ESME_RX_R_APPN…).
   * `signal` aborts the attempt (the direct mode's bounded wait, shutdown); on abort resolve with
   * a retry. A rejection is treated as a retry.
   */
  forward(job: DeliveryJob, signal: AbortSignal): Promise<AttemptResult>;
}
