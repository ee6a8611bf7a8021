import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DigestAuth, digestHa1, digestResponse, ncHex, nonceBinding, parseDigestCredentials } from "../../src/sip/digest.js";

const SECRET = Buffer.from("0123456789abcdef0123456789abcdef");

function authHeader(p: { user: string; realm: string; nonce: string; uri: string; response: string; alg?: string; nc?: number; cnonce?: string; qop?: boolean }): string {
  const qop = p.qop ?? true;
  return (
    `Digest username="${p.user}", realm="${p.realm}", nonce="${p.nonce}", uri="${p.uri}", response="${p.response}"` +
    (p.alg ? `, algorithm=${p.alg}` : "") +
    (qop ? `, qop=auth, nc=${ncHex(p.nc ?? 1)}, cnonce="${p.cnonce ?? "abc"}"` : "")
  );
}

function answer(a: DigestAuth, alg: "MD5" | "SHA-256", user: string, pw: string, method: string, uri: string, nonce: string, nc = 1, qop = true): string {
  const r = digestResponse(alg, user, a.realm, pw, method, uri, nonce, qop ? "auth" : null, nc, "abc");
  return authHeader({ user, realm: a.realm, nonce, uri, response: r, alg, nc, qop });
}

function nonceOf(challenge: string): string {
  return /nonce="([^"]+)"/.exec(challenge)![1]!;
}

