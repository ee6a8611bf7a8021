import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { SipMetrics } from "../../src/sip/metrics.js";
import { VoiceMetrics } from "../../src/edge/voice-metrics.js";
import { localChild, localGaugeChild, localHistogramChild } from "../../src/util/local-counter.js";

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

  it("local gauge deltas: the same /metrics text and JSON as prom-client inc()/dec(), a series moved back to 0 shown, one never moved not", async () => {
    const a = new Registry();
    const b = new Registry();
    const ga = new Gauge({ name: "t_in_flight", help: "h", labelNames: ["side"], registers: [a] });
    const gb = new Gauge({ name: "t_in_flight", help: "h", labelNames: ["side"], registers: [b] });
    const up = localGaugeChild(gb, { side: "up" });
    const zero = localGaugeChild(gb, { side: "zero" });
    const never = localGaugeChild(gb, { side: "never" });
    void never;
    for (let i = 0; i < 4; i++) { ga.inc({ side: "up" }); up.inc(); }
    ga.inc({ side: "zero" }); zero.inc(); ga.dec({ side: "zero" }); zero.dec();
    expect(await b.metrics()).toBe(await a.metrics());
    expect(await b.metrics()).toContain('t_in_flight{side="up"} 4');
    expect(await b.metrics()).toContain('t_in_flight{side="zero"} 0');
    expect(await b.metrics()).not.toContain('side="never"');
    // falling across scrapes, and below what one scrape saw
    for (let i = 0; i < 3; i++) { ga.dec({ side: "up" }); up.dec(); }
    ga.dec({ side: "zero" }); zero.dec();
    expect(await b.metrics()).toBe(await a.metrics());
    expect(await b.metrics()).toContain('t_in_flight{side="up"} 1');
    expect(await b.metrics()).toContain('t_in_flight{side="zero"} -1');
    expect(JSON.stringify(await b.getMetricsAsJSON())).toBe(JSON.stringify(await a.getMetricsAsJSON()));
  });

  it("SipMetrics transaction gauges: didgate_sip_transactions by side and type", async () => {
    const reg = new Registry();
    const m = new SipMetrics(reg);
    m.txServerInvite.inc();
    m.txServerInvite.inc();
    m.txServerOther.inc();
    m.txServerOther.dec();
    m.txClientInvite.inc();
    const text = await reg.metrics();
    expect(text).toContain('didgate_sip_transactions{side="server",type="invite"} 2');
    expect(text).toContain('didgate_sip_transactions{side="server",type="non_invite"} 0');
    expect(text).toContain('didgate_sip_transactions{side="client",type="invite"} 1');
    expect(text).not.toContain('side="client",type="non_invite"');
  });

  it("local histogram children: the same /metrics text and JSON as observe() (buckets, +Inf, sum to the last digit, count) across scrapes and after a reset", async () => {
    const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    const a = new Registry();
    const b = new Registry();
    const ha = new Histogram({ name: "t_seconds", help: "h", labelNames: ["trunk"], buckets, registers: [a] });
    const hb = new Histogram({ name: "t_seconds", help: "h", labelNames: ["trunk"], buckets, registers: [b] });
    const x = localHistogramChild(hb, { trunk: "x" });
    const y = localHistogramChild(hb, { trunk: "y" });
    const never = localHistogramChild(hb, { trunk: "never" });
    void never;
    // values whose float sum depends on the order of additions, on bucket bounds, above the last
    let seed = 7;
    const next = (): number => ((seed = (seed * 48271) % 2147483647) % 100_000) / 1000 / 1000 * (seed % 3 === 0 ? 100 : 1);
    const same = async (): Promise<void> => {
      expect(await b.metrics()).toBe(await a.metrics());
      expect(JSON.stringify(await b.getMetricsAsJSON())).toBe(JSON.stringify(await a.getMetricsAsJSON()));
    };
    for (const v of [0.001, 0.0025, 0.1 + 0.2, 60, 61, 0]) { ha.observe({ trunk: "x" }, v); x.observe(v); }
    await same();
    expect(await b.metrics()).toContain('t_seconds_bucket{le="0.001",trunk="x"} 2');
    expect(await b.metrics()).toContain('t_seconds_bucket{le="+Inf",trunk="x"} 6');
    expect(await b.metrics()).not.toContain('trunk="never"');
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 1000; i++) {
        const v = next();
        if (i % 3 === 0) { ha.observe({ trunk: "y" }, v); y.observe(v); } else { ha.observe({ trunk: "x" }, v); x.observe(v); }
      }
      await same();
    }
    expect(await b.metrics()).toContain('t_seconds_count{trunk="y"} 1002');
    ha.reset();
    hb.reset();
    ha.observe({ trunk: "x" }, 0.004);
    x.observe(0.004);
    await same();
    expect(await b.metrics()).toContain('t_seconds_count{trunk="x"} 1');
    expect(() => x.observe(Number.NaN)).toThrow(TypeError);
  });

  it("VoiceMetrics: the in-flight INVITEs gauge shows the number set last, read at scrape; the setup histogram per trunk", async () => {
    const reg = new Registry();
    const m = new VoiceMetrics(reg);
    expect(await reg.metrics()).toContain("didgate_sip_inflight_invites 0");
    m.inflightNow = 3;
    expect(await reg.metrics()).toContain("didgate_sip_inflight_invites 3");
    m.inflightNow = 1;
    m.setupOf("carrier-a", "").observe(0.003);
    const text = await reg.metrics();
    expect(text).toContain("didgate_sip_inflight_invites 1");
    expect(text).toContain('didgate_call_setup_seconds_bucket{le="0.005",trunk="carrier-a"} 1');
    expect(text).toContain('didgate_call_setup_seconds_count{trunk="carrier-a"} 1');
  });
});
