/**
 * query_sm, cancel_sm and replace_sm from an app (npm smpp ESME) about messages it submitted, in
 * spool mode (real redis-server): query follows the message from ENROUTE to DELIVERED after the
 * SMSC's receipt; a message queued for a bind that is down is cancelled (it never reaches the SMSC
 * once that bind comes up) or has its text replaced (the SMSC gets the new text); once sent, cancel
 * answers ESME_RCANCELFAIL and replace ESME_RREPLACEFAIL; another account's message id gets the
 * fail status. cancel_sm with an empty message_id cancels the queued messages from one address to
 * another. schedule_delivery_time and validity_period, on submit_sm and replace_sm: a scheduled
 * message reaches the SMSC at its time, not before; one whose validity ends while it waits ends
 * EXPIRED (query_sm, the app's receipt) and never reaches an SMSC. didgate runs as a child process
 * from dist/ (npm run build first).
 */
import { execFile, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import YAML from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { tempDir, waitFor } from "../helpers/app.js";
import { freePort, startRedis, type TestRedis } from "../helpers/redis.js";
import { startSmsc, type SmppPdu, type TestEsme, type TestSmsc } from "../helpers/smsc.js";
import { bindAppWhenUp, kill9, spawnServe } from "../helpers/serve.js";

const ROOT = join(import.meta.dirname, "..", "..");

let redis: TestRedis;
let client: Redis;
let smsc: TestSmsc;
let late: TestSmsc | undefined;
let latePort: number;
let xsmsc: TestSmsc | undefined;
let xPort: number;
let smppPort: number;
let cfgPath: string;
let child: ChildProcess | undefined;
let app1: TestEsme;
let app2: TestEsme;

const cstr = (v: unknown): string => String(v ?? "").replace(/\0+$/, "");
const texts = (s: TestSmsc | undefined): string[] =>
  (s?.received ?? []).filter((p) => p.command === "submit_sm").map((p: SmppPdu) => String((p.short_message as { message: string | Buffer }).message));

const bindApp = (systemId: string, password: string): Promise<TestEsme> => bindAppWhenUp(smppPort, systemId, password);

async function submit(e: TestEsme, to: string, text: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await e.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: to, dest_addr_ton: 1, short_message: text, ...extra });
  expect(r.command_status).toBe(0);
  return cstr(r.message_id);
}

const query = (e: TestEsme, id: string): Promise<SmppPdu> => e.send("query_sm", { message_id: id, source_addr_ton: 1, source_addr: "15125550100" });
const cancel = (e: TestEsme, id: string): Promise<SmppPdu> => e.send("cancel_sm", { message_id: id, source_addr_ton: 1, source_addr: "15125550100" });
const replace = (e: TestEsme, id: string, text: string): Promise<SmppPdu> =>
  e.send("replace_sm", { message_id: id, source_addr_ton: 1, source_addr: "15125550100", short_message: Buffer.from(text, "latin1") });

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  const w = new RedisRouteWriter(client, { prefix: "didgate:", streamMaxlen: 10_000 });
  await w.set("+15125550100", { tenant: "acme", sms: { webhook: "http://127.0.0.1:9/in" } });
  await w.setOutbound("+44*", { sms: ["smsc-b"] });
  // +33: a bind whose SMSC is not up yet (messages stay queued)
  await w.setOutbound("+33*", { sms: ["smsc-late"] });
  // +34: another bind that comes up later (cancel by address); +35: a bind that never comes up
  await w.setOutbound("+34*", { sms: ["smsc-x"] });
  await w.setOutbound("+35*", { sms: ["smsc-never"] });
  smsc = await startSmsc({ idPrefix: "s" });
  latePort = await freePort();
  xPort = await freePort();
  const neverPort = await freePort();
  smppPort = await freePort();
  const dir = tempDir();
  cfgPath = join(dir, "didgate.yaml");
  writeFileSync(
    cfgPath,
    YAML.stringify({
      instance_id: "edge-qcr-1",
      state_dir: dir,
      log: { level: "warn" },
      admin: { listen: "127.0.0.1:0" },
      sip: { listen: [] },
      routes: { redis: { url: redis.url, snapshot: "" } },
      smpp: {
        listen: `127.0.0.1:${smppPort}`,
        accounts: [
          { system_id: "app-1", password: "pw-a", role: "app", tenant: "acme", country_code: "1" },
          { system_id: "app-2", password: "pw-b", role: "app", tenant: "acme", country_code: "1" },
          { system_id: "carrier-1", password: "pw-c", role: "carrier", country_code: "1" },
        ],
        binds: [
          { name: "smsc-b", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", tps: 100, reconnect_min_s: 0.2, reconnect_max_s: 1 },
          { name: "smsc-late", host: "127.0.0.1", port: latePort, system_id: "didgate", password: "pw", tps: 100, reconnect_min_s: 0.2, reconnect_max_s: 0.5 },
          { name: "smsc-x", host: "127.0.0.1", port: xPort, system_id: "didgate", password: "pw", tps: 100, reconnect_min_s: 0.2, reconnect_max_s: 0.5 },
          { name: "smsc-never", host: "127.0.0.1", port: neverPort, system_id: "didgate", password: "pw", reconnect_min_s: 0.2, reconnect_max_s: 0.5 },
        ],
      },
    }),
  );
  child = spawnServe(cfgPath);
  app1 = await bindApp("app-1", "pw-a");
  app2 = await bindApp("app-2", "pw-b");
}, 60_000);

