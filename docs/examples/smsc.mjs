// A minimal SMSC for trying outbound messages on loopback: accepts any bind, answers every
// submit_sm with ESME_ROK and prints who it is from and to and its text (one line per part).
// Usage: node docs/examples/smsc.mjs [PORT] [HOST]   (default 2776 on 127.0.0.1)
// Uses didgate's own SMPP session code from dist/ (run `npm run build` first); no extra package.
import net from "node:net";
import pino from "pino";
import { CMD, SmppSession, gsm7Decode, systemClock, ucs2Decode } from "../../dist/src/smpp/index.js";

const [port = "2776", host = "127.0.0.1"] = process.argv.slice(2);
let ids = 0;

/** The text of a part: without its UDH (esm_class 0x40), GSM 03.38 (data_coding 0) or UCS2 (8). */
function textOf(p) {
  const start = (p.esm_class & 0x40) !== 0 && p.short_message.length > 0 ? p.short_message[0] + 1 : 0;
  if (p.data_coding === 8) return ucs2Decode(p.short_message, start);
  if (p.data_coding === 0) return gsm7Decode(p.short_message, start);
  return p.short_message.subarray(start).toString("latin1");
}

const server = net.createServer((socket) => {
  const session = new SmppSession(
    socket,
    "smsc",
    { maxPduLength: 65536, windowOut: 10, windowIn: 10, responseTimeoutMs: 10_000, enquireLinkMs: 0, clock: systemClock, logger: pino({ level: "silent" }) },
    {
      onRequest: (s, p) => {
        if (p.command_id === CMD.bind_transceiver || p.command_id === CMD.bind_transmitter || p.command_id === CMD.bind_receiver) {
          console.log(`bind from ${p.system_id}`);
          return s.respondBind(p, 0, "example-smsc");
        }
        if (p.command_id === CMD.submit_sm) {
          console.log(`submit_sm from=${p.source_addr} to=${p.destination_addr} text=${JSON.stringify(textOf(p))}`);
          return s.respond(p, 0, `x${++ids}`);
        }
        s.respond(p, 0);
      },
      onClose: () => {},
      onPdu: () => {},
    },
  );
  socket.on("error", () => session.close("socket error"));
});
server.listen(Number(port), host, () => console.log(`example SMSC on ${host}:${port}`));