describe("digest authentication", () => {
  it("computes the RFC 7616 section 3.9.1 example responses (MD5 and SHA-256)", () => {
    const args = ["Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "auth", 1, "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"] as const;
    expect(digestResponse("MD5", ...args)).toBe("8ca523f5e9506fed4657c9700eebdbec");
    expect(digestResponse("SHA-256", ...args)).toBe("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
  });

  it("offers SHA-256 before MD5 with qop=auth, and accepts both", () => {
    const a = new DigestAuth({ realm: "didgate", secret: SECRET });
    const ch = a.challenge();
    expect(ch).toHaveLength(2);
    expect(ch[0]).toMatch(/algorithm=SHA-256/);
    expect(ch[1]).toMatch(/algorithm=MD5/);
    expect(ch[0]).toMatch(/qop="auth"/);
    const pw = (u: string): string | undefined => (u === "acme" ? "s3cret" : undefined);
    for (const alg of ["SHA-256", "MD5"] as const) {
      const n = nonceOf(a.challenge()[0]!);
      expect(a.verify("INVITE", answer(a, alg, "acme", "s3cret", "INVITE", "sip:+441@x", n), pw)).toEqual({ ok: true, username: "acme" });
    }
  });

  it("checks credentials against a stored HA1 per algorithm (no password kept)", () => {
    const a = new DigestAuth({ realm: "didgate", secret: SECRET });
    const stored = { ha1: { MD5: digestHa1("MD5", "acme", "didgate", "s3cret"), "SHA-256": digestHa1("SHA-256", "acme", "didgate", "s3cret") } };
    expect(stored.ha1.MD5).toMatch(/^[0-9a-f]{32}$/);
    for (const alg of ["SHA-256", "MD5"] as const) {
      const n = nonceOf(a.challenge()[0]!);
      expect(a.verify("REGISTER", answer(a, alg, "acme", "s3cret", "REGISTER", "sip:d", n), () => stored)).toEqual({ ok: true, username: "acme" });
      const m = nonceOf(a.challenge()[0]!);
      expect(a.verify("REGISTER", answer(a, alg, "acme", "guess", "REGISTER", "sip:d", m), () => stored)).toEqual({ ok: false, reason: "bad_credentials" });
    }
    // an algorithm the user has no HA1 for: the same outcome as a wrong password
    const n = nonceOf(a.challenge()[0]!);
    expect(a.verify("REGISTER", answer(a, "MD5", "acme", "s3cret", "REGISTER", "sip:d", n), () => ({ ha1: { "SHA-256": stored.ha1["SHA-256"] } }))).toEqual({ ok: false, reason: "bad_credentials" });
  });

  it("refuses a wrong password and an unknown user with the same outcome", () => {
    const a = new DigestAuth({ realm: "didgate", secret: SECRET });
    const pw = (u: string): string | undefined => (u === "acme" ? "s3cret" : undefined);
    const n = nonceOf(a.challenge()[0]!);
    const wrong = a.verify("INVITE", answer(a, "SHA-256", "acme", "guess", "INVITE", "sip:x@y", n), pw);
    const unknown = a.verify("INVITE", answer(a, "SHA-256", "nobody", "s3cret", "INVITE", "sip:x@y", n, 2), pw);
    expect(wrong).toEqual({ ok: false, reason: "bad_credentials" });
    expect(unknown).toEqual(wrong);
  });

  it("a nonce is good only for the address and Call-ID it was issued to, on any instance with the secret", () => {
    const a = new DigestAuth({ realm: "didgate", secret: SECRET });
    const b = new DigestAuth({ realm: "didgate", secret: SECRET });
    const pw = (u: string): string | undefined => (u === "acme" ? "s3cret" : undefined);
    const bind = nonceBinding("192.0.2.10", "call-1@pbx");
    const n = nonceOf(a.challenge(false, bind)[0]!);
    const cred = answer(a, "SHA-256", "acme", "s3cret", "INVITE", "sip:+15125550100@edge", n);
    // captured and replayed: from another address, or for another call, on another edge or worker:
    // stale (a new challenge with stale=true, as for a phone reusing its REGISTER nonce)
    expect(b.verify("INVITE", cred, pw, nonceBinding("203.0.113.66", "call-1@pbx"))).toEqual({ ok: false, reason: "stale" });
    expect(b.verify("INVITE", cred, pw, nonceBinding("192.0.2.10", "call-2@pbx"))).toEqual({ ok: false, reason: "stale" });
    expect(b.verify("INVITE", cred, pw)).toEqual({ ok: false, reason: "stale" });
    // the client itself, on any instance
    expect(b.verify("INVITE", cred, pw, bind)).toEqual({ ok: true, username: "acme" });
  });

  it("refuses a replayed nonce-count, accepts a higher one, and a qop-less nonce only once", () => {
    const a = new DigestAuth({ realm: "didgate", secret: SECRET });
    const pw = (): string => "pw";
    const n = nonceOf(a.challenge()[0]!);
    const h1 = answer(a, "MD5", "u", "pw", "INVITE", "sip:a@b", n, 1);
    expect(a.verify("INVITE", h1, pw).ok).toBe(true);
    expect(a.verify("INVITE", h1, pw)).toEqual({ ok: false, reason: "replay" });
    expect(a.verify("INVITE", answer(a, "MD5", "u", "pw", "INVITE", "sip:a@b", n, 2), pw).ok).toBe(true);
    expect(a.verify("INVITE", answer(a, "MD5", "u", "pw", "INVITE", "sip:a@b", n, 2), pw)).toEqual({ ok: false, reason: "replay" });
    const m = nonceOf(a.challenge()[0]!);
    const plain = answer(a, "MD5", "u", "pw", "INVITE", "sip:a@b", m, 0, false);
    expect(a.verify("INVITE", plain, pw).ok).toBe(true);
    expect(a.verify("INVITE", plain, pw)).toEqual({ ok: false, reason: "replay" });
  });

  it("nonces expire (stale), cannot be forged (a new challenge, stale too: a nonce made for another address or call looks the same), and are accepted by another instance with the same secret", () => {
    let now = 1_000_000;
    const a = new DigestAuth({ realm: "didgate", secret: SECRET, nonceTtlMs: 30_000, now: () => now });
    const b = new DigestAuth({ realm: "didgate", secret: SECRET, now: () => now });
    const other = new DigestAuth({ realm: "didgate", secret: Buffer.from("another secret of 32 bytes......"), now: () => now });
    const pw = (): string => "pw";
    const n = nonceOf(a.challenge()[0]!);
    expect(b.verify("BYE", answer(b, "MD5", "u", "pw", "BYE", "sip:a@b", n), pw).ok).toBe(true);
    expect(other.verify("BYE", answer(other, "MD5", "u", "pw", "BYE", "sip:a@b", n), pw)).toEqual({ ok: false, reason: "stale" });
    const forged = n.slice(0, 40) + (n[40] === "A" ? "B" : "A") + n.slice(41);
    expect(a.verify("BYE", answer(a, "MD5", "u", "pw", "BYE", "sip:a@b", forged), pw)).toEqual({ ok: false, reason: "stale" });
    expect(a.verify("BYE", answer(a, "MD5", "u", "pw", "BYE", "sip:a@b", "not-a-nonce-of-ours"), pw)).toEqual({ ok: false, reason: "bad_nonce" });
    now += 31_000;
    expect(a.verify("BYE", answer(a, "MD5", "u", "pw", "BYE", "sip:a@b", n, 5), pw)).toEqual({ ok: false, reason: "stale" });
    expect(a.challenge(true)[0]).toMatch(/stale=true/);
  });

  it("tells missing from malformed credentials; the method is part of the digest", () => {
    const a = new DigestAuth({ realm: "didgate", secret: SECRET });
    const pw = (): string => "pw";
    expect(a.verify("INVITE", undefined, pw)).toEqual({ ok: false, reason: "missing" });
    expect(a.verify("INVITE", 'Basic dXNlcjpwdw==', pw)).toEqual({ ok: false, reason: "malformed" });
    expect(a.verify("INVITE", 'Digest username="u", realm="elsewhere", nonce="x", uri="sip:a", response="00"', pw)).toEqual({ ok: false, reason: "missing" });
    const n = nonceOf(a.challenge()[0]!);
    expect(a.verify("INVITE", answer(a, "MD5", "u", "pw", "BYE", "sip:a@b", n), pw)).toEqual({ ok: false, reason: "bad_credentials" });
  });

  it("never throws on arbitrary header text", () => {
    const a = new DigestAuth({ realm: "didgate", secret: SECRET });
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string().map((s) => "Digest " + s), fc.stringMatching(/^Digest( [a-z]{1,8}="?[ -~]{0,12}"?,?){0,8}$/)), (s) => {
        parseDigestCredentials(s);
        const r = a.verify("INVITE", s, () => "pw");
        expect(r.ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
});
