/**
 * The route entry's sms.forward / forward_template / keywords / optout (validation with field-named
 * errors) and the keyword module's decisions: which word is what, where the message goes, what is
 * sent (recorded through a send function standing in for SmsOutbound.sendAuto, with a real
 * in-memory opt-out store) and to whom nothing is sent.
 */
import pino from "pino";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { MemoryOptOutStore, type OptOutStore } from "../../src/edge/optout.js";
import { DEFAULT_OPTOUT_TEXTS, forwardText, SmsKeywords, type InboundPlan } from "../../src/edge/sms-keywords.js";
import { parseRoute, type Route } from "../../src/routing/route.js";
import { RouteStore, RouteTable } from "../../src/routing/table.js";

function route(v: unknown): Route {
  const r = parseRoute("+15125550100", v);
  if (!r.ok) throw new Error(r.errors.join("; "));
  return r.route;
}
const errors = (v: unknown): string[] => {
  const r = parseRoute("+15125550100", v);
  return r.ok ? [] : r.errors;
};

describe("route entry: sms.forward, forward_template, keywords, optout", () => {
  it("accepts a number or a list, a template, keywords in any case (stored upper case), opt-out texts", () => {
    const r = route({
      sms: {
        forward: "+447700900500",
        forward_template: "{from}: {text}",
        keywords: { join: { webhook: "https://h/join", reply: "Welcome" }, Info: { forward: ["+447700900501", "+447700900501"] } },
        optout: { stop_reply: "", help_reply: "Call 555" },
      },
    });
    expect(r.sms!.forward).toEqual(["+447700900500"]);
    expect(r.sms!.forwardTemplate).toBe("{from}: {text}");
    expect([...r.sms!.keywords!.keys()]).toEqual(["JOIN", "INFO"]);
    expect(r.sms!.keywords!.get("INFO")).toEqual({ forward: ["+447700900501"] });
    expect(r.sms!.optout).toEqual({ stopReply: "", helpReply: "Call 555" });
    // forward or keywords alone make an sms route
    expect(route({ sms: { forward: ["+447700900500"] } }).sms!.forward).toHaveLength(1);
    expect(route({ sms: { keywords: { JOIN: { reply: "hi" } } } }).sms!.keywords!.size).toBe(1);
  });

  it("names the field of each mistake", () => {
    expect(errors({ sms: { forward: "447700900500" } })[0]).toMatch(/sms\.forward: must be an E\.164 number/);
    expect(errors({ sms: { forward: [] } })[0]).toMatch(/sms\.forward:/);
    expect(errors({ sms: { forward: Array.from({ length: 11 }, (_, i) => `+4477009005${String(i).padStart(2, "0")}`) } })[0]).toMatch(/1 to 10/);
    expect(errors({ sms: { webhook: "https://h", forward_template: "" } })[0]).toMatch(/sms\.forward_template: must be a text of 1 to 1600/);
    expect(errors({ sms: { keywords: { STOP: { reply: "x" } } } })[0]).toMatch(/sms\.keywords\.STOP: is an opt-out or opt-in word/);
    expect(errors({ sms: { keywords: { yes: { reply: "x" } } } })[0]).toMatch(/sms\.keywords\.yes: is an opt-out or opt-in word/);
    expect(errors({ sms: { keywords: { "two words": { reply: "x" } } } })[0]).toMatch(/sms\.keywords\.two words: a keyword must be one word/);
    expect(errors({ sms: { keywords: { join: { reply: "a" }, JOIN: { reply: "b" } } } })[0]).toMatch(/sms\.keywords\.JOIN: is given twice/);
    expect(errors({ sms: { keywords: { JOIN: {} } } })[0]).toMatch(/sms\.keywords\.JOIN: needs webhook, forward or reply/);
    expect(errors({ sms: { keywords: { JOIN: { reply: "x", url: "y" } } } })[0]).toMatch(/sms\.keywords\.JOIN\.url: unknown field/);
    expect(errors({ sms: { keywords: { JOIN: { webhook: "ftp://x" } } } })[0]).toMatch(/sms\.keywords\.JOIN\.webhook: must be an http/);
    expect(errors({ sms: { keywords: [] } })[0]).toMatch(/sms\.keywords: must be an object/);
    expect(errors({ sms: { webhook: "https://h", optout: { stop: "x" } } })[0]).toMatch(/sms\.optout\.stop: unknown field/);
    expect(errors({ sms: { webhook: "https://h", optout: { help_reply: "x".repeat(1601) } } })[0]).toMatch(/sms\.optout\.help_reply:/);
    expect(errors({ sms: {} })[0]).toMatch(/sms: needs webhook, smpp, forward or keywords/);
  });
});

