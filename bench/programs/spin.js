// A CPU-bound task for bench/src/throughput.ts: `n` rounds of sorting 4096 doubles (a fixed
// pseudo-random sequence from `seed`, copied back before each sort), deterministic, that no
// compiler can skip. The benchmark calibrates `n` once in a page (so that one task takes ~10 ms or
// ~100 ms of CPU) and runs the very same `spin` in webpvm tasks and in bare Web Workers (the bare
// server builds its worker from this file, with `export` taken out).
//
// The time goes to V8's built-in sort, whose speed does not depend on how far the JIT has
// optimised the caller. A loop in plain JavaScript did: one on Math.imul ran at ~590k rounds/ms in
// two fresh Chromium workers out of three and stayed at ~160k in the third however long it ran;
// one of shifts and xors ran at ~570k once optimised, but a fresh worker in a hidden page waited
// for that optimisation ten calls or so, or for a whole 5 s row when the cores were busy (the
// compile runs at background priority there). Either would have measured the JIT's luck.

/** `n` rounds of sorting 4096 doubles drawn with xorshift32 from `seed`; one element of the result. */
export function spin(n, seed) {
  const a = new Float64Array(4096);
  const template = new Float64Array(a.length);
  let h = (seed + 1) | 0;
  for (let i = 0; i < template.length; i++) {
    h ^= h << 13;
    h ^= h >>> 17;
    h ^= h << 5;
    template[i] = h;
  }
  for (let r = 0; r < n; r++) {
    a.set(template);
    a.sort();
  }
  return a[(seed + n) % a.length];
}

export default (ctx, input) => spin(input.n, input.seed);
