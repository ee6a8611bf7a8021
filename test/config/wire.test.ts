/**
 * The config border of the voice edge (src/config/wire.ts): what VoiceSettings holds of a
 * validated config, and a SIGHUP's sip keys: which the edge takes live (checked on a VoiceEdge over
 * the fake stack) and which are reported as needing a restart.
 */
import { hostname } from "node:os";
import pino from "pino";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { reloadVoice, voiceSettings } from "../../src/config/wire.js";
import { VoiceEdge } from "../../src/edge/voice.js";
import { Decider } from "../../src/routing/decide.js";
import type { Route } from "../../src/routing/route.js";
import { RouteStore, RouteTable } from "../../src/routing/table.js";
import { DialogSigner } from "../../src/sip/index.js";
import { FakeStack, optionsRequest, STACK_ADDRESS, STACK_PORT } from "../edge/fake-stack.js";

const TRUNK_IP = "198.51.100.10";
const NEW_TRUNK_IP = "198.51.100.20";

function config(over: Record<string, unknown> = {}, sip: Record<string, unknown> = {}): Config {
  const v = validateConfig({
    sip: {
      listen: [`udp://${STACK_ADDRESS}:${STACK_PORT}`],
      trunks: [{ name: "carrier", sources: [TRUNK_IP], country_code: "1" }],
      registrar: { domain: "pbx.example.net", users: [{ user: "alice", tenant: "acme", password: "wonderland" }] },
      ...sip,
    },
    smpp: { listen: null },
    log: { level: "silent" },
    ...over,
  });
  if (!v.ok) throw new Error(v.errors.join("\n"));
  return v.config;
}

const edges: VoiceEdge[] = [];
afterEach(async () => {
  for (const e of edges.splice(0)) await e.close();
});

async function edgeOf(cfg: Config) {
  const stack = new FakeStack();
  const edge = new VoiceEdge({
    createStack: stack.create,
    signer: new DialogSigner(["a test secret of at least 32 characters"]),
    settings: voiceSettings(cfg),
    store: new RouteStore(new RouteTable<Route>()),
    decider: new Decider({ random: () => 0 }),
    logger: pino({ level: "silent" }),
    registry: new Registry(),
    now: () => Date.parse("2026-03-02T10:00:00Z"),
  });
  edges.push(edge);
  await edge.start();
  return { edge, stack };
}

describe("voiceSettings", () => {
  it("holds the sip keys the edge reads, the Redis prefix and the edge id; not the stack's listeners' TLS, timers or secrets", () => {
    const cfg = config({ instance_id: "edge-7", routes: { redis: { url: "redis://127.0.0.1:1", prefix: "dg:" } } }, { invite_timeout_s: 3, gone_status: 404, dialog_secret: "a dialog secret of 16+ chars" });
    const s = voiceSettings(cfg);
    expect(s.edgeId).toBe("edge-7");
    expect(s.redisPrefix).toBe("dg:");
    expect(s.invite_timeout_s).toBe(3);
    expect(s.gone_status).toBe(404);
    expect(s.trunks.map((t) => t.name)).toEqual(["carrier"]);
    expect(s.registrar?.domain).toBe("pbx.example.net");
    expect(s.auth).toEqual(cfg.sip.auth);
    expect(s.listen).toEqual(cfg.sip.listen);
    for (const k of ["tls", "timers", "tcp", "dialog_secret", "dialog_secret_previous", "advertise"]) expect(Object.keys(s)).not.toContain(k);
  });

  it("without routes.redis: no prefix (nothing shared); without instance_id the edge is host:pid", () => {
    const s = voiceSettings(config({}, { registrar: undefined }));
    expect(s.redisPrefix).toBeUndefined();
    expect("redisPrefix" in s).toBe(false);
    expect("registrar" in s).toBe(false);
    expect(s.edgeId).toBe(`${hostname()}:${process.pid}`);
  });
});

describe("reloadVoice", () => {
  it("an unchanged sip section: nothing applied, nothing refused", async () => {
    const cfg = config();
    const { edge } = await edgeOf(cfg);
    expect(reloadVoice(edge, cfg, config())).toEqual({ applied: [], refused: [] });
  });

  it("a new trunk is taken live: its OPTIONS get 200 after the reload, none before", async () => {
    const cfg = config();
    const { edge, stack } = await edgeOf(cfg);
    stack.receive(optionsRequest(NEW_TRUNK_IP), NEW_TRUNK_IP);
    expect(stack.statuses()).toEqual([]);
    const next = config({}, { trunks: [{ name: "carrier", sources: [TRUNK_IP, NEW_TRUNK_IP], country_code: "1" }] });
    expect(reloadVoice(edge, cfg, next)).toEqual({ applied: ["sip (trunks, limits)"], refused: [] });
    stack.receive(optionsRequest(NEW_TRUNK_IP), NEW_TRUNK_IP);
    expect(stack.statuses()).toEqual([200]);
    expect(edge.status().trunks.map((t) => t.name)).toEqual(["carrier"]);
  });

  it("each restart-only key is refused by name (the rest of the change still applies)", async () => {
    const cfg = config();
    const { edge } = await edgeOf(cfg);
    const cases: [Record<string, unknown>, string][] = [
      [{ listen: ["udp://192.0.2.1:5070"] }, "sip.listen"],
      [{ advertise: "203.0.113.1" }, "sip.advertise"],
      [{ tls: { cert: "c.pem", key: "k.pem" } }, "sip.tls"],
      [{ timers: { t1_ms: 250 } }, "sip.timers"],
      [{ tcp: { max_connections: 10 } }, "sip.tcp"],
      [{ dialog_secret: "another dialog secret" }, "sip.dialog_secret"],
      [{ dialog_secret_previous: ["an older dialog secret"] }, "sip.dialog_secret"],
      [{ dns_servers: ["192.0.2.53"] }, "sip.dns_servers"],
    ];
    for (const [sip, key] of cases) {
      expect(reloadVoice(edge, cfg, config({}, sip)), key).toEqual({ applied: ["sip (trunks, limits)"], refused: [key] });
    }
    // the worker count (a valid file with more workers also names routes.redis; only sip is compared here)
    expect(reloadVoice(edge, cfg, { ...cfg, sip: { ...cfg.sip, workers: 2 } })).toEqual({ applied: ["sip (trunks, limits)"], refused: ["sip.workers"] });
  });

  it("registrar: users change live, any other registrar key is refused", async () => {
    const cfg = config();
    const { edge } = await edgeOf(cfg);
    const users = [
      { user: "alice", tenant: "acme", password: "wonderland" },
      { user: "bob", tenant: "acme", password: "builder-pass" },
    ];
    expect(await edge.registrar!.show("bob")).toBeUndefined();
    expect(reloadVoice(edge, cfg, config({}, { registrar: { domain: "pbx.example.net", users } })).refused).toEqual([]);
    expect(await edge.registrar!.show("bob")).toMatchObject({ user: "bob", tenant: "acme" });
    const other = reloadVoice(edge, cfg, config({}, { registrar: { domain: "other.example.net", users } }));
    expect(other.refused).toEqual(["sip.registrar (all but users)"]);
  });

  it("without a running voice edge any sip change is refused, no change is not", () => {
    const cfg = config();
    expect(reloadVoice(undefined, cfg, config({}, { invite_timeout_s: 2 }))).toEqual({ applied: [], refused: ["sip: SIP is not running (sip.listen was empty at start)"] });
    expect(reloadVoice(undefined, cfg, config())).toEqual({ applied: [], refused: [] });
  });
});