describe("forwardText", () => {
  it("replaces {from}, {to}, {text} (each occurrence), leaves other braces, cuts at 1600 characters", () => {
    expect(forwardText("From {from}: {text}", "+4477", "+1512", "hi {to}")).toBe("From +4477: hi {to}");
    expect(forwardText("{to}<-{from} {text}{text} {x}", "a", "b", "t")).toBe("b<-a tt {x}");
    expect(forwardText("{text}", "a", "b", "z".repeat(2000))).toHaveLength(1600);
    expect(forwardText("{text}".repeat(266), "a", "b", "z".repeat(1600))).toBe("z".repeat(1600));
    expect(forwardText("{text} {from}", "$&{text}", "b", "t")).toBe("t $&{text}");
  });

  it("does not split an emoji at the cut", () => {
    const out = forwardText("{text}", "a", "b", "a" + "\u{1F600}".repeat(1000));
    expect(out).toHaveLength(1599);
    expect(out.endsWith("\u{1F600}")).toBe(true);
  });
});

interface Sent {
  from: string;
  to: string;
  text: string;
  ignoreOptOut?: boolean;
}

function setup(routes: Record<string, unknown>, optouts: OptOutStore = new MemoryOptOutStore()) {
  const t = new RouteTable<Route>();
  for (const [k, v] of Object.entries(routes)) t.set(k, route(v));
  const sent: Sent[] = [];
  const kw = new SmsKeywords({
    store: new RouteStore(t),
    optouts,
    send: async (m) => {
      sent.push(m.ignoreOptOut ? { from: m.from, to: m.to, text: m.text, ignoreOptOut: true } : { from: m.from, to: m.to, text: m.text });
      return "accepted";
    },
    logger: pino({ level: "silent" }),
    registry: new Registry(),
  });
  const inbound = async (did: string, from: string, text: string | undefined, partial = false): Promise<InboundPlan> => {
    const p = await kw.inbound({ did, route: t.lookup(did)!, from, text, partial, id: "m" });
    if (p === "temporary" || p === "rate_limited") throw new Error(p);
    return p;
  };
  return { kw, sent, inbound, optouts, t };
}

const flush = () => new Promise((r) => setImmediate(r));

