/** Public API of the delivery layer (what src/app.ts, src/edge/sms.ts and src/cli.ts use). */
export { Delivery, type DeliveryOptions, type DeliveryRedisOptions, type DeliveryWebhookOptions } from "./delivery.js";
export type { SmppForwarder } from "./smpp-forward.js";
export { listDlq, replayDlq, dropDlq, type DlqEntry } from "./dlq.js";
export { signWebhook, verifyWebhook, secretKey } from "./webhook.js";
export { spoolConnect, type RedisConnect } from "./redis.js";
export type { AcceptOutcome, AttemptResult, DeliveryJob, DeliveryTarget, MessageReceivedBody, MessageReceiptBody, WebhookBody } from "./types.js";
export { RedisPartStore, type PartAddResult, type PartStoreOptions, type SweptBuffer } from "./parts.js";