afterAll(async () => {
  await app1?.close();
  await app2?.close();
  await kill9(child);
  await smsc?.close();
  await late?.close();
  await xsmsc?.close();
  client?.disconnect();
  await redis?.stop();
});

describe("query_sm", () => {
  it("ENROUTE once sent, DELIVERED with its final date after the SMSC's receipt; another account's id: ESME_RQUERYFAIL", async () => {
    const id = await submit(app1, "447700900001", "query me", { registered_delivery: 1 });
    const q0 = await query(app1, id);
    expect(q0.command_status).toBe(0);
    expect(cstr(q0.message_id)).toBe(id);
    expect(q0.message_state).toBe(1); // ENROUTE (queued or sent, no receipt yet)
    expect(q0.final_date || "").toBe("");
    // another app account of the same tenant cannot query it
    expect((await query(app2, id)).command_status).toBe(0x67);
    // an id nobody submitted
    expect((await query(app1, "00000000-0000-0000-0000-000000000000")).command_status).toBe(0x67);
    // the SMSC has it: its receipt
    const smscId = await waitFor(() => {
      const i = texts(smsc).indexOf("query me");
      return i >= 0 ? `s${i + 1}` : undefined;
    }, 15_000);
    // sent (the status history says so) before the receipt: still ENROUTE
    await waitFor(async () => (await client.hget(`didgate:msg:msg_${id}`, "status")) === "sent", 10_000);
    const t0 = Date.now();
    const dr = await smsc.send("deliver_sm", {
      source_addr: "447700900001",
      destination_addr: "15125550100",
      esm_class: 4,
      short_message: `id:${smscId} sub:001 dlvrd:001 submit date:2612050800 done date:2612050801 stat:DELIVRD err:000 text:query me`,
      receipted_message_id: smscId,
      message_state: 2,
    });
    expect(dr.command_status).toBe(0);
    const q1 = await waitFor(async () => {
      const q = await query(app1, id);
      return q.message_state === 2 ? q : undefined;
    }, 10_000);
    expect(q1.command_status).toBe(0);
    expect(q1.error_code).toBe(0);
    expect(q1.final_date).toBeInstanceOf(Date);
    expect(Math.abs((q1.final_date as Date).getTime() - t0)).toBeLessThan(30_000);
  }, 60_000);
});