describe("SmsKeywords", () => {
  const routes = {
    "+15125550100": { tenant: "acme", sms: { webhook: "https://h/in", smpp: "app-1", forward: "+447700900500", keywords: { JOIN: { webhook: "https://h/join", reply: "Welcome" }, PRICE: { reply: "1 USD" } }, optout: { help_reply: "Call 555" } } },
    "+15125550200": { tenant: "acme", sms: { webhook: "https://h/other" } },
  };

  it("STOP (whole text, any case) records the opt-out and confirms, sent although opted out; START removes it", async () => {
    const { sent, inbound, optouts } = setup(routes);
    const p = await inbound("+15125550100", "+447700900001", " stop! ");
    expect([p.kind, p.handled, p.webhook, p.smpp]).toEqual(["stop", true, "https://h/in", "app-1"]);
    expect(await optouts.isOptedOut("+15125550100", "+447700900001")).toBe(true);
    expect(sent).toEqual([]); // nothing before commit (the message may still be declined)
    p.commit();
    await flush();
    expect(sent[0]).toEqual({ from: "+15125550100", to: "+447700900001", text: DEFAULT_OPTOUT_TEXTS.stop, ignoreOptOut: true });
    const s = await inbound("+15125550100", "+447700900001", "UNSTOP");
    expect(s.kind).toBe("start");
    expect(await optouts.isOptedOut("+15125550100", "+447700900001")).toBe(false);
    s.commit();
    await flush();
    expect(sent.filter((m) => m.to === "+447700900001").map((m) => m.text)).toEqual([DEFAULT_OPTOUT_TEXTS.stop, DEFAULT_OPTOUT_TEXTS.start]);
  });

  it("'stop that' is no opt-out word; a route keyword is the first word; HELP answers the route's help text", async () => {
    const { sent, inbound, optouts } = setup(routes);
    const a = await inbound("+15125550100", "+447700900002", "stop that");
    expect(a.kind).toBeUndefined();
    expect(await optouts.isOptedOut("+15125550100", "+447700900002")).toBe(false);
    const j = await inbound("+15125550100", "+447700900002", "Join, now");
    expect([j.kind, j.webhook, j.smpp]).toEqual(["keyword", "https://h/join", undefined]);
    const pr = await inbound("+15125550100", "+447700900002", "price?");
    expect([pr.kind, pr.webhook, pr.smpp]).toEqual(["keyword", "https://h/in", "app-1"]);
    const h = await inbound("+15125550100", "+447700900002", "HELP");
    expect(h.kind).toBe("help");
    for (const p of [j, pr, h]) p.commit();
    await flush();
    const replies = sent.filter((m) => m.to === "+447700900002").map((m) => m.text);
    expect(replies).toEqual(["Welcome", "1 USD", "Call 555"]);
    // every one of them was forwarded as well (the route's forward)
    expect(sent.filter((m) => m.to === "+447700900500").map((m) => m.text)).toEqual(["From +447700900002: Join, now", "From +447700900002: price?", "From +447700900002: HELP"]);
  });

  it("nothing is sent to an alphanumeric sender or one of our numbers, and a message from one of ours is not forwarded", async () => {
    const { kw, sent, inbound, optouts } = setup(routes);
    const a = await inbound("+15125550100", "ACME", "STOP");
    expect(a.kind).toBe("stop");
    expect(await optouts.isOptedOut("+15125550100", "ACME")).toBe(false);
    a.commit();
    const b = await inbound("+15125550100", "+15125550200", "JOIN");
    b.commit();
    kw.reply({ type: "message.received", id: "x", received_at: "", from: "+15125550200", to: "+15125550100", text: "", encoding: "gsm7", parts: 1, tenant: "acme", smpp: { peer: "c", message_id: "1" } }, "hello");
    kw.reply({ type: "message.received", id: "y", received_at: "", from: "+447700900003", to: "+15125550100", text: "", encoding: "gsm7", parts: 1, tenant: "acme", smpp: { peer: "c", message_id: "2" } }, "hello");
    await flush();
    // only the reply to the outside number, and the forward of ACME's message
    expect(sent).toEqual([
      { from: "+15125550100", to: "+447700900500", text: "From ACME: STOP" },
      { from: "+15125550100", to: "+447700900003", text: "hello" },
    ]);
  });

  it("a binary or partial message is no keyword; a route without forward or keyword leaves a plain message unhandled", async () => {
    const { inbound, sent } = setup(routes);
    const bin = await inbound("+15125550100", "+447700900004", undefined);
    const part = await inbound("+15125550100", "+447700900004", "STOP", true);
    expect([bin.kind, part.kind]).toEqual([undefined, undefined]);
    // nor forwarded (the route forwards every text message)
    bin.commit();
    part.commit();
    await flush();
    expect(sent).toEqual([]);
    const p = await inbound("+15125550200", "+447700900004", "hello");
    expect([p.handled, p.kind, p.webhook]).toEqual([false, undefined, "https://h/other"]);
  });

  it("a route that only forwards does not take a binary or incomplete message (it would reach no one)", async () => {
    const { inbound, sent } = setup({ "+15125550300": { sms: { forward: "+447700900500" } } });
    const bin = await inbound("+15125550300", "+447700900004", undefined);
    const part = await inbound("+15125550300", "+447700900004", "hello, this is the first half", true);
    expect([bin.handled, bin.webhook, bin.smpp]).toEqual([false, undefined, undefined]);
    expect([part.handled, part.webhook, part.smpp]).toEqual([false, undefined, undefined]);
    const text = await inbound("+15125550300", "+447700900004", "hello");
    expect(text.handled).toBe(true);
    text.commit();
    await flush();
    expect(sent).toEqual([{ from: "+15125550300", to: "+447700900500", text: "From +447700900004: hello" }]);
  });

  it("forwards at most 10 messages a minute from one sender to one DID (a chain of outside forwards back to the DID is bounded)", async () => {
    const { kw, sent, inbound, t } = setup({ "+15125550300": { sms: { forward: "+447700900500" } }, "+15125550400": { sms: { webhook: "https://h/in", forward: "+447700900500" } } });
    for (let i = 0; i < 10; i++) (await inbound("+15125550300", "+447700900006", `m${i}`)).commit();
    for (let i = 0; i < 10; i++) (await inbound("+15125550400", "+447700900006", `m${i}`)).commit();
    await flush();
    expect(sent).toHaveLength(20);
    // a route that only forwards declines the 11th with a temporary failure (the SMSC sends it again later)
    expect(await kw.inbound({ did: "+15125550300", route: t.lookup("+15125550300")!, from: "+447700900006", text: "again", partial: false, id: "m" })).toBe("rate_limited");
    // an SMSC's retry of one that was accepted is not declined (it is answered as accepted and not forwarded again)
    expect(await kw.inbound({ did: "+15125550300", route: t.lookup("+15125550300")!, from: "+447700900006", text: "m9", partial: false, id: "m", repeat: true })).not.toBe("rate_limited");
    // a route with a webhook still takes it, without the forward
    const w = await inbound("+15125550400", "+447700900006", "again");
    expect([w.handled, w.webhook]).toEqual([true, "https://h/in"]);
    w.commit();
    // another sender is not held back
    (await inbound("+15125550300", "+447700900007", "hi")).commit();
    await flush();
    expect(sent.slice(20)).toEqual([{ from: "+15125550300", to: "+447700900500", text: "From +447700900007: hi" }]);
    const limited = (await kw.metrics.forwards.get()).values.find((v) => v.labels.outcome === "rate_limited");
    expect(limited?.value).toBe(2);
  });

  it("messages of one sender that arrive together are held to the same 10 (each takes its place when it comes); one not accepted gives its place back", async () => {
    const { kw, sent, t } = setup({ "+15125550300": { sms: { forward: "+447700900500" } } });
    const one = (i: number) => kw.inbound({ did: "+15125550300", route: t.lookup("+15125550300")!, from: "+447700900009", text: `c${i}`, partial: false, id: `c${i}` });
    // 40 at once: none accepted (committed) yet while the others are decided
    const plans = await Promise.all(Array.from({ length: 40 }, (_, i) => one(i)));
    const ok = plans.filter((p): p is InboundPlan => typeof p === "object");
    expect(ok).toHaveLength(10);
    expect(plans.filter((p) => p === "rate_limited")).toHaveLength(30);
    // two of them are not accepted (the spool refused them, say): their places come back
    ok[0]!.release();
    ok[1]!.release();
    ok[1]!.release();
    for (const p of ok.slice(2)) p.commit();
    // a plan settles once: a commit after its release sends nothing
    ok[0]!.commit();
    await flush();
    expect(sent).toHaveLength(8);
    const more = await Promise.all([one(40), one(41), one(42)]);
    expect(more.map((p) => (typeof p === "object" ? "plan" : p))).toEqual(["plan", "plan", "rate_limited"]);
  });

  it("a webhook reply is not sent from a number that is no longer the tenant's (released, or moved to another)", async () => {
    const { kw, sent } = setup(routes);
    const body = (to: string, tenant: string | null) => ({ type: "message.received" as const, id: "z", received_at: "", from: "+447700900008", to, text: "", encoding: "gsm7", parts: 1, tenant, smpp: { peer: "c", message_id: "3" } });
    kw.reply(body("+15125550999", "acme"), "gone");
    kw.reply(body("+15125550100", "other"), "moved");
    kw.reply(body("+15125550100", "acme"), "still ours");
    await flush();
    expect(sent).toEqual([{ from: "+15125550100", to: "+447700900008", text: "still ours" }]);
    // released to a default route of no tenant: not the tenant's any more; a default route's own message is answered
    const d = setup({ ...routes, "*": { sms: { webhook: "https://h/default" } } });
    d.kw.reply(body("+15125550999", "acme"), "gone");
    d.kw.reply(body("+15125550999", null), "default");
    await flush();
    expect(d.sent).toEqual([{ from: "+15125550999", to: "+447700900008", text: "default" }]);
  });

  it("the confirmation of a new opt-out is sent even after 5 answers in the minute; once per window", async () => {
    const { sent, inbound } = setup(routes);
    const who = "+447700900013";
    for (let i = 0; i < 5; i++) (await inbound("+15125550100", who, "HELP")).commit();
    (await inbound("+15125550100", who, "STOP")).commit();
    // neither a repeated STOP (already opted out), nor a START, nor a second new STOP in the window
    (await inbound("+15125550100", who, "STOP")).commit();
    (await inbound("+15125550100", who, "START")).commit();
    (await inbound("+15125550100", who, "STOP")).commit();
    await flush();
    const answers = sent.filter((m) => m.to === who).map((m) => m.text);
    expect(answers).toEqual([...Array(5).fill("Call 555"), DEFAULT_OPTOUT_TEXTS.stop]);
  });

  it("an opt-out store that fails: the message gets a temporary failure", async () => {
    const broken: OptOutStore = { optOut: () => Promise.reject(new Error("down")), optIn: () => Promise.reject(new Error("down")), isOptedOut: async () => false };
    const { kw } = setup(routes, broken);
    const t = new RouteTable<Route>();
    t.set("+15125550100", route(routes["+15125550100"]));
    expect(await kw.inbound({ did: "+15125550100", route: t.lookup("+15125550100")!, from: "+447700900005", text: "STOP", partial: false, id: "m" })).toBe("temporary");
  });
});
