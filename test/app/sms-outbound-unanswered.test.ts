/**
 * Outbound SMS whose submit_sm gets no answer in time (smpp.response_timeout_s), real redis-server
 * and an SMSC (npm smpp server) that answers late: the carrier may have the message, so it is held
 * as after a crash (smpp.in_doubt_hold_s) instead of being sent again at once. A carrier receipt
 * whose text start matches marks it sent (sent once, the app gets its receipt); without one it is
 * sent again once, after the hold, flagged possible_duplicate. A submit that never went out (the
 * session closed with it still queued) is not held.
 */
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import YAML from "yaml";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { tempDir, waitFor } from "../helpers/app.js";
import { freePort, startRedis, type TestRedis } from "../helpers/redis.js";
import { startSmsc, type SmppPdu, type TestEsme, type TestSmsc } from "../helpers/smsc.js";
import { bindAppWhenUp, kill9, spawnServe } from "../helpers/serve.js";

let redis: TestRedis;
let client: Redis;
let smsc: TestSmsc;
/** The second bind of the +33 route (after smsc-b). */
let smsc2: TestSmsc;
let smppPort: number;
let adminPort: number;
let child: ChildProcess | undefined;
let esme: TestEsme | undefined;
/** smpp.in_doubt_hold_s and smpp.response_timeout_s of this config. */
const HOLD_S = 5;
const TIMEOUT_S = 1;

const texts = (s: TestSmsc): string[] =>
  s.received.filter((p) => p.command === "submit_sm").map((p: SmppPdu) => String((p.short_message as { message: string }).message));

async function metric(sample: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(sample + " "));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  const w = new RedisRouteWriter(client, { prefix: "didgate:", streamMaxlen: 10_000 });
  await w.set("+15125550100", { tenant: "acme", sms: { webhook: "http://127.0.0.1:9/in" } });
  await w.setOutbound("+44*", { sms: ["smsc-b"] });
  await w.setOutbound("+33*", { sms: ["smsc-b", "smsc-c"] });
  smsc = await startSmsc({ idPrefix: "u" });
  smsc2 = await startSmsc({ idPrefix: "v" });
  smppPort = await freePort();
  adminPort = await freePort();
  const dir = tempDir();
  const cfgPath = join(dir, "didgate.yaml");
  writeFileSync(
    cfgPath,
    YAML.stringify({
      instance_id: "edge-unanswered",
      state_dir: dir,
      log: { level: "info" },
      admin: { listen: `127.0.0.1:${adminPort}` },
      sip: { listen: [] },
      routes: { redis: { url: redis.url, snapshot: "" } },
      smpp: {
        listen: `127.0.0.1:${smppPort}`,
        accounts: [{ system_id: "app-1", password: "pw-a", role: "app", tenant: "acme", country_code: "1" }],
        response_timeout_s: TIMEOUT_S,
        in_doubt_hold_s: HOLD_S,
        binds: [
          { name: "smsc-b", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", tps: 50, long_messages: "udh", reconnect_min_s: 0.2, reconnect_max_s: 1 },
          { name: "smsc-c", host: "127.0.0.1", port: smsc2.port, system_id: "didgate", password: "pw", tps: 50, reconnect_min_s: 0.2, reconnect_max_s: 1 },
        ],
      },
    }),
  );
  child = spawnServe(cfgPath);
  esme = await bindAppWhenUp(smppPort, "app-1", "pw-a");
}, 60_000);

afterAll(async () => {
  await esme?.close();
  if (child) await kill9(child);
  await smsc?.close();
  await smsc2?.close();
  client?.disconnect();
  await redis?.stop();
});

