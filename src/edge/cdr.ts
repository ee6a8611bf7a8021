/**
 * Call detail records: one per call attempt, written when the call ends.
 *
 * A call that never connects (refused, failed, cancelled) gets its record at its final response.
 * A connected call is kept (call id -> draft) until a BYE passes in either direction, which gives
 * the end time and who hung up; one that never sees a BYE is closed after the maximum call length
 * (`end_reason: "max_call_length"`), and calls still up when the edge stops are closed with
 * `end_reason: "edge_stopped"`. The drafts are bounded: past `maxActive` the oldest is closed.
 *
 * Durations: setup_ms from the INVITE to the final response; billable_ms from the 2xx to the BYE.
 */
import { randomUUID } from "node:crypto";
import type { RecordWriter } from "../records/writer.js";
import { isoCache } from "../util/iso-time.js";

export type CallDirection = "inbound" | "outbound" | "forwarded" | "masked" | "onnet";
export type Hangup = "caller" | "callee" | "none" | "timeout" | "edge";

export interface CallStart {
  callId: string;
  direction: CallDirection;
  trunk?: string;
  customer?: string;
  carrier?: string;
  tenant?: string;
  did?: string;
  caller?: string;
  callee?: string;
  routeKey?: string | null;
  /** Epoch ms of the INVITE. */
  inviteAt: number;
  attest?: string;
  verstat?: string;
  /** A masked call: the masking session's id. */
  session?: string;
}

export interface CallFinal {
  /** "uri=code" per target tried. */
  targets: readonly string[];
  code: number;
  outcome: string;
  /** Epoch ms, when known. */
  provisionalAt?: number;
  answerAt?: number;
  finalAt: number;
  carrier?: string;
}

interface Draft {
  start: CallStart;
  final: CallFinal;
}

export interface CallRecordsOptions {
  writer: RecordWriter;
  edge: string;
  now: () => number;
  maxCallMs: number;
  maxActive?: number;
}

export class CallRecords {
  private readonly active = new Map<string, Draft>();
  private readonly timer: NodeJS.Timeout;
  private readonly iso = isoCache();

  constructor(private readonly o: CallRecordsOptions) {
    this.timer = setInterval(() => this.sweep(), Math.min(60_000, Math.max(1000, o.maxCallMs / 10)));
    this.timer.unref();
  }

  get activeCount(): number {
    return this.active.size;
  }

  /** The INVITE got its final response (or was refused by the edge). */
  finished(start: CallStart, final: CallFinal): void {
    if (final.code >= 200 && final.code < 300 && final.answerAt !== undefined) {
      if (this.active.size >= (this.o.maxActive ?? 200_000)) {
        const [id, oldest] = this.active.entries().next().value as [string, Draft];
        this.active.delete(id);
        this.write(oldest, this.o.now(), "edge", "record_table_full");
      }
      this.active.delete(start.callId);
      this.active.set(start.callId, { start, final });
      return;
    }
    this.write({ start, final }, final.finalAt, "none", final.outcome);
  }

  /** A BYE passed for a call; `byCallee`: it was sent by the called side. False: no record of it here. */
  bye(callId: string | undefined, byCallee: boolean): boolean {
    if (callId === undefined) return false;
    const d = this.active.get(callId);
    if (d === undefined) return false;
    this.active.delete(callId);
    this.write(d, this.o.now(), byCallee ? "callee" : "caller", "bye");
    return true;
  }

  /** Closes calls past the maximum call length. */
  sweep(): void {
    const now = this.o.now();
    for (const [id, d] of this.active) {
      if ((d.final.answerAt ?? d.start.inviteAt) + this.o.maxCallMs <= now) {
        this.active.delete(id);
        this.write(d, now, "timeout", "max_call_length");
      }
    }
  }

  /** The edge stops: close what is still up. */
  close(): void {
    clearInterval(this.timer);
    const now = this.o.now();
    for (const d of this.active.values()) this.write(d, now, "edge", "edge_stopped");
    this.active.clear();
  }

  private write(d: Draft, endAt: number, hangup: Hangup, endReason: string): void {
    const s = d.start;
    const f = d.final;
    const iso = (t: number | undefined): string | null => (t === undefined ? null : this.iso(t));
    this.o.writer.write("call", {
      id: randomUUID(),
      direction: s.direction,
      trunk: s.trunk ?? null,
      customer: s.customer ?? null,
      carrier: f.carrier ?? s.carrier ?? null,
      tenant: s.tenant ?? null,
      did: s.did ?? null,
      caller: s.caller ?? null,
      callee: s.callee ?? null,
      route_key: s.routeKey ?? null,
      targets: f.targets.map((t) => {
        const eq = t.lastIndexOf("=");
        return eq < 0 ? { uri: t, result: null } : { uri: t.slice(0, eq), result: t.slice(eq + 1) };
      }),
      final_code: f.code,
      outcome: f.outcome,
      invite_at: iso(s.inviteAt),
      provisional_at: iso(f.provisionalAt),
      answer_at: iso(f.answerAt),
      end_at: iso(endAt),
      setup_ms: Math.max(0, Math.round(f.finalAt - s.inviteAt)),
      billable_ms: f.answerAt === undefined ? 0 : Math.max(0, Math.round(endAt - f.answerAt)),
      hangup,
      end_reason: endReason,
      call_id: s.callId,
      attest: s.attest ?? null,
      verstat: s.verstat ?? null,
      session_id: s.session ?? null,
      edge: this.o.edge,
    });
  }
}
