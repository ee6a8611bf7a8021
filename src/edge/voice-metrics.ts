/**
 * Metrics of the SIP edge (issue #5), created on the Registry the app passes in.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { partyLabel } from "./outbound-metrics.js";
import { localChild, localHistogramChild } from "../util/local-counter.js";

export type CallOutcome =
  | "routed"
  | "not_found"
  | "gone"
  | "rejected_acl"
  | "rate_limited"
  | "failed"
  | "invalid_number"
  | "too_many_hops"
  | "cancelled"
  | "draining"
  | "loop"
  | "challenged"
  | "auth_failed"
  | "caller_id_refused"
  | "no_route"
  | "stir_failed";

type Inc = { inc(v?: number): void };
type Obs = { observe(v: number): void };

/** Labelled children cached in nested maps: no label hashing per call. */
function cache2<T>(make: (a: string, b: string) => T): (a: string, b: string) => T {
  const m = new Map<string, Map<string, T>>();
  return (a0, b) => {
    const a = partyLabel(a0);
    let inner = m.get(a);
    if (inner === undefined) m.set(a, (inner = new Map()));
    let c = inner.get(b);
    if (c === undefined) inner.set(b, (c = make(a, b)));
    return c;
  };
}

export class VoiceMetrics {
  /** didgate_sip_requests_total{trunk,method} child. */
  readonly request: (trunk: string, method: string) => Inc;
  readonly final: (trunk: string, code: string) => Inc;
  readonly call: (trunk: string, outcome: string) => Inc;
  readonly setupOf: (trunk: string, _: string) => Obs;
  readonly failoverOf: (trunk: string, _: string) => Inc;

  readonly requests: Counter<"trunk" | "method">;
  readonly finals: Counter<"trunk" | "code">;
  readonly calls: Counter<"trunk" | "outcome">;
  readonly setup: Histogram<"trunk">;
  readonly failovers: Counter<"trunk">;
  readonly targetsDown: Gauge;
  /** didgate_sip_forged_requests_total{reason}: in-dialog requests refused (reason: ForgedReason). */
  readonly forged: Counter<"reason">;
  /** didgate_sip_refused_total{transport}: requests and connections from unknown sources refused. */
  readonly refused: Counter<"transport">;
  /** Cached children of forged / refused (no label hashing per packet during a flood). */
  readonly forgedOf: (reason: string, _: string) => Inc;
  readonly refusedOf: (transport: string, _: string) => Inc;
  readonly inflight: Gauge;
  /** didgate_sip_inflight_invites as of now: set per call here, copied into the gauge at scrape. */
  inflightNow = 0;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({ name: "didgate_sip_requests_total", help: "SIP requests received by the edge, by trunk and method", labelNames: ["trunk", "method"], registers });
    this.finals = new Counter({ name: "didgate_sip_final_responses_total", help: "Final responses sent upstream to trunks, by trunk and code", labelNames: ["trunk", "code"], registers });
    this.calls = new Counter({ name: "didgate_calls_total", help: "Initial INVITEs by outcome", labelNames: ["trunk", "outcome"], registers });
    this.setup = new Histogram({
      name: "didgate_call_setup_seconds",
      help: "INVITE received to final response sent upstream",
      labelNames: ["trunk"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.failovers = new Counter({ name: "didgate_call_failovers_total", help: "Calls moved on to a next target", labelNames: ["trunk"], registers });
    this.targetsDown = new Gauge({ name: "didgate_sip_targets_down", help: "SIP targets currently marked down (probing or suspect after a timeout)", registers, aggregator: "max" });
    this.request = cache2((trunk, method) => localChild(this.requests, { trunk, method }));
    this.final = cache2((trunk, code) => localChild(this.finals, { trunk, code }));
    this.call = cache2((trunk, outcome) => localChild(this.calls, { trunk, outcome }));
    this.setupOf = cache2((trunk) => localHistogramChild(this.setup, { trunk }));
    this.failoverOf = cache2((trunk) => this.failovers.labels({ trunk }));
    this.forged = new Counter({
      name: "didgate_sip_forged_requests_total",
      help: "In-dialog requests refused: no Route of ours, no or a bad dialog token, tags or next hop not of the dialog, wrong direction",
      labelNames: ["reason"],
      registers,
    });
    this.refused = new Counter({ name: "didgate_sip_refused_total", help: "Requests, packets and connections from sources that are not trunks, refused or dropped", labelNames: ["transport"], registers });
    this.forgedOf = cache2((reason) => this.forged.labels({ reason }));
    this.refusedOf = cache2((transport) => this.refused.labels({ transport }));
    const self = this;
    this.inflight = new Gauge({
      name: "didgate_sip_inflight_invites", help: "Initial INVITEs being routed (no final response upstream yet)", registers,
      collect() {
        this.set(self.inflightNow);
      },
    });
  }
}
