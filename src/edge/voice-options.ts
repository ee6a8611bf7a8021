/**
 * What the voice edge (VoiceEdge) is configured with: the parts of `sip` it reads, plus where
 * call counts and target health are shared. src/config/wire.ts maps the validated config to it;
 * the edge never sees the config itself.
 */
import type { CustomerSpec } from "./customers.js";
import type { TerminationSpec } from "./carriers.js";
import type { HealthConfig } from "./health.js";
import type { DigestSettings, RegistrarSpec } from "./registrar.js";
import type { TrunkSpec } from "./trunks.js";

export interface VoiceSettings {
  /** sip.listen: the stack is built only when there is at least one listener. */
  listen: readonly string[];
  /** Carrier trunks: inbound (sources, plan, CPS) and termination (the outbound table's carriers). */
  trunks: readonly (TrunkSpec & TerminationSpec)[];
  customers: readonly CustomerSpec[];
  /** Digest authentication of customers and registered users. */
  auth: DigestSettings;
  registrar?: RegistrarSpec | undefined;
  unknown_source: "drop" | "reject";
  /** The answer to a call to a number in quarantine or released. */
  gone_status: number;
  record_route: boolean;
  /** A call counts against max_calls at most this long. */
  max_call_s: number;
  /** Sources whose OPTIONS get 200. */
  pingers: readonly string[];
  max_inflight_invites: number;
  /** DNS servers for targets given by name; unset: the system's. Read once, at start. */
  dns_servers?: readonly string[] | undefined;
  invite_timeout_s: number;
  flood: { per_source_pps: number; max_sources: number };
  headers: { trunk?: string | undefined; route_key?: string | undefined; strip: readonly string[] };
  health: HealthConfig;
  /** routes.redis's key prefix: call counts, target health and registrations are shared under it. */
  redisPrefix?: string | undefined;
  /** This edge's name among the others (instance_id, else host:pid). */
  edgeId: string;
}
