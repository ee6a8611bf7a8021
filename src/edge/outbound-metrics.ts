/**
 * Metrics of outbound calls, per customer and per carrier. Label values are configured names
 * (customers, carriers) and fixed words: a closed set.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { CallCounter } from "./calls.js";

export type PartyKind = "customer" | "carrier";

/** Failure classes (label `class`). */
export type FailClass = "3xx" | "4xx" | "5xx" | "6xx" | "timeout" | "transport" | "cancelled";

export function failClass(code: number): FailClass {
  if (code >= 600) return "6xx";
  if (code >= 500) return "5xx";
  if (code >= 400) return "4xx";
  return "3xx";
}

type Inc = { inc(v?: number): void };

/**
 * The label of a customer or trunk name: configured names as they are, every registered user
 * calling out ("USER@DOMAIN", a name no config entry can have) as "registrar", so that users
 * created through the API add no series.
 */
export function partyLabel(name: string): string {
  return name.indexOf("@") >= 0 ? "registrar" : name;
}

export class OutboundMetrics {
  readonly attempts: Counter<"kind" | "name">;
  readonly answered: Counter<"kind" | "name">;
  readonly failed: Counter<"kind" | "name" | "class">;
  readonly cpsRejections: Counter<"kind" | "name">;
  readonly limitRejections: Counter<"kind" | "name">;
  readonly active: Gauge<"kind" | "name">;
  private readonly cache = new Map<string, Inc>();

  constructor(registry: Registry, counter: () => CallCounter) {
    const registers = [registry];
    const labelNames = ["kind", "name"] as const;
    this.attempts = new Counter({ name: "didgate_outbound_attempts_total", help: "Outbound call attempts: calls from a customer, INVITEs sent to a carrier", labelNames, registers });
    this.answered = new Counter({ name: "didgate_outbound_answered_total", help: "Outbound calls answered (2xx), per customer and per carrier", labelNames, registers });
    this.failed = new Counter({ name: "didgate_outbound_failed_total", help: "Outbound call attempts that failed, by class of the answer (3xx-6xx, timeout, transport, cancelled)", labelNames: ["kind", "name", "class"], registers });
    this.cpsRejections = new Counter({ name: "didgate_outbound_cps_rejections_total", help: "Outbound calls refused (customer) or passed over (carrier) for being over the calls-per-second limit", labelNames, registers });
    this.limitRejections = new Counter({ name: "didgate_outbound_limit_rejections_total", help: "Outbound calls refused (customer) or passed over (carrier) for being at max_calls", labelNames, registers });
    this.active = new Gauge({
      name: "didgate_outbound_calls_active",
      help: "Calls holding a max_calls slot (in setup or answered), per customer and carrier",
      labelNames,
      registers,
      collect() {
        this.reset();
        const c = counter();
        for (const key of c.keys()) this.labels({ kind: key.startsWith("c:") ? "customer" : "carrier", name: partyLabel(key.slice(2)) }).inc(c.count(key));
      },
    });
  }

  private child(which: "attempts" | "answered" | "cps" | "limit", kind: PartyKind, name0: string): Inc {
    const name = partyLabel(name0);
    const k = which + "\0" + kind + "\0" + name;
    let c = this.cache.get(k);
    if (c === undefined) {
      const m = which === "attempts" ? this.attempts : which === "answered" ? this.answered : which === "cps" ? this.cpsRejections : this.limitRejections;
      this.cache.set(k, (c = m.labels({ kind, name })));
    }
    return c;
  }

  attempt(kind: PartyKind, name: string): void {
    this.child("attempts", kind, name).inc();
  }
  answer(kind: PartyKind, name: string): void {
    this.child("answered", kind, name).inc();
  }
  cps(kind: PartyKind, name: string): void {
    this.child("cps", kind, name).inc();
  }
  limit(kind: PartyKind, name: string): void {
    this.child("limit", kind, name).inc();
  }
  fail(kind: PartyKind, name: string, cls: FailClass): void {
    this.failed.labels({ kind, name: partyLabel(name), class: cls }).inc();
  }
}