describe("bad requests", () => {
  it("a query_sm with no NUL after its message_id is answered ESME_RINVMSGLEN; the session carries on", async () => {
    const body = Buffer.from("no-terminator", "latin1");
    const pdu = Buffer.alloc(16 + body.length);
    pdu.writeUInt32BE(pdu.length, 0);
    pdu.writeUInt32BE(0x00000003, 4);
    pdu.writeUInt32BE(0, 8);
    pdu.writeUInt32BE(0x7ff0, 12);
    body.copy(pdu, 16);
    app1.raw(pdu);
    const resp = await waitFor(() => app1.received.find((p) => p.sequence_number === 0x7ff0), 5_000);
    expect([resp.command, resp.command_status]).toEqual(["query_sm_resp", 0x01]);
    const id = await submit(app1, "447700900003", "still fine");
    expect((await query(app1, id)).command_status).toBe(0);
  });

  it("a carrier account's query_sm, cancel_sm and replace_sm get ESME_RINVCMDID, as before", async () => {
    const id = await submit(app1, "447700900004", "not yours");
    const carrier = await bindApp("carrier-1", "pw-c");
    try {
      expect((await query(carrier, id)).command_status).toBe(0x03);
      expect((await cancel(carrier, id)).command_status).toBe(0x03);
      expect((await replace(carrier, id, "x")).command_status).toBe(0x03);
    } finally {
      await carrier.close();
    }
  });
});

describe("cancel_sm and replace_sm", () => {
  it("a sent message cannot be cancelled (ESME_RCANCELFAIL) nor replaced (ESME_RREPLACEFAIL)", async () => {
    const id = await submit(app1, "447700900002", "already gone");
    await waitFor(() => texts(smsc).includes("already gone"), 15_000);
    await waitFor(async () => (await client.hget(`didgate:msg:msg_${id}`, "status")) === "sent", 10_000);
    expect((await cancel(app1, id)).command_status).toBe(0x11);
    expect((await replace(app1, id, "too late")).command_status).toBe(0x13);
    expect((await query(app1, id)).message_state).toBe(1);
  }, 30_000);

  it("queued messages: one cancelled never reaches the SMSC (DELETED), one replaced arrives with its new text, another account's id fails", async () => {
    const gone = await submit(app1, "33612345601", "cancel me");
    const swap = await submit(app1, "33612345602", "old text");
    const keep = await submit(app1, "33612345603", "keep me");
    // not this account's message
    expect((await cancel(app2, gone)).command_status).toBe(0x11);
    expect((await replace(app2, swap, "hijack")).command_status).toBe(0x13);
    expect((await cancel(app1, gone)).command_status).toBe(0);
    expect((await replace(app1, swap, "new text")).command_status).toBe(0);
    const q = await query(app1, gone);
    expect(q.message_state).toBe(4); // DELETED
    expect(q.final_date).toBeInstanceOf(Date);
    // a second cancel: nothing left to cancel
    expect((await cancel(app1, gone)).command_status).toBe(0x11);
    // the SMSC comes up: the queue drains
    late = await startSmsc({ idPrefix: "l", port: latePort });
    await waitFor(() => texts(late).includes("keep me") && texts(late).includes("new text"), 40_000);
    // give a cancelled message every chance to show up: wait until the spool has nothing left
    // (no entry in the stream, none waiting for a retry, none dead)
    await waitFor(async () => (await client.hget(`didgate:msg:msg_${keep}`, "status")) === "sent", 10_000);
    await waitFor(async () => (await client.xlen("didgate:inbound")) + (await client.zcard("didgate:retry")) === 0 || undefined, 20_000);
    expect(await client.xlen("didgate:dlq")).toBe(0);
    expect(texts(late)).not.toContain("cancel me");
    expect(texts(late)).not.toContain("old text");
    expect((await query(app1, swap)).message_state).toBe(1);
    expect((await query(app1, gone)).message_state).toBe(4);
  }, 90_000);
});

