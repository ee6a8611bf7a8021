/** sipp as a phone that registers with didgate's registrar (test/edge/scenarios/phone_register.xml). */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startSipp } from "../helpers/sipp.js";
import { SCENARIOS, type Party } from "./sip-util.js";

/** The phones' address: not a trunk. */
export const PHONE_IP = "127.0.0.8";
export const DOMAIN = "sip.example.net";

/** sipp as a phone on PHONE_IP:port registering (phone_register.xml); resolves when sipp exits. */
export function register(edgePort: number, port: number, o: { user: string; pass: string; expires: number; final: number; transport?: "udp" | "tcp"; ip?: string; /** One REGISTER without credentials (no challenge expected). */ once?: boolean; /** The whole Contact header value (default: the phone's own address). */ contact?: string }): Party {
  const name = o.once === true ? "phone_register_once.xml" : "phone_register.xml";
  let text = fs.readFileSync(path.join(SCENARIOS, name), "latin1");
  const subst: Record<string, string> = { USER: o.user, PASS: o.pass, DOMAIN, EXPIRES: String(o.expires), FINAL: String(o.final), CONTACT: o.contact ?? `<sip:${o.user}@[local_ip]:[local_port];transport=[transport]>` };
  for (const [k, v] of Object.entries(subst)) text = text.split(`@${k}@`).join(v);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "didgate-scn-"));
  const f = path.join(dir, name);
  fs.writeFileSync(f, text, "latin1");
  const args = ["-sf", f, `127.0.0.1:${edgePort}`, "-i", o.ip ?? PHONE_IP, "-p", String(port), "-t", o.transport === "tcp" ? "t1" : "u1", "-m", "1", "-trace_msg", "-trace_err", "-timeout", "10s", "-timeout_error"];
  const proc = startSipp({ args, timeoutMs: 15_000 });
  return {
    proc,
    done: proc.done,
    trace: () => [],
    received: () => [],
    receivedResponses: () => [],
  };
}

