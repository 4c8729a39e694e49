/**
 * Everything random a task may use, in one place. The generator's whole state is four uint32
 * words that travel with each checkpoint, so a task restarted elsewhere draws the numbers it
 * would have drawn: replay from a checkpoint stays deterministic.
 */

export type RngState = [number, number, number, number];

/** splitmix32's output function (a bijection on uint32), used to spread seeds. */
function mix32(value: number): number {
  let z = value | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

const GOLDEN_GAMMA = 0x9e3779b9;

/**
 * sfc32 (Doty-Humphrey's small fast counting generator): 128 bits of state, 32-bit integer
 * arithmetic only, passes PractRand; its counter word rules out a stuck all-zero state.
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  private constructor(state: Readonly<RngState>) {
    [this.#a, this.#b, this.#c, this.#d] = state;
  }

  /** A generator whose four words are spread from one uint32 seed with splitmix32. */
  static fromSeed(seed: number): Rng {
    let s = seed | 0;
    const next = (): number => mix32((s = (s + GOLDEN_GAMMA) | 0));
    const rng = new Rng([next(), next(), next(), next()]);
    // The warm-up sfc32's author recommends, so nearby seeds do not start with related outputs.
    for (let i = 0; i < 12; i++) rng.nextUint32();
    return rng;
  }

  static fromState(state: Readonly<RngState>): Rng {
    return new Rng(state);
  }

  state(): RngState {
    return [this.#a >>> 0, this.#b >>> 0, this.#c >>> 0, this.#d >>> 0];
  }

  nextUint32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) + t;
    this.#c |= 0;
    return t >>> 0;
  }

  /** A double in [0, 1) with 53 random bits, as fine-grained as `Math.random`. */
  random(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }
}

/**
 * The seed of task `index` of a job seeded with `jobSeed`: a uint32, different for every index
 * below 2^32 of one job, and unrelated between neighbouring indexes.
 */
export function taskSeed(jobSeed: number, index: number): number {
  return mix32(mix32(jobSeed) + Math.imul(index + 1, GOLDEN_GAMMA));
}
