/**
 * The JSON form of a routing decision, shared by `didgate lookup` and `GET /v1/lookup`.
 */
import type { Decision } from "./decide.js";
import type { Decider } from "./decide.js";
import { normalizeNumber, type NumberPlan } from "./number.js";
import type { Route } from "./route.js";
import type { RouteTable } from "./table.js";

export interface LookupRequest {
  number: string;
  caller?: string;
  /** Epoch ms of the call. */
  atMs: number;
  plan?: NumberPlan;
}

export type LookupJson = Record<string, unknown>;

export function explainDecision(d: Decision, atMs: number, caller: string | undefined): LookupJson {
  const why: string[] = [];
  if (d.outcome === "not_found") why.push("no exact key, no prefix and no default route matches");
  else {
    why.push(`matched ${d.kind} key ${d.key}`);
    if (d.outcome === "gone") why.push(`state ${d.state}: a number in this state never routes`);
    else if (d.rule?.type === "callers") why.push(`caller ${caller} matched callers[${d.rule.index}] (${d.rule.match})`);
    else if (d.rule?.type === "schedule") why.push(`time ${d.rule.local} ${d.rule.tz} is inside schedule[${d.rule.index}]`);
    else if (d.outcome === "routed") why.push("no caller rule or schedule window applied: default targets");
    else if (d.outcome === "no_targets") why.push("the route has no voice targets for this call");
  }
  const route: Route | null = d.route;
  return {
    number: d.number,
    outcome: d.outcome,
    key: d.key,
    kind: d.kind,
    state: d.state,
    tenant: route?.tenant ?? null,
    targets: d.targets.map((t) => ({ uri: t.uri, priority: t.priority, weight: t.weight })),
    rule: d.rule,
    sms: route?.sms ? { webhook: route.sms.webhook ?? null, smpp: route.sms.smpp ?? null } : null,
    caller: caller ?? null,
    at: new Date(atMs).toISOString(),
    why,
  };
}

/** Normalise and decide; an invalid number gives { error }. */
export function lookupJson(table: RouteTable<Route>, decider: Decider, req: LookupRequest): { ok: true; json: LookupJson } | { ok: false; error: string } {
  const n = normalizeNumber(req.number, req.plan);
  if (!n.ok) return { ok: false, error: `number ${JSON.stringify(req.number)}: ${n.error}` };
  let caller: string | undefined;
  if (req.caller !== undefined && req.caller !== "") {
    const c = normalizeNumber(req.caller, req.plan);
    if (!c.ok) return { ok: false, error: `caller ${JSON.stringify(req.caller)}: ${c.error}` };
    caller = c.e164;
  }
  const d = decider.decideVoice(table, n.e164, caller, req.atMs);
  return { ok: true, json: explainDecision(d, req.atMs, caller) };
}
