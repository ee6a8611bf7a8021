/**
 * The border between the validated config and the components: each component gets its own
 * settings shape (src/edge/voice-options.ts for the voice edge), mapped here, and a SIGHUP's new
 * config is applied through the same mapping.
 */
import { hostname } from "node:os";
import type { VoiceSettings } from "../edge/voice-options.js";
import type { Config } from "./schema.js";

/** The voice edge's settings of a config. */
export function voiceSettings(config: Config): VoiceSettings {
  const s = config.sip;
  return {
    listen: s.listen,
    trunks: s.trunks,
    customers: s.customers,
    auth: s.auth,
    ...(s.registrar !== undefined ? { registrar: s.registrar } : {}),
    unknown_source: s.unknown_source,
    gone_status: s.gone_status,
    record_route: s.record_route,
    max_call_s: s.max_call_s,
    pingers: s.pingers,
    max_inflight_invites: s.max_inflight_invites,
    ...(s.dns_servers !== undefined ? { dns_servers: s.dns_servers } : {}),
    invite_timeout_s: s.invite_timeout_s,
    flood: s.flood,
    headers: s.headers,
    health: s.health,
    ...(config.routes.redis !== undefined ? { redisPrefix: config.routes.redis.prefix } : {}),
    edgeId: config.instance_id ?? `${hostname()}:${process.pid}`,
  };
}

/** What reloadVoice needs of the voice edge. */
export interface ReloadableVoice {
  reload(settings: VoiceSettings): void;
}

/**
 * SIGHUP for `sip`: the voice edge takes the new settings (trunks, customers, limits, headers,
 * pingers, health, registrar users); what only a restart changes is listed in `refused` (the new
 * values of those are ignored: the stack keeps its listeners, timers and secrets). Without a
 * running voice edge any change of `sip` is refused.
 */
export function reloadVoice(voice: ReloadableVoice | undefined, cur: Config, next: Config): { applied: string[]; refused: string[] } {
  const applied: string[] = [];
  const refused: string[] = [];
  const a = cur.sip;
  const b = next.sip;
  if (voice === undefined) {
    if (!same(a, b)) refused.push("sip: SIP is not running (sip.listen was empty at start)");
    return { applied, refused };
  }
  if (!same(a.listen, b.listen)) refused.push("sip.listen");
  if (a.workers !== b.workers) refused.push("sip.workers");
  if (a.advertise !== b.advertise) refused.push("sip.advertise");
  if (!same(a.tls, b.tls)) refused.push("sip.tls");
  if (!same(a.timers, b.timers)) refused.push("sip.timers");
  if (!same(a.tcp, b.tcp)) refused.push("sip.tcp");
  if (!same(a.dns_servers, b.dns_servers)) refused.push("sip.dns_servers");
  if (a.dialog_secret !== b.dialog_secret || !same(a.dialog_secret_previous, b.dialog_secret_previous)) refused.push("sip.dialog_secret");
  voice.reload(voiceSettings(next));
  if (!same(a.registrar && { ...a.registrar, users: [] }, b.registrar && { ...b.registrar, users: [] })) refused.push("sip.registrar (all but users)");
  if (!same(a, b)) applied.push("sip (trunks, limits)");
  return { applied, refused };
}

function same(x: unknown, y: unknown): boolean {
  return JSON.stringify(x) === JSON.stringify(y);
}
