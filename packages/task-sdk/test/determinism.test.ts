import { describe, expect, it } from 'vitest';
import { Rng, taskSeed } from '../src/runtime/determinism.ts';

const draw = (rng: Rng, n: number): number[] => Array.from({ length: n }, () => rng.random());

describe('Rng', () => {
  it('gives the same sequence for the same seed', () => {
    expect(draw(Rng.fromSeed(42), 100)).toEqual(draw(Rng.fromSeed(42), 100));
  });

  it('gives different sequences for different seeds', () => {
    expect(draw(Rng.fromSeed(1), 10)).not.toEqual(draw(Rng.fromSeed(2), 10));
    expect(draw(Rng.fromSeed(0), 10)).not.toEqual(draw(Rng.fromSeed(0xffffffff), 10));
  });

  it('continues the sequence from a saved state', () => {
    const rng = Rng.fromSeed(7);
    draw(rng, 37);
    const state = rng.state();
    const rest = draw(rng, 50);
    expect(draw(Rng.fromState(state), 50)).toEqual(rest);
  });

  it('keeps its state as four uint32 words', () => {
    const rng = Rng.fromSeed(123);
    draw(rng, 1000);
    const state = rng.state();
    expect(state).toHaveLength(4);
    for (const word of state) expect(Number.isInteger(word) && word >= 0 && word <= 0xffffffff).toBe(true);
  });

  it('draws doubles in [0, 1) spread evenly', () => {
    const values = draw(Rng.fromSeed(9), 100_000);
    expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
    const buckets = new Array<number>(10).fill(0);
    for (const v of values) buckets[Math.floor(v * 10)]!++;
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(500);
  });
});

describe('taskSeed', () => {
  it('gives each task of a job its own uint32 seed, the same every time', () => {
    const seeds = Array.from({ length: 10_000 }, (_, i) => taskSeed(1, i));
    expect(new Set(seeds).size).toBe(seeds.length);
    expect(seeds.every((s) => Number.isInteger(s) && s >= 0 && s <= 0xffffffff)).toBe(true);
    expect(taskSeed(1, 5)).toBe(seeds[5]);
    expect(taskSeed(2, 5)).not.toBe(taskSeed(1, 5));
  });
});
