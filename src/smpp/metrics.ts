/** prom-client metrics of the SMPP layer, created on the Registry passed in. */
import { Counter, Gauge, type Registry } from "prom-client";
import { CMD, STATUS, commandName } from "./constants.js";

export interface WindowSource {
  /** [peer, direction, in flight] for every live session. */
  windows(): Iterable<[string, "in" | "out", number]>;
  reassemblyBuffers(): number;
  reassemblyBytes(): number;
}

/**
 * Label values are a closed set: command_id and command_status come from the network (before a
 * bind too), so an unknown value is counted as "other" instead of becoming a new series. Each
 * known value has a small index, so the child cache is bounded by the same closed set.
 */
const COMMAND_LABELS: string[] = [];
const COMMAND_INDEX = new Map<number, number>();
for (const id of Object.values(CMD)) {
  COMMAND_INDEX.set(id >>> 0, COMMAND_LABELS.length);
  COMMAND_LABELS.push(commandName(id >>> 0));
}
const OTHER_COMMAND = COMMAND_LABELS.length;
COMMAND_LABELS.push("other");

const STATUS_LABELS: string[] = [];
const STATUS_INDEX = new Map<number, number>();
for (const st of Object.values(STATUS)) {
  STATUS_INDEX.set(st >>> 0, STATUS_LABELS.length);
  STATUS_LABELS.push("0x" + (st >>> 0).toString(16).padStart(2, "0"));
}
const OTHER_STATUS = STATUS_LABELS.length;
STATUS_LABELS.push("other");

/** The command label of a command_id: its name, or "other". */
export function commandLabel(id: number): string {
  return COMMAND_LABELS[COMMAND_INDEX.get(id >>> 0) ?? OTHER_COMMAND]!;
}

/** The status label of a command_status: "0x0b" for a status SMPP defines, else "other". */
export function statusLabel(s: number): string {
  return STATUS_LABELS[STATUS_INDEX.get(s >>> 0) ?? OTHER_STATUS]!;
}

export class SmppMetrics {
  readonly bindState: Gauge<"peer" | "side">;
  readonly binds: Gauge<"peer">;
  readonly pdus: Counter<"peer" | "direction" | "command" | "status">;
  readonly reassemblyBuffers: Gauge;
  readonly reassemblyBytes: Gauge;
  readonly reassemblyIncomplete: Counter<"reason">;
  readonly window: Gauge<"peer" | "direction">;
  readonly inbound: Counter<"peer" | "kind" | "result">;
  readonly bindFailures: Counter<"reason">;
  /** outcome: accepted, unknown_system_id, source_not_allowed, bad_password, locked_out, stopped. */
  readonly outbinds: Counter<"outcome">;
  readonly responseTimeouts: Counter<"peer">;
  readonly reconnects: Counter<"peer">;
  readonly nationalPartsSaved: Counter<"peer">;
  readonly connections: Gauge<"source">;
  readonly connectionsRefused: Counter<"reason">;
  /** Cache of counter children: peer -> (direction, command index, status index) key -> child. */
  private readonly pduChildren = new Map<string, Map<number, ReturnType<Counter<"peer" | "direction" | "command" | "status">["labels"]>>>();

