/**
 * Outbound messages on the API listener: POST /v1/messages sends a text from one of the token's
 * numbers (an admin token: any active number of ours), GET /v1/messages/{id} gives its status
 * history. The policy is the SMPP path's (src/edge/sms-outbound.ts): sender ownership, opt-out,
 * the outbound table's sms binds, the spool or the direct mode. docs/sms.md "HTTP".
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { HttpSubmit, SubmitOutcome } from "../edge/sms-outbound.js";
import type { MessageStatus, MessageStatusStore } from "../edge/sms-status.js";
import { ApiError } from "./errors.js";
import { ERROR_SCHEMA } from "./server.js";
import { errMessage } from "../util/errors.js";

export interface MessagesApiOptions {
  submit(req: HttpSubmit): Promise<{ outcome: SubmitOutcome; parts?: number }>;
  statuses: MessageStatusStore;
  /** spool: 202 means queued in Redis; direct: the carrier accepted it already. */
  mode(): "spool" | "direct";
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ERROR_SCHEMA]));
const E164 = "^\\+[1-9][0-9]{1,14}$";
/** An E.164 number, or a sender name / short code as listed in smpp.accounts[].senders. */
const SENDER = "^(\\+[1-9][0-9]{1,14}|[A-Za-z0-9][A-Za-z0-9 ._&'-]{0,19})$";

const statusSchema = {
  type: "object",
  properties: {
    id: { type: "string" },
    status: { type: "string" },
    tenant: { type: ["string", "null"] },
    from: { type: "string" },
    to: { type: "string" },
    parts: { type: "integer" },
    encoding: { type: "string" },
    created_at: { type: "string" },
    client_ref: { type: "string" },
    history: {
      type: "array",
      items: { type: "object", additionalProperties: true, properties: { status: { type: "string" }, at: { type: "string" } } },
    },
  },
} as const;

export function registerMessagesApi(app: FastifyInstance, o: MessagesApiOptions): void {
  app.post<{ Body: { from: string; to: string; text: string; client_ref?: string; status_webhook?: string; validity_s?: number } }>(
    "/v1/messages",
    {
      schema: {
        summary: "Send an SMS from one of the token's numbers",
        tags: ["messages"],
        body: {
          type: "object",
          required: ["from", "to", "text"],
          additionalProperties: false,
          properties: {
            from: {
              type: "string",
              pattern: SENDER,
              description: "E.164 number of the token's tenant, active or porting out; or an alphanumeric sender or short code listed in the senders of an SMPP app account of the tenant",
            },
            to: { type: "string", pattern: E164, description: "E.164 recipient" },
            text: { type: "string", minLength: 1, maxLength: 1600, description: "GSM 03.38 when it fits, else UCS-2; long text in parts" },
            client_ref: { type: "string", maxLength: 64, description: "Your reference, echoed in GET /v1/messages/{id}" },
            status_webhook: { type: "string", maxLength: 2048, pattern: "^https?://", description: "Each status change is posted here as a signed message.status (webhooks.secret)" },
            validity_s: { type: "integer", minimum: 1, maximum: 604800, description: "Seconds the message may wait and be retried (bounded by webhooks.max_age_s); then it ends expired" },
          },
        },
        response: {
          202: { type: "object", properties: { id: { type: "string" }, status: { type: "string" }, parts: { type: "integer" } } },
          ...errors(400, 401, 403, 404, 409, 422, 429, 503),
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const id = `msg_${randomUUID()}`;
      if (b.status_webhook !== undefined) {
        let u: URL;
        try {
          u = new URL(b.status_webhook);
        } catch {
          throw new ApiError(422, "invalid_webhook", "status_webhook is not a URL");
        }
        if (u.username !== "" || u.password !== "") throw new ApiError(422, "invalid_webhook", "status_webhook must not carry user information");
      }
      const r = await o.submit({ tenant: req.principal.tenant, from: b.from, to: b.to, text: b.text, id, ...(b.client_ref !== undefined ? { client_ref: b.client_ref } : {}), ...(b.status_webhook !== undefined ? { status_webhook: b.status_webhook } : {}), ...(b.validity_s !== undefined ? { validity_s: b.validity_s } : {}) });
      switch (r.outcome) {
        case "accepted":
          void reply.code(202);
          return { id, status: o.mode() === "spool" ? "queued" : "sent", parts: r.parts ?? 1 };
        case "invalid_source":
          if (!b.from.startsWith("+")) throw new ApiError(403, "sender_not_owned", `${b.from} is not a sender listed for ${req.principal.tenant === undefined ? "any app account" : "tenant " + req.principal.tenant}`);
          throw new ApiError(403, "sender_not_owned", `${b.from} is not an active number of ${req.principal.tenant === undefined ? "ours" : "tenant " + req.principal.tenant}`);
        case "opted_out":
          throw new ApiError(409, "recipient_opted_out", `${b.to} opted out of messages from ${b.from}`);
        case "no_route":
          throw new ApiError(404, "no_route", `no outbound SMS route for ${b.to}`);
        case "invalid_number":
          throw new ApiError(422, "invalid_number", `${b.to} is not a number`);
        case "permanent":
          throw new ApiError(422, "message_rejected", "the message was refused (too long, or refused by the carrier)");
        default:
          throw new ApiError(503, "unavailable", "the message could not be queued now; try again", { retryAfterS: 1 });
      }
    },
  );

  app.get<{ Params: { id: string } }>(
    "/v1/messages/:id",
    {
      schema: {
        summary: "Status history of a message sent with POST /v1/messages",
        tags: ["messages"],
        params: { type: "object", properties: { id: { type: "string" } }, required: ["id"] },
        response: { 200: statusSchema, ...errors(401, 404, 429, 503) },
      },
    },
    async (req) => {
      const id = req.params.id;
      if (!/^msg_[A-Za-z0-9_-]{1,64}$/.test(id)) throw new ApiError(404, "not_found", "no such message");
      let s: MessageStatus | null;
      try {
        s = await o.statuses.get(id);
      } catch (err) {
        throw new ApiError(503, "redis_unavailable", `the status store did not answer: ${errMessage(err)}`, { retryAfterS: 1 });
      }
      const t = req.principal.tenant;
      if (s === null || (t !== undefined && s.tenant !== t)) throw new ApiError(404, "not_found", "no such message");
      return s;
    },
  );
}
