// A webhook receiver that verifies didgate's Standard Webhooks signature.
// Usage: WEBHOOK_SECRET=whsec_... node docs/examples/receiver.mjs [PORT]   (default 8080)
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const port = Number(process.argv[2] ?? 8080);
const secret = process.env.WEBHOOK_SECRET ?? "";
// whsec_<base64>: the key is the decoded bytes (Standard Webhooks); any other secret: its UTF-8 bytes.
const key = secret.startsWith("whsec_") ? Buffer.from(secret.slice(6), "base64") : Buffer.from(secret);

function verify(headers, body) {
  const id = headers["webhook-id"];
  const ts = headers["webhook-timestamp"];
  const sigs = String(headers["webhook-signature"] ?? "").split(" ");
  if (!id || !ts || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const expected = createHmac("sha256", key).update(`${id}.${ts}.`).update(body).digest();
  return sigs.some((s) => {
    const [v, b64] = s.split(",");
    const got = Buffer.from(b64 ?? "", "base64");
    return v === "v1" && got.length === expected.length && timingSafeEqual(got, expected);
  });
}

createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const ok = secret === "" || verify(req.headers, body);
    console.log(ok ? "verified" : "BAD SIGNATURE", req.url, req.headers["webhook-id"], body.toString());
    res.writeHead(ok ? 204 : 401).end();
  });
}).listen(port, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${port}`));
