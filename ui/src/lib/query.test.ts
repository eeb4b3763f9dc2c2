import { describe, expect, it } from "vitest";
import { combineQuery, keysOf, nextSort } from "./query";

describe("combineQuery", () => {
  it("joins the text and the status chips with a comma", () => {
    expect(combineQuery(" metric.loss:<0.5 ", ["running", "failed"])).toBe("metric.loss:<0.5,status:running|failed");
    expect(combineQuery("", [])).toBe("");
    expect(combineQuery("", ["succeeded"])).toBe("status:succeeded");
  });
});

describe("nextSort", () => {
  it("cycles ascending, descending, none", () => {
    expect(nextSort("", "metric.loss")).toBe("metric.loss");
    expect(nextSort("metric.loss", "metric.loss")).toBe("-metric.loss");
    expect(nextSort("-metric.loss", "metric.loss")).toBe("");
    expect(nextSort("-created_at", "metric.loss")).toBe("metric.loss");
  });
});

describe("keysOf", () => {
  it("collects the keys of a dict field over rows, sorted", () => {
    expect(keysOf([{ last_metric: { loss: 1 } }, { last_metric: { acc: 2, loss: 3 } }, { last_metric: null }], "last_metric")).toEqual(["acc", "loss"]);
  });
});
