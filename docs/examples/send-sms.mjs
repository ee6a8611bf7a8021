// Send one SMS to didgate as a carrier would: bind to didgate's SMPP server and send a deliver_sm.
// Usage: node docs/examples/send-sms.mjs [TO] [TEXT]    (uses the `smpp` package: npm ci installs it)
// The bundled config has the carrier account smsc-local / changeme, allowed from 127.0.0.1.
import smpp from "smpp";

const [to = "5125550100", text = "Hello from the README"] = process.argv.slice(2);
const session = smpp.connect({ url: "smpp://127.0.0.1:2775" });
session.on("error", (e) => {
  console.error("smpp error:", e.message);
  process.exit(1);
});
session.bind_transceiver({ system_id: "smsc-local", password: "changeme" }, (bind) => {
  if (bind.command_status !== 0) {
    console.error(`bind refused: status 0x${bind.command_status.toString(16)}`);
    process.exit(1);
  }
  session.deliver_sm({ source_addr: "447700900123", source_addr_ton: 1, destination_addr: to, short_message: text }, (resp) => {
    console.log(`deliver_sm_resp command_status=0x${resp.command_status.toString(16).padStart(2, "0")}`);
    session.unbind(() => session.close());
  });
});
