/**
 * Interoperability with the reference Standard Webhooks implementation (the `standardwebhooks`
 * package): it verifies what didgate sends, and didgate's verifier and the example receiver
 * (docs/examples/receiver.mjs) accept what it signs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { Webhook } from "standardwebhooks";
import { afterEach, describe, expect, it } from "vitest";
import { signWebhook, verifyWebhook, WebhookSender } from "../../src/delivery/webhook.js";
import { freePort } from "../helpers/redis.js";
import { startReceiver, type Receiver } from "./receiver.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
let rx: Receiver | undefined;
let child: ChildProcess | undefined;
afterEach(async () => {
  await rx?.close();
  rx = undefined;
  child?.kill("SIGKILL");
  child = undefined;
});

describe("Standard Webhooks interop", () => {
  it("the reference implementation verifies a webhook didgate sent", async () => {
    rx = await startReceiver(() => ({ status: 204 }));
    const sender = new WebhookSender({ timeoutMs: 2000, secret: SECRET, allowPrivate: ["127.0.0.0/8"] });
    const body = JSON.stringify({ type: "message.received", id: "msg_interop", text: "héllo ✓" });
    const a = await sender.send(rx.url, "msg_interop", body);
    sender.close();
    expect(a.result.kind).toBe("delivered");
    const got = rx.received[0]!;
    const headers = { "webhook-id": got.id, "webhook-timestamp": got.timestamp, "webhook-signature": got.signature };
    expect(new Webhook(SECRET).verify(got.body, headers)).toEqual(JSON.parse(body));
    // And it refuses a tampered body (so the check above is not vacuous).
    expect(() => new Webhook(SECRET).verify(got.body.replace("héllo", "hello"), headers)).toThrow();
    // Same bytes from both signers for the same input.
    const ts = Number(got.timestamp);
    expect(signWebhook(Buffer.from(SECRET.slice(6), "base64"), got.id, ts, got.body)).toBe(new Webhook(SECRET).sign(got.id, new Date(ts * 1000), got.body));
  });

  it("didgate's verifier and the example receiver accept what the reference implementation signs", async () => {
    const wh = new Webhook(SECRET);
    const id = "msg_ref";
    const now = new Date();
    const body = JSON.stringify({ type: "message.received", id, text: "from the reference signer" });
    const headers = { "webhook-id": id, "webhook-timestamp": String(Math.floor(now.getTime() / 1000)), "webhook-signature": wh.sign(id, now, body) };
    expect(verifyWebhook(SECRET, headers, body)).toBe(true);
    expect(verifyWebhook(SECRET, headers, body + " ")).toBe(false);

    const port = await freePort();
    child = spawn(process.execPath, ["docs/examples/receiver.mjs", String(port)], { env: { PATH: process.env.PATH ?? "", WEBHOOK_SECRET: SECRET }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 15_000;
    while (!out.includes("listening")) {
      if (Date.now() > deadline) throw new Error(`receiver did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const post = (h: Record<string, string>, b: string) => fetch(`http://127.0.0.1:${port}/sms`, { method: "POST", headers: { "content-type": "application/json", ...h }, body: b });
    expect((await post(headers, body)).status).toBe(204);
    expect((await post(headers, body.replace("reference", "forged"))).status).toBe(401);
    const other = new Webhook("whsec_" + Buffer.from("another key of 24 bytes!").toString("base64"));
    expect((await post({ ...headers, "webhook-signature": other.sign(id, now, body) }, body)).status).toBe(401);
    expect(out).toContain("verified");
    expect(out).toContain("BAD SIGNATURE");
  });
});
