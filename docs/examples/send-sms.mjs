// Send one SMS to didgate as a carrier would: bind to didgate's SMPP server and send a deliver_sm.
// Usage: node docs/examples/send-sms.mjs [TO] [TEXT] [HOST:PORT] [FROM]   (default 127.0.0.1:2775,
// from 447700900123; FROM is an international number without "+")
// Uses didgate's own SMPP session code from dist/ (run `npm run build` first); no extra package.
// The bundled config has the carrier account smsc-local / changeme, allowed from 127.0.0.1.
import net from "node:net";
import pino from "pino";
import { CMD, Pdu, SmppSession, encodeText, systemClock } from "../../dist/src/smpp/index.js";

const [to = "5125550100", text = "Hello from the README", hostPort = "127.0.0.1:2775", from = "447700900123"] = process.argv.slice(2);
const colon = hostPort.lastIndexOf(":");
const host = hostPort.slice(0, colon) || "127.0.0.1";
const port = Number(hostPort.slice(colon + 1));

const socket = net.connect({ host, port });
socket.on("error", (e) => {
  console.error(`smpp: cannot reach ${host}:${port}: ${e.message}`);
  process.exit(1);
});
await new Promise((resolve) => socket.once("connect", resolve));
const session = new SmppSession(
  socket,
  "esme",
  { maxPduLength: 65536, windowOut: 1, windowIn: 10, responseTimeoutMs: 10_000, enquireLinkMs: 0, clock: systemClock, logger: pino({ level: "silent" }) },
  {
    // didgate may send us receipts or messages on a transceiver bind: acknowledge them.
    onRequest: (s, p) => s.respond(p, 0),
    onClose: () => {},
    onPdu: () => {},
  },
);
const bind = await session.bind("transceiver", { system_id: "smsc-local", password: "changeme" });
if (bind.command_status !== 0) {
  console.error(`bind refused: status 0x${bind.command_status.toString(16)}`);
  process.exit(1);
}
const p = new Pdu(CMD.deliver_sm, 0);
p.source_addr_ton = 1;
p.source_addr_npi = 1;
p.source_addr = from;
p.destination_addr = to;
// GSM 03.38 when the text fits it, else UCS2.
const enc = encodeText(text);
p.data_coding = enc.data_coding;
p.short_message = enc.bytes;
const resp = await session.request(p);
console.log(`deliver_sm_resp command_status=0x${resp.command_status.toString(16).padStart(2, "0")}`);
await session.unbind();
socket.destroy();
