/** sipp as a phone that registers with didgate's registrar (test/edge/scenarios/phone_register.xml). */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startSipp } from "../helpers/sipp.js";
import { SCENARIOS, startUac, type Party } from "./sip-util.js";

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


const PHONE_FROM = `"Alice Phone" <sip:@FROMUSER@@${DOMAIN}>;tag=[pid]SIPpTag00[call_number]`;

/** The phone's ACK of the 200 and, `holdMs` later, its BYE (through didgate's Record-Route). */
const ackBye = (holdMs: number): string => `<send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: ${PHONE_FROM}
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Contact: <sip:phone@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="${holdMs}"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: ${PHONE_FROM}
      [last_To:]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Contact: <sip:phone@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>`;

/** The ACK of a non-2xx final answer: hop by hop, the second INVITE's branch (message 4). */
const ACK_FAIL = `<send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-4];rport
      From: ${PHONE_FROM}
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="200"/>`;

/**
 * sipp as a registered user's phone on PHONE_IP calling out through the edge (phone_call.xml):
 * From `from` (default the user) at DOMAIN, 407 answered with user/pass, then `final`; after a 200
 * the phone ACKs and hangs up (`holdMs` later).
 */
export function phoneCall(edgePort: number, o: { user: string; pass: string; from?: string; service: string; final: number; headers?: string; /** ms between the ACK and the BYE of an answered call */ holdMs?: number }): Promise<Party> {
  return startUac("phone_call.xml", "udp", edgePort, {
    service: o.service,
    ip: PHONE_IP,
    subst: { USER: o.user, PASS: o.pass, FROMUSER: o.from ?? o.user, DOMAIN, HEADERS: o.headers ?? "User-Agent: sipp-phone", FINAL: String(o.final), REST: o.final === 200 ? ackBye(o.holdMs ?? 200) : ACK_FAIL },
  });
}
