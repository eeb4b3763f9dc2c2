import { describe, expect, it } from "vitest";
import { align, bestSoFar, differingKeys, inRanges, smooth } from "./series";

describe("smooth", () => {
  it("is the identity at weight 0 and debiased at the start", () => {
    expect(smooth([1, 2, 3], 0)).toEqual([1, 2, 3]);
    const out = smooth([10, 10, 10], 0.9);
    out.forEach((v) => expect(v).toBeCloseTo(10));
  });
});

describe("bestSoFar", () => {
  it("keeps the running minimum or maximum, skipping missing values", () => {
    expect(bestSoFar([3, null, 2, 5, 1], true)).toEqual([3, 3, 2, 2, 1]);
    expect(bestSoFar([null, 0.5, 0.4, 0.9], false)).toEqual([null, 0.5, 0.5, 0.9]);
  });
});

describe("align", () => {
  it("merges series on one sorted x axis with gaps as null", () => {
    expect(align([{ x: [0, 2], y: [1, 3] }, { x: [1, 2], y: [5, 6] }])).toEqual([
      [0, 1, 2],
      [1, null, 3],
      [null, 5, 6],
    ]);
  });
});

describe("differingKeys", () => {
  it("lists declarations whose values differ", () => {
    expect(differingKeys([{ lr: 0.1, units: 8 }, { lr: 0.2, units: 8 }, { lr: 0.1, units: 8, extra: 1 }])).toEqual(["extra", "lr"]);
  });
});

describe("inRanges", () => {
  it("passes points inside every brushed range", () => {
    expect(inRanges({ lr: 0.1, loss: 0.5 }, { lr: [0, 0.2] })).toBe(true);
    expect(inRanges({ lr: 0.3 }, { lr: [0, 0.2] })).toBe(false);
    expect(inRanges({ lr: "x" }, { lr: [0, 1] })).toBe(false);
    expect(inRanges({}, {})).toBe(true);
  });
});
