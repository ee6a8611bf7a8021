import { Counter, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { SipMetrics } from "../../src/sip/metrics.js";
import { localChild } from "../../src/util/local-counter.js";

describe("local counters folded in at collect", () => {
  it("the /metrics text is the same as with prom-client inc(), across scrapes, with inc(0) and a collect of its own", async () => {
    const a = new Registry();
    const b = new Registry();
    let own = 0;
    const ca = new Counter({ name: "t_total", help: "h", labelNames: ["x", "y"], registers: [a] });
    const cb = new Counter({ name: "t_total", help: "h", labelNames: ["x", "y"], registers: [b], collect() { own++; } });
    const one = localChild(cb, { x: "1", y: "a" });
    const two = localChild(cb, { x: "2", y: "b" });
    const never = localChild(cb, { x: "3", y: "c" });
    void never;
    for (let i = 0; i < 5; i++) { ca.inc({ x: "1", y: "a" }); one.inc(); }
    ca.inc({ x: "2", y: "b" }, 0);
    two.inc(0);
    expect(await b.metrics()).toBe(await a.metrics());
    expect(await b.metrics()).toContain('t_total{x="1",y="a"} 5');
    expect(await b.metrics()).not.toContain('x="3"');
    ca.inc({ x: "2", y: "b" }, 3);
    two.inc(3);
    one.inc();
    ca.inc({ x: "1", y: "a" });
    expect(await b.metrics()).toBe(await a.metrics());
    expect(await b.metrics()).toContain('t_total{x="1",y="a"} 6');
    expect(own).toBe(5);
  });

  it("SipMetrics.message and retransmission count as before, labels from closed sets", async () => {
    const reg = new Registry();
    const m = new SipMetrics(reg);
    m.message("in", "udp", true, "INVITE", 0);
    m.message("in", "udp", true, "INVITE", 0);
    m.message("out", "udp", false, "INVITE", 180);
    m.message("out", "tcp", false, "BYE", 799);
    m.message("in", "udp", true, "X-ANYTHING-" + Math.random(), 0);
    m.retransmission("in", "request");
    const text = await reg.metrics();
    expect(text).toContain('didgate_sip_messages_total{direction="in",transport="udp",kind="request",method="INVITE",code=""} 2');
    expect(text).toContain('didgate_sip_messages_total{direction="out",transport="udp",kind="response",method="INVITE",code="180"} 1');
    expect(text).toContain('didgate_sip_messages_total{direction="out",transport="tcp",kind="response",method="BYE",code="other"} 1');
    expect(text).toContain('didgate_sip_messages_total{direction="in",transport="udp",kind="request",method="other",code=""} 1');
    expect(text).toContain('didgate_sip_retransmissions_total{direction="in",kind="request"} 1');
  });
});
