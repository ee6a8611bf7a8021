/**
 * Outbound SMS in spool mode on a real 3-master Redis Cluster (hash-tagged prefix "{didgate}:"):
 * each step of a message is one script over several keys (enqueue with the opt-out check, the
 * status history and the cancel index; the claim; the sent note with the carrier ids, status
 * `sent` and the spool acknowledgement), which Cluster runs only when they share a slot. An app's
 * submit_sm reaches the SMSC with its history queued → sent, an opt-out in Redis refuses, a queued
 * message is cancelled, and an HTTP message shows its history. didgate runs as a child process
 * from dist/ (npm run build first).
 */
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cluster } from "ioredis";
import YAML from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisRouteWriter } from "../../src/routing/sources/redis-writer.js";
import { tempDir, waitFor } from "../helpers/app.js";
import { freePort, startCluster } from "../helpers/redis.js";
import { startSmsc, type SmppPdu, type TestEsme, type TestSmsc } from "../helpers/smsc.js";
import { bindAppWhenUp, kill9, spawnServe } from "../helpers/serve.js";

const P = "{didgate}:";
const TOKEN = "acme-token-0123456789abcdef";

let cluster: Awaited<ReturnType<typeof startCluster>>;
let client: Cluster;
let smsc: TestSmsc;
let child: ChildProcess | undefined;
let esme: TestEsme | undefined;
let smppPort: number;
let apiPort: number;

const texts = (s: TestSmsc): string[] =>
  s.received.filter((p) => p.command === "submit_sm").map((p: SmppPdu) => String((p.short_message as { message: string }).message));
const submit = (to: string, text: string): Promise<SmppPdu> =>
  esme!.send("submit_sm", { source_addr: "15125550100", source_addr_ton: 1, destination_addr: to, dest_addr_ton: 1, short_message: text });
const idOf = (r: SmppPdu): string => String(r.message_id).replace(/\0+$/, "");

beforeAll(async () => {
  cluster = await startCluster();
  client = new Cluster(cluster.nodes.map((n) => ({ host: "127.0.0.1", port: n.port })));
  const w = new RedisRouteWriter(client, { prefix: P, streamMaxlen: 10_000 });
  await w.set("+15125550100", { tenant: "acme", sms: { webhook: "http://127.0.0.1:9/in" } });
  await w.setOutbound("+44*", { sms: ["smsc-b"] });
  // +35: a bind that never comes up (messages stay queued)
  await w.setOutbound("+35*", { sms: ["smsc-never"] });
  smsc = await startSmsc({ idPrefix: "s" });
  smppPort = await freePort();
  apiPort = await freePort();
  const neverPort = await freePort();
  const dir = tempDir();
  const cfgPath = join(dir, "didgate.yaml");
  writeFileSync(
    cfgPath,
    YAML.stringify({
      instance_id: "edge-cluster-1",
      state_dir: dir,
      log: { level: "warn" },
      admin: { listen: "127.0.0.1:0" },
      sip: { listen: [] },
      routes: { redis: { url: cluster.url, prefix: P, snapshot: "" } },
      api: { listen: `127.0.0.1:${apiPort}`, tokens: [{ token: TOKEN, tenant: "acme" }] },
      smpp: {
        listen: `127.0.0.1:${smppPort}`,
        accounts: [{ system_id: "app-1", password: "pw-a", role: "app", tenant: "acme", country_code: "1" }],
        binds: [
          { name: "smsc-b", host: "127.0.0.1", port: smsc.port, system_id: "didgate", password: "pw", reconnect_min_s: 0.2, reconnect_max_s: 1 },
          { name: "smsc-never", host: "127.0.0.1", port: neverPort, system_id: "didgate", password: "pw", reconnect_min_s: 0.2, reconnect_max_s: 0.5 },
        ],
      },
    }),
  );
  child = spawnServe(cfgPath);
  esme = await bindAppWhenUp(smppPort, "app-1", "pw-a", 30_000);
}, 90_000);

afterAll(async () => {
  await esme?.close();
  await kill9(child);
  await smsc?.close();
  client?.disconnect();
  await cluster?.stop();
});

describe("outbound messages in the spool on Redis Cluster", () => {
  it("an app's message reaches the SMSC; its history is queued → sent, its spool entry acknowledged, its index entry gone", async () => {
    const r = await submit("447700900100", "over the cluster");
    expect(r.command_status).toBe(0);
    await waitFor(() => texts(smsc).includes("over the cluster"), 20_000);
    const id = `msg_${idOf(r)}`;
    const h = await waitFor(async () => {
      const l = await client.lrange(`${P}msg:${id}:h`, 0, -1);
      return l.length >= 2 ? l.map((x) => (JSON.parse(x) as { status: string }).status) : undefined;
    }, 10_000);
    expect(h).toEqual(["queued", "sent"]);
    expect(await client.hget(`${P}msg:${id}`, "status")).toBe("sent");
    expect(await client.get(`${P}smsout:job:${id}`)).toBe("smsc-b");
    await waitFor(async () => ((await client.xlen(`${P}inbound`)) === 0 ? true : undefined), 10_000);
    expect(await client.hlen(`${P}smsout:q:app-1:15125550100:447700900100`)).toBe(0);
  }, 60_000);

  it("an opt-out in Redis refuses the recipient (ESME_RX_R_APPN) and writes nothing", async () => {
    await client.sadd(`${P}optout:+15125550100`, "+447700900999");
    const r = await submit("447700900999", "opted out");
    expect(r.command_status).toBe(0x66);
    expect(await client.hlen(`${P}smsout:q:app-1:15125550100:447700900999`)).toBe(0);
    await client.srem(`${P}optout:+15125550100`, "+447700900999");
    expect((await submit("447700900999", "opted in")).command_status).toBe(0);
    await waitFor(() => texts(smsc).includes("opted in"), 20_000);
  }, 60_000);

  it("a queued message is cancelled (query_sm DELETED) and never sent", async () => {
    const r = await submit("35612345678", "to cancel");
    expect(r.command_status).toBe(0);
    const id = idOf(r);
    const q = await esme!.send("query_sm", { message_id: id, source_addr_ton: 1, source_addr: "15125550100" });
    expect([q.command_status, q.message_state]).toEqual([0, 1]);
    const c = await esme!.send("cancel_sm", { message_id: id, source_addr_ton: 1, source_addr: "15125550100" });
    expect(c.command_status).toBe(0);
    const q2 = await esme!.send("query_sm", { message_id: id, source_addr_ton: 1, source_addr: "15125550100" });
    expect([q2.command_status, q2.message_state]).toEqual([0, 4]);
  }, 60_000);

  it("HTTP: 202 once queued; GET /v1/messages shows queued then sent", async () => {
    const post = await fetch(`http://127.0.0.1:${apiPort}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ from: "+15125550100", to: "+447700900300", text: "http over the cluster" }),
    });
    expect(post.status).toBe(202);
    const b = (await post.json()) as { id: string };
    await waitFor(() => texts(smsc).includes("http over the cluster"), 20_000);
    const st = await waitFor(async () => {
      const g = await fetch(`http://127.0.0.1:${apiPort}/v1/messages/${b.id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const j = (await g.json()) as { status: string; history: { status: string }[] };
      return j.status === "sent" ? j : undefined;
    }, 10_000);
    expect(st.history.map((x) => x.status)).toEqual(["queued", "sent"]);
  }, 60_000);
});
