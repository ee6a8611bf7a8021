import { describe, expect, it } from "vitest";
import { stopComponents, type Component } from "../../src/util/lifecycle.js";

function recorder() {
  const steps: string[] = [];
  const warnings: { fields: Record<string, unknown>; msg: string }[] = [];
  const log = { warn: (fields: object, msg: string) => void warnings.push({ fields: fields as Record<string, unknown>, msg }) };
  return { steps, warnings, log };
}

describe("stopComponents", () => {
  it("drains every component in order, each after the previous drain ended, then closes them in the same order", async () => {
    const { steps, warnings, log } = recorder();
    const slow = (name: string): Component => ({
      name,
      drain: async (deadline) => {
        steps.push(`${name} drain ${deadline}`);
        await new Promise((r) => setTimeout(r, 5));
        steps.push(`${name} drained`);
      },
      close: async () => void steps.push(`${name} close`),
    });
    await stopComponents([slow("a"), { name: "b", close: async () => void steps.push("b close") }, { name: "c", drain: async () => void steps.push("c drain") }, slow("d")], 1234, log);
    expect(steps).toEqual(["a drain 1234", "a drained", "c drain", "d drain 1234", "d drained", "a close", "b close", "d close"]);
    expect(warnings).toEqual([]);
  });

  it("a drain or close that fails is logged as a warning with the component's name; the others still drain and close", async () => {
    const { steps, warnings, log } = recorder();
    const components: Component[] = [
      { name: "smpp", drain: () => Promise.reject(new Error("socket gone")), close: async () => void steps.push("smpp close") },
      { name: "delivery", drain: async () => void steps.push("delivery drain"), close: () => Promise.reject(new Error("redis down")) },
      {
        name: "admin",
        drain: () => {
          throw new Error("thrown, not rejected");
        },
        close: async () => void steps.push("admin close"),
      },
    ];
    await expect(stopComponents(components, 0, log)).resolves.toBeUndefined();
    expect(steps).toEqual(["delivery drain", "smpp close", "admin close"]);
    expect(warnings).toEqual([
      { fields: { component: "smpp", err: "socket gone" }, msg: "smpp drain" },
      { fields: { component: "admin", err: "thrown, not rejected" }, msg: "admin drain" },
      { fields: { component: "delivery", err: "redis down" }, msg: "delivery close" },
    ]);
  });

  it("no components: nothing to do", async () => {
    const { warnings, log } = recorder();
    await stopComponents([], 0, log);
    expect(warnings).toEqual([]);
  });
});