describe("cancel_sm by address (empty message_id)", () => {
  const byAddress = (e: TestEsme, to: string, service_type = ""): Promise<SmppPdu> =>
    e.send("cancel_sm", { service_type, message_id: "", source_addr_ton: 1, source_addr: "15125550100", dest_addr_ton: 1, destination_addr: to });

  it("cancels every queued message of the app from source to destination; others still go", async () => {
    const a = await submit(app1, "34600000001", "by address 1");
    const b = await submit(app1, "34600000001", "by address 2");
    const other = await submit(app1, "34600000002", "other destination");
    // the same addresses from another account are not this app's to cancel
    const theirs = await submit(app2, "34600000001", "another account's");
    // a service_type none of them has: nothing cancelled
    expect((await byAddress(app1, "34600000001", "WAP")).command_status).toBe(0x11);
    expect((await byAddress(app1, "34600000001")).command_status).toBe(0);
    expect((await query(app1, a)).message_state).toBe(4);
    expect((await query(app1, b)).message_state).toBe(4);
    expect((await query(app1, other)).message_state).toBe(1);
    expect((await query(app2, theirs)).message_state).toBe(1);
    // nothing left to cancel there
    expect((await byAddress(app1, "34600000001")).command_status).toBe(0x11);
    xsmsc = await startSmsc({ idPrefix: "x", port: xPort });
    await waitFor(() => texts(xsmsc).includes("other destination") && texts(xsmsc).includes("another account's"), 40_000);
    await waitFor(async () => (await client.hget(`didgate:msg:msg_${other}`, "status")) === "sent", 10_000);
    await waitFor(async () => (await client.xlen("didgate:inbound")) + (await client.zcard("didgate:retry")) === 0 || undefined, 20_000);
    expect(texts(xsmsc)).not.toContain("by address 1");
    expect(texts(xsmsc)).not.toContain("by address 2");
    // the index of queued messages is emptied as they leave
    await waitFor(async () => (await client.keys("didgate:smsout:q:*")).length === 0 || undefined, 10_000);
  }, 90_000);

  it("without a destination_addr it cancels nothing (ESME_RCANCELFAIL)", async () => {
    await submit(app1, "35600000009", "stays queued");
    expect((await byAddress(app1, "")).command_status).toBe(0x11);
  });
});

