import { describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/load.js";
import { routeKeyPlanError, shortNumberWarning, splitCountry } from "../../src/routing/number-plan.js";

describe("country plans", () => {
  it("splits the country code of listed countries", () => {
    expect(splitCountry("+15125550100")).toMatchObject({ plan: { cc: "1" }, nsn: "5125550100" });
    expect(splitCountry("+5125550101")).toMatchObject({ plan: { cc: "51", name: "Peru" }, nsn: "25550101" });
    expect(splitCountry("+8613800138000")).toBeUndefined();
  });

  it("warns when a number is one digit short of its country's length", () => {
    expect(shortNumberWarning("+1512555010")).toContain("one digit short");
    expect(shortNumberWarning("+15125550100")).toBeUndefined();
    expect(shortNumberWarning("+3361234567")).toContain("France");
    expect(shortNumberWarning("+33612345678")).toBeUndefined();
    // Germany allows 4 to 15 digits: never "short"; unlisted countries are not checked.
    expect(shortNumberWarning("+4930123")).toBeUndefined();
    expect(shortNumberWarning("+86138001380")).toBeUndefined();
  });

  it("refuses exact keys of an impossible length and prefixes longer than any number", () => {
    expect(routeKeyPlanError("+15125550100")).toBeUndefined();
    expect(routeKeyPlanError("+1512555010")).toContain("cannot be a +1");
    expect(routeKeyPlanError("+151255501000")).toContain("cannot be a +1");
    expect(routeKeyPlanError("+1512*")).toBeUndefined();
    expect(routeKeyPlanError("+15125550100*")).toBeUndefined();
    expect(routeKeyPlanError("+151255501001*")).toContain("can never match");
    expect(routeKeyPlanError("+447700900123")).toBeUndefined();
    expect(routeKeyPlanError("+44770090012")).toBeUndefined(); // 9 digits: a possible UK length
    expect(routeKeyPlanError("+44770090")).toContain("United Kingdom");
    expect(routeKeyPlanError("*")).toBeUndefined();
    expect(routeKeyPlanError("+8613800138000")).toBeUndefined();
  });

  it("default_country_code is the fallback of trunks, SMPP accounts and binds", () => {
    const v = validateConfig({
      default_country_code: "44",
      sip: { trunks: [{ name: "a", sources: ["127.0.0.1"] }, { name: "b", sources: ["127.0.0.2"], country_code: "1" }] },
      smpp: {
        accounts: [{ system_id: "s", password: "p", role: "carrier" }],
        binds: [{ name: "b", host: "h", port: 2775, system_id: "x", password: "p", country_code: "33" }],
      },
    });
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.config.sip.trunks.map((t) => t.country_code)).toEqual(["44", "1"]);
    expect(v.config.smpp.accounts[0]!.country_code).toBe("44");
    expect(v.config.smpp.binds[0]!.country_code).toBe("33");
    const bad = validateConfig({ default_country_code: "+44" });
    expect(bad.ok).toBe(false);
    const none = validateConfig({ sip: { trunks: [{ name: "a", sources: ["127.0.0.1"] }] } });
    expect(none.ok && none.config.sip.trunks[0]!.country_code).toBeUndefined();
  });
});
