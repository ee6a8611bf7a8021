/**
 * SmppService behaviour that needs time control (injected clock) or whole-service lifecycle: incomplete
 * reassembly delivered after the timeout, bounded buffers under a flood of first parts, retry of a
 * final part after a temporary failure, server drain.
 */
import { afterEach, describe, expect, it } from "vitest";
import pino from "pino";
import { Registry } from "prom-client";
import { SmppService } from "../../src/smpp/service.js";
import { gsm7Encode } from "../../src/smpp/charset.js";
import type { AcceptResult, InboundSms, SmppConfig } from "../../src/smpp/types.js";
import { connectEsme, waitFor, type TestEsme } from "../helpers/smsc.js";
import { FakeClock } from "./fake-clock.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(extra: Partial<SmppConfig> = {}, clock?: FakeClock) {
  const messages: InboundSms[] = [];
  const registry = new Registry();
  const ctl = { answer: (async () => ({ status: "accepted" })) as (m: InboundSms) => Promise<AcceptResult> };
  const edge = new SmppService({
    config: { listen: "127.0.0.1:0", accounts: [{ system_id: "c", password: "p", role: "carrier" }, { system_id: "app", password: "p", role: "app" }], ...extra },
    logger: pino({ level: "silent" }),
    registry,
    clock,
    onMessage: (m) => {
      messages.push(m);
      return ctl.answer(m);
    },
    onReceipt: () => {},
  });
  await edge.start();
  cleanup.push(() => edge.close());
  const esme = await connectEsme(edge.address()!.port);
  cleanup.push(() => esme.close());
  expect((await esme.bind("bind_transceiver", "c", "p")).command_status).toBe(0);
  return { edge, esme, messages, registry, ctl };
}

const addr = { source_addr: "447700900123", destination_addr: "15125550100" };
function part(e: TestEsme, ref: number, total: number, seq: number, text: string) {
  return e.send("deliver_sm", { ...addr, esm_class: 0x40, short_message: Buffer.concat([Buffer.from([5, 0, 3, ref, total, seq]), Buffer.from(gsm7Encode(text)!)]) });
}

describe("reassembly through the service", () => {
  it("delivers incomplete parts marked partial after the timeout (injected clock)", async () => {
    const clock = new FakeClock();
    const { esme, messages, registry } = await setup({ reassembly: { timeout_s: 60 } }, clock);
    expect((await part(esme, 5, 3, 2, "middle ")).command_status).toBe(0);
    expect((await part(esme, 5, 3, 1, "start ")).command_status).toBe(0);
    clock.advance(59_000);
    await new Promise((r) => setTimeout(r, 20));
    expect(messages).toHaveLength(0);
    clock.advance(2_000);
    await waitFor(() => messages.length === 1);
    expect(messages[0]).toMatchObject({ text: "start middle ", parts: 2, total_parts: 3, partial: true });
    expect(await registry.metrics()).toMatch(/didgate_smpp_reassembly_incomplete_total\{reason="timeout"\} 1/);
  });

  it("bounds buffers under a flood of first parts", async () => {
    const { esme, messages, registry } = await setup({ reassembly: { max_buffers: 10 } });
    for (let i = 0; i < 30; i++) expect((await part(esme, i, 2, 1, "p" + i)).command_status).toBe(0);
    await waitFor(() => messages.length === 20);
    expect(messages.every((m) => m.partial && m.parts === 1)).toBe(true);
    const text = await registry.metrics();
    expect(text).toMatch(/didgate_smpp_reassembly_buffers 10/);
    expect(text).toMatch(/didgate_smpp_reassembly_incomplete_total\{reason="evicted"\} 20/);
  });

  it("a final part answered temporary can be retried and completes again", async () => {
    const { esme, messages, ctl } = await setup();
    await part(esme, 9, 2, 1, "a");
    ctl.answer = async () => ({ status: "temporary" });
    expect((await part(esme, 9, 2, 2, "b")).command_status).toBe(0x64);
    ctl.answer = async () => ({ status: "accepted" });
    expect((await part(esme, 9, 2, 2, "b")).command_status).toBe(0);
    expect(messages.map((m) => [m.text, m.parts, m.partial])).toEqual([
      ["ab", 2, false],
      ["ab", 2, false],
    ]);
  });
});

describe("server drain", () => {
  it("answers temporary failure, unbinds bound ESMEs, delivers buffered parts, refuses new binds", async () => {
    const { edge, esme, messages } = await setup();
    await part(esme, 1, 2, 1, "half");
    const drained = edge.drain(2000);
    const r = await esme.send("deliver_sm", { ...addr, short_message: Buffer.from("late") });
    expect(r.command_status).toBe(0x64);
    await drained;
    await esme.closed;
    expect(esme.received.some((p) => p.command === "unbind")).toBe(true);
    expect(messages.map((m) => [m.text, m.partial])).toEqual([["half", true]]);
  });
});

describe("server enquire_link", () => {
  it("sends enquire_link to a bound ESME at the account's interval", async () => {
    const { esme } = await setup({ accounts: [{ system_id: "c", password: "p", role: "carrier", enquire_link_s: 0.05 }] });
    await waitFor(() => esme.received.filter((p) => p.command === "enquire_link").length >= 2, 5000, "enquire_link from didgate");
  });
});