describe("outbound submit_sm without an answer in time", () => {
  it("is held, not sent again at once: the carrier's receipt (its text start) marks it sent, the app gets its receipt, one copy at the SMSC", async () => {
    const text = "unanswered, receipt comes";
    // answered 3 s late (after the 1 s timeout); its receipt comes 2 s after the submit
    smsc.options.respondAfterMs = 3000;
    smsc.options.receiptAfterMs = 2000;
    onTestFinished(() => {
      smsc.options.respondAfterMs = undefined;
      smsc.options.receiptAfterMs = undefined;
    });
    const r = await esme!.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: "447700900100", dest_addr_ton: 1, short_message: text, registered_delivery: 1 });
    expect(r.command_status).toBe(0);
    const appId = String(r.message_id).replace(/\0+$/, "");
    const rc = await waitFor(() => esme!.received.find((x) => x.command === "deliver_sm" && String(x.receipted_message_id).replace(/\0+$/, "") === appId), 20_000);
    expect(String((rc.short_message as { message: string }).message)).toMatch(new RegExp(`^id:${appId} .*stat:DELIVRD`));
    expect(await metric('didgate_sms_outbound_in_doubt_total{outcome="unanswered"}')).toBeGreaterThanOrEqual(1);
    expect(await metric('didgate_sms_outbound_in_doubt_total{outcome="matched"}')).toBeGreaterThanOrEqual(1);
    // past the hold: still the one copy
    await new Promise((res) => setTimeout(res, (HOLD_S + 2) * 1000));
    expect(texts(smsc).filter((t) => t === text)).toHaveLength(1);
  }, 60_000);

  it("without a receipt it is sent again exactly once, after the hold, flagged possible_duplicate", async () => {
    const text = "unanswered, no receipt";
    let copies = 0;
    // only the first copy is answered late
    smsc.options.submitStatusOf = (p) => {
      if (String((p.short_message as { message: string }).message) === text && copies++ === 0) smsc.options.respondAfterMs = 3000;
      else smsc.options.respondAfterMs = undefined;
      return 0;
    };
    onTestFinished(() => {
      smsc.options.respondAfterMs = undefined;
      smsc.options.submitStatusOf = undefined;
    });
    const resentBefore = await metric('didgate_sms_outbound_in_doubt_total{outcome="resent"}');
    const t0 = Date.now();
    const r = await esme!.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: "447700900200", dest_addr_ton: 1, short_message: text });
    expect(r.command_status).toBe(0);
    const id = `msg_${String(r.message_id).replace(/\0+$/, "")}`;
    await waitFor(() => texts(smsc).filter((t) => t === text).length >= 2, (HOLD_S + 20) * 1000, 100);
    // not before the hold ended (it counts from the timeout)
    expect(Date.now() - t0).toBeGreaterThanOrEqual((TIMEOUT_S + HOLD_S) * 1000 * 0.9);
    const h = await waitFor(async () => {
      const l = (await client.lrange(`didgate:msg:${id}:h`, 0, -1)).map((x) => JSON.parse(x) as { status: string; possible_duplicate?: boolean });
      return l.some((e) => e.status === "sent") ? l : undefined;
    }, 10_000);
    expect(h.find((e) => e.status === "sent")).toMatchObject({ possible_duplicate: true });
    expect(await metric('didgate_sms_outbound_in_doubt_total{outcome="resent"}')).toBeGreaterThan(resentBefore);
    await new Promise((res) => setTimeout(res, 2000));
    expect(texts(smsc).filter((t) => t === text)).toHaveLength(2);
  }, 60_000);

  it("is not failed over to the route's next bind while in doubt: the receipt from the first bind marks it sent, no copy on the second", async () => {
    const text = "unanswered, two binds";
    smsc.options.respondAfterMs = 3000;
    smsc.options.receiptAfterMs = 2000;
    onTestFinished(() => {
      smsc.options.respondAfterMs = undefined;
      smsc.options.receiptAfterMs = undefined;
    });
    // the second bind is up: a failover could use it
    await waitFor(() => smsc2.binds.length > 0, 20_000);
    const r = await esme!.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: "33612345678", dest_addr_ton: 1, short_message: text, registered_delivery: 1 });
    expect(r.command_status).toBe(0);
    const appId = String(r.message_id).replace(/\0+$/, "");
    const rc = await waitFor(() => esme!.received.find((x) => x.command === "deliver_sm" && String(x.receipted_message_id).replace(/\0+$/, "") === appId), 20_000);
    expect(String((rc.short_message as { message: string }).message)).toMatch(new RegExp(`^id:${appId} .*stat:DELIVRD`));
    await new Promise((res) => setTimeout(res, (HOLD_S + 2) * 1000));
    expect(texts(smsc).filter((t) => t === text)).toHaveLength(1);
    expect(texts(smsc2).filter((t) => t === text)).toHaveLength(0);
  }, 60_000);

  it("a multi-part message whose later part is not answered is sent again, not marked sent by the receipt of its first part", async () => {
    const head = "multi part, 2nd unanswered ";
    const tail = "y".repeat(200);
    let late = 0;
    // the first part is answered at once; the first copy of the second part 3 s late (after the 1 s timeout)
    smsc.options.submitStatusOf = (p) => {
      const t = String((p.short_message as { message: string }).message);
      smsc.options.respondAfterMs = t.startsWith("yyyy") && late++ === 0 ? 3000 : undefined;
      return 0;
    };
    // every part's receipt 2 s after its submit: the first part's (its text start is the message's) after the timeout
    smsc.options.receiptAfterMs = 2000;
    onTestFinished(() => {
      smsc.options.respondAfterMs = undefined;
      smsc.options.receiptAfterMs = undefined;
      smsc.options.submitStatusOf = undefined;
    });
    const r = await esme!.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: "447700900300", dest_addr_ton: 1, message_payload: head + tail, registered_delivery: 1 });
    expect(r.command_status).toBe(0);
    const firsts = (): number => texts(smsc).filter((t) => t.startsWith(head)).length;
    await waitFor(() => firsts() >= 1, 10_000, 100);
    // the second part reached the carrier only as far as the timeout tells: the message goes again,
    // both parts (the second one a bind's tps interval after the first)
    // (waitFor throws when that does not happen within the hold and a margin)
    await waitFor(() => firsts() >= 2 && late >= 2, (HOLD_S + 6) * 1000, 100);
  }, 60_000);
});