describe("schedule_delivery_time and validity_period", () => {
  const receiptsOf = (e: TestEsme) => e.received.filter((p) => p.command === "deliver_sm" && ((p.esm_class as number) & 0x3c) === 0x04);

  it("submit_sm: refused with ESME_RINVSCHED / ESME_RINVEXPIRY when not a time, past, or beyond the spool's maximum age", async () => {
    const send = (extra: Record<string, unknown>) => app1.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: "447700900010", dest_addr_ton: 1, short_message: "bad times", ...extra });
    expect((await send({ schedule_delivery_time: "261305120000000+" })).command_status).toBe(0x61);
    expect((await send({ schedule_delivery_time: "2612051200000000" })).command_status).toBe(0x61);
    expect((await send({ validity_period: "261205126000000+" })).command_status).toBe(0x62);
    expect((await send({ validity_period: "200101000000000+" })).command_status).toBe(0x62); // already past
    expect((await send({ schedule_delivery_time: "000002000000000R" })).command_status).toBe(0x61); // 2 days: beyond max_age_s (1 day)
    expect((await send({ schedule_delivery_time: "000000000100000R", validity_period: "000000000030000R" })).command_status).toBe(0x62); // expires before its schedule
    expect(texts(smsc)).not.toContain("bad times");
  });

  it("a scheduled message is queued (ENROUTE) and reaches the SMSC at its time, not before", async () => {
    const at = new Date(Date.now() + 6_000);
    const id = await submit(app1, "447700900011", "scheduled", { schedule_delivery_time: at });
    const atTenth = at.getTime() - (at.getTime() % 100);
    expect((await query(app1, id)).message_state).toBe(1);
    // one sent after it, unscheduled, overtakes it
    await submit(app1, "447700900012", "not scheduled");
    await waitFor(() => texts(smsc).includes("not scheduled"), 15_000);
    const p = await waitFor(() => smsc.received.find((x) => x.command === "submit_sm" && x.destination_addr === "447700900011"), 30_000);
    expect(p._at as number).toBeGreaterThanOrEqual(atTenth);
    const i = texts(smsc).indexOf("scheduled");
    expect(i).toBeGreaterThan(texts(smsc).indexOf("not scheduled"));
    await waitFor(async () => (await client.hget(`didgate:msg:msg_${id}`, "status")) === "sent", 10_000);
  }, 60_000);

  it("a queued message whose validity_period ends is EXPIRED (query_sm, the app's receipt, its record) and never sent", async () => {
    const before = receiptsOf(app1).length;
    const id = await submit(app1, "35600000001", "short lived", { validity_period: "000000000002000R", registered_delivery: 1 });
    expect((await query(app1, id)).message_state).toBe(1);
    const q = await waitFor(async () => {
      const r = await query(app1, id);
      return r.message_state === 3 ? r : undefined;
    }, 30_000);
    expect(q.final_date).toBeInstanceOf(Date);
    const r = await waitFor(() => receiptsOf(app1).slice(before).find((p) => String((p.short_message as { message: string }).message).includes(`id:${id}`)), 10_000);
    expect(String((r.short_message as { message: string }).message)).toContain("stat:EXPIRED");
    expect(r.message_state).toBe(3);
    const rec = await waitFor(async () => {
      const e = (await client.xrange("didgate:cdr", "-", "+")) as [string, string[]][];
      return e.map(([, f]) => JSON.parse(f[f.indexOf("json") + 1]!)).find((x) => x.smpp_message_id === id);
    }, 20_000);
    expect(rec).toMatchObject({ direction: "outbound", status: "expired", reason: "validity_period", target: null });
    // it cannot be cancelled any more
    expect((await cancel(app1, id)).command_status).toBe(0x11);
  }, 60_000);

  it("replace_sm: new validity_period and registered_delivery apply to a queued message; invalid times are refused", async () => {
    const id = await submit(app1, "35600000002", "replace my validity");
    const rep = (extra: Record<string, unknown>) =>
      app1.send("replace_sm", { message_id: id, source_addr_ton: 1, source_addr: "15125550100", short_message: Buffer.from("replaced", "latin1"), ...extra });
    expect((await rep({ validity_period: "261305120000000+" })).command_status).toBe(0x62);
    expect((await rep({ schedule_delivery_time: "xx" })).command_status).toBe(0x61);
    expect((await rep({ sm_default_msg_id: 3 })).command_status).toBe(0x63); // ESME_RINVDFTMSGID: no predefined messages
    const before = receiptsOf(app1).length;
    expect((await rep({ validity_period: "000000000002000R", registered_delivery: 1 })).command_status).toBe(0);
    await waitFor(async () => ((await query(app1, id)).message_state === 3 ? true : undefined), 30_000);
    const r = await waitFor(() => receiptsOf(app1).slice(before).find((p) => String((p.short_message as { message: string }).message).includes(`id:${id}`)), 10_000);
    expect(String((r.short_message as { message: string }).message)).toContain("stat:EXPIRED");
    expect(String((r.short_message as { message: string }).message)).toContain("text:replaced");
  }, 60_000);
});

describe("Net::SMPP as the app", () => {
  it("submits, cancels by address, queries, replaces with a new validity; an invalid schedule gets ESME_RINVSCHED", async () => {
    const script = join(ROOT, "test/smpp/net-smpp-app.pl");
    const out = await new Promise<string[]>((resolve, reject) => {
      execFile("perl", [script, "127.0.0.1", String(smppPort), "app-1", "pw-a", "15125550100", "35600000200", "35600000201"], { timeout: 20_000 }, (err, stdout, stderr) => {
        if (err && !stdout) reject(new Error(`perl app failed: ${err.message} ${stderr}`));
        else resolve(stdout.trim().split("\n"));
      });
    });
    const ids = out.filter((l) => l.startsWith("submit ")).map((l) => /status=0 id=(\S+)$/.exec(l)?.[1]);
    expect(ids).toHaveLength(3);
    expect(ids.every((id) => id !== undefined && id.length > 0)).toBe(true);
    expect(out.filter((l) => !l.startsWith("submit "))).toEqual([
      "bind status=0",
      "cancel status=0",
      "query 0 status=0 state=4", // DELETED
      "query 1 status=0 state=4",
      "query 2 status=0 state=1", // ENROUTE: another destination
      "replace status=0",
      "bad_schedule status=97", // ESME_RINVSCHED
      "unbind status=0",
    ]);
    // the replaced validity ends while the bind is down: expired, never sent
    await waitFor(async () => (await client.hget(`didgate:msg:msg_${ids[2]}`, "status")) === "expired" || undefined, 30_000);
  }, 60_000);
});
