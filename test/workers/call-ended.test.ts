import { describe, expect, it } from "vitest";
import { CALL_ID_MAX, callEnded } from "../../src/workers/cluster.js";

describe("call-ended messages between the workers", () => {
  it("pass a Call-ID up to CALL_ID_MAX characters and the side that hung up; anything else is dropped", () => {
    expect(callEnded({ callId: "abc@host", byCallee: true })).toEqual({ callId: "abc@host", byCallee: true });
    expect(callEnded({ callId: "x".repeat(CALL_ID_MAX), byCallee: false })).toEqual({ callId: "x".repeat(CALL_ID_MAX), byCallee: false });
    expect(callEnded({ callId: "x".repeat(CALL_ID_MAX + 1), byCallee: false })).toBeUndefined();
    expect(callEnded({ callId: "", byCallee: false })).toBeUndefined();
    expect(callEnded({ callId: 42, byCallee: false })).toBeUndefined();
    expect(callEnded({ callId: "abc", byCallee: "yes" })).toBeUndefined();
    expect(callEnded({})).toBeUndefined();
  });
});