  constructor(registry: Registry, source: WindowSource) {
    const registers = [registry];
    this.bindState = new Gauge({
      name: "didgate_smpp_bind_state",
      help: "1 when the SMPP peer is bound (outbound bind, or at least one bind of a server account), else 0",
      labelNames: ["peer", "side"],
      registers,
    });
    this.binds = new Gauge({
      name: "didgate_smpp_binds",
      help: "Sessions bound per server account",
      labelNames: ["peer"],
      registers,
    });
    this.pdus = new Counter({
      name: "didgate_smpp_pdus_total",
      help: "SMPP PDUs by peer, direction, command and command_status",
      labelNames: ["peer", "direction", "command", "status"],
      registers,
    });
    this.reassemblyBuffers = new Gauge({
      name: "didgate_smpp_reassembly_buffers",
      help: "Concatenated messages waiting for parts",
      registers,
      collect() {
        this.set(source.reassemblyBuffers());
      },
    });
    this.reassemblyBytes = new Gauge({
      name: "didgate_smpp_reassembly_bytes",
      help: "Payload bytes held by reassembly",
      registers,
      collect() {
        this.set(source.reassemblyBytes());
      },
    });
    this.reassemblyIncomplete = new Counter({
      name: "didgate_smpp_reassembly_incomplete_total",
      help: "Concatenated messages delivered incomplete (timeout, evicted for room, shutdown)",
      labelNames: ["reason"],
      registers,
    });
    this.window = new Gauge({
      name: "didgate_smpp_window_in_flight",
      help: "PDUs in flight (awaiting a response) per peer and direction",
      labelNames: ["peer", "direction"],
      registers,
      collect() {
        this.reset();
        const sums = new Map<string, number>();
        for (const [peer, dir, n] of source.windows()) {
          const k = peer + "\u0000" + dir;
          sums.set(k, (sums.get(k) ?? 0) + n);
        }
        for (const [k, n] of sums) {
          const i = k.indexOf("\u0000");
          this.labels(k.slice(0, i), k.slice(i + 1)).set(n);
        }
      },
    });
    this.inbound = new Counter({
      name: "didgate_smpp_inbound_total",
      help: "Inbound messages and receipts by peer, kind (message, part, receipt) and result",
      labelNames: ["peer", "kind", "result"],
      registers,
    });
    this.bindFailures = new Counter({
      name: "didgate_smpp_bind_failures_total",
      help: "Refused binds to didgate's server by reason",
      labelNames: ["reason"],
      registers,
    });
    this.outbinds = new Counter({
      name: "didgate_smpp_outbinds_total",
      help: "Outbinds from SMSCs to didgate's server by outcome (accepted: bound back as the configured bind)",
      labelNames: ["outcome"],
      registers,
    });
    this.responseTimeouts = new Counter({
      name: "didgate_smpp_response_timeouts_total",
      help: "Requests didgate sent that got no response in time",
      labelNames: ["peer"],
      registers,
    });
    this.connections = new Gauge({
      name: "didgate_smpp_connections",
      help: "Open connections to the SMPP server by source: account (in some account's sources) or unknown",
      labelNames: ["source"],
      registers,
    });
    this.connectionsRefused = new Counter({
      name: "didgate_smpp_connections_refused_total",
      help: "Connections to the SMPP server refused at once: limit (global, or the share of unknown sources), source_limit (per address)",
      labelNames: ["reason"],
      registers,
    });
    this.reconnects = new Counter({
      name: "didgate_smpp_reconnects_total",
      help: "Outbound bind reconnection attempts",
      labelNames: ["peer"],
      registers,
    });
    this.nationalPartsSaved = new Counter({
      name: "didgate_smpp_national_parts_saved_total",
      help: "Message parts saved by sending a text through national language shift tables instead of UCS-2 (peers with national_language set)",
      labelNames: ["peer"],
      registers,
    });
  }

  pdu(peer: string, direction: "in" | "out", command_id: number, status: number): void {
    let m = this.pduChildren.get(peer);
    if (m === undefined) {
      m = new Map();
      this.pduChildren.set(peer, m);
    }
    // Indexes of closed sets: the cache holds at most 2 x commands x statuses children per peer.
    const ci = COMMAND_INDEX.get(command_id >>> 0) ?? OTHER_COMMAND;
    const si = STATUS_INDEX.get(status >>> 0) ?? OTHER_STATUS;
    const key = (direction === "in" ? 0 : 1) * 65536 + ci * 256 + si;
    let c = m.get(key);
    if (c === undefined) {
      c = this.pdus.labels(peer, direction, COMMAND_LABELS[ci]!, STATUS_LABELS[si]!);
      m.set(key, c);
    }
    c.inc();
  }
}
