import { afterEach, describe, expect, it } from 'vitest';
import { ResultValidator, type ValidatorLimits } from '../src/scheduler/result-validator.ts';

const open: ResultValidator[] = [];
afterEach(() => {
  for (const validator of open.splice(0)) validator.dispose();
});

/** A program with a default export, as jobs send them, and the given validate. */
async function load(validate: string, limits?: ValidatorLimits, more = ''): Promise<ResultValidator> {
  const validator = await ResultValidator.load(`export default (x) => x;\n${more}\nexport function validate(a, b) { ${validate} }`, limits);
  if (!validator) throw new Error('expected a validator');
  open.push(validator);
  return validator;
}

/** The E_VALIDATE error `run` throws, its message matching `message`. */
function refusal(run: () => unknown, message: RegExp): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toMatchObject({ name: 'WebpvmError', code: 'E_VALIDATE', message: expect.stringMatching(message) });
}

describe('ResultValidator', () => {
  it('is null for a program without a validate function', async () => {
    expect(await ResultValidator.load('export default (x) => x * 2')).toBeNull();
    expect(await ResultValidator.load('export default (x) => x; export const validate = true')).toBeNull();
    expect(await ResultValidator.load('export default (x) => x; export function validate() { return true }')).toBeInstanceOf(ResultValidator);
  });

  it('answers with what a tolerance validate decides, for numbers and objects', async () => {
    const numbers = await load('return Math.abs(a - b) < 1e-6');
    expect(numbers.agree(1, 1 + 1e-9)).toBe(true);
    expect(numbers.agree(1, 1.001)).toBe(false);

    const objects = await load('return a.tag === b.tag && a.xs.every((x, i) => Math.abs(x - b.xs[i]) < 1e-6)');
    expect(objects.agree({ tag: 'p', xs: [0.1, 0.2] }, { tag: 'p', xs: [0.1 + 1e-9, 0.2] })).toBe(true);
    expect(objects.agree({ tag: 'p', xs: [0.1, 0.2] }, { tag: 'q', xs: [0.1, 0.2] })).toBe(false);
    expect(objects.agree({ tag: 'p', xs: [0.1, 0.2] }, { tag: 'p', xs: [0.1, 0.3] })).toBe(false);
  });

  it('refuses a validate that throws, with what it threw cut to 500 characters, and goes on', async () => {
    const validator = await load(
      'if (a === "long") throw new RangeError("x".repeat(10000)); if (a === "odd") throw { toString() { return "an odd thing" } }; throw new TypeError(`no ${a}`)',
    );
    refusal(() => validator.agree('answers', 1), /^validate threw TypeError: no answers$/);
    refusal(() => validator.agree('odd', 1), /^validate threw an odd thing$/);
    refusal(() => validator.agree('long', 1), /^validate threw RangeError: x{488}$/);
  });

  it('stops an endless validate at its time limit, then answers the next call', async () => {
    // A long load limit: a deadline set only at load would let the loop run far past 50 ms.
    const validator = await load('if (a === "loop") while (true) {} return a === b', { timeoutMs: 50, loadTimeoutMs: 10_000 });
    const started = Date.now();
    refusal(() => validator.agree('loop', 1), /^validate ran past its time limit of 50 ms$/);
    expect(Date.now() - started).toBeLessThan(500);
    expect(validator.agree(2, 2)).toBe(true);
  });

  it('stops a validate that fills its memory, in many small pieces or one huge one, and is spent after the first', async () => {
    const external = process.memoryUsage().external;
    // A long time limit, so the memory limit is what stops it: QuickJS's own count misses small pieces.
    const pieces = await load('const keep = []; for (;;) keep.push(new Uint8Array(60000).fill(1))', { timeoutMs: 10_000 });
    refusal(() => pieces.agree(1, 1), /^validate used more than 32 MiB of memory$/);
    expect(process.memoryUsage().external - external).toBeLessThan(128 * 1024 * 1024);
    refusal(() => pieces.agree(1, 1), /no longer be used: validate used more than 32 MiB/);

    const huge = await load('return new Array(1e8).fill(a).length > 0');
    refusal(() => huge.agree(1, 1), /^validate threw InternalError: out of memory$/);
  });

  it('reaches nothing of Node, in validate or at the top level, and changes nothing in the coordinator', async () => {
    const validator = await load(
      'Object.prototype.polluted = 1; return atTop === "undefined" && [typeof process, typeof require, typeof module, typeof Buffer, typeof globalThis.process].every((t) => t === "undefined")',
      undefined,
      'const atTop = typeof process;',
    );
    expect(validator.agree(1, 1)).toBe(true);
    expect(({} as { polluted?: number }).polluted).toBeUndefined();
  });

  it('fails to load a program that imports anything, statically or dynamically', async () => {
    await expect(ResultValidator.load('import fs from "node:fs"; export default () => fs; export function validate() { return true }')).rejects.toMatchObject({
      code: 'E_VALIDATE',
      message: expect.stringMatching(/^the program threw Error: import "node:fs" is refused/),
    });
    await expect(ResultValidator.load('const fs = await import("node:fs"); export default () => fs; export function validate() { return true }')).rejects.toMatchObject({
      code: 'E_VALIDATE',
      message: expect.stringMatching(/import "node:fs" is refused/),
    });
  });

  it('stops a program whose top level never ends at the load time limit', async () => {
    await expect(ResultValidator.load('while (true) {} export default 1', { loadTimeoutMs: 50 })).rejects.toMatchObject({
      code: 'E_VALIDATE',
      message: 'the program ran past its time limit of 50 ms',
    });
  });

  it('refuses what validate returns unless it is a boolean', async () => {
    const validator = await load('return a === "async" ? (async () => true)() : a');
    refusal(() => validator.agree(1, 1), /^validate returned number, not true or false$/);
    refusal(() => validator.agree('true', 1), /^validate returned string, not true or false$/);
    refusal(() => validator.agree(null, 1), /^validate returned an object, not true or false$/);
    refusal(() => validator.agree('async', 1), /^validate returned an object, not true or false$/);
    expect(validator.agree(false, 1)).toBe(false);
    expect(validator.agree(true, 1)).toBe(true);
  });

  it('refuses values over the size limit or not JSON before running validate', async () => {
    const validator = await load('globalThis.calls = (globalThis.calls ?? 0) + 1; return globalThis.calls === 1');
    refusal(() => validator.agree('x'.repeat(9 * 1024 * 1024), 1), /^a result of 9437186 bytes is over the 8 MiB validate takes$/);
    refusal(() => validator.agree(1n, 1), /^a result cannot be compared: Do not know how to serialize a BigInt$/);
    refusal(() => validator.agree(undefined, 1), /^a result cannot be compared: it is no JSON value$/);
    expect(validator.agree(1, 1)).toBe(true); // the first call that reached validate
  });

  it('keeps deep recursion inside the engine, where it is an error validate may recover from', async () => {
    // Deep JSON.stringify uses V8's stack far faster than QuickJS counts its own: it must still stop inside.
    const validator = await load(
      'if (a === "ok") return true; if (a === "stringify") { let o = {}; for (let i = 0; i < 100000; i++) o = { o }; return JSON.stringify(o).length > 0 } const f = (n) => f(n + 1); return f(0)',
    );
    refusal(() => validator.agree('stringify', 1), /^validate threw InternalError: stack overflow$/);
    refusal(() => validator.agree('recurse', 1), /^validate threw InternalError: stack overflow$/);
    expect(validator.agree('ok', 1)).toBe(true);
  });

  it('refuses every call once disposed', async () => {
    const validator = await load('return true');
    validator.dispose();
    validator.dispose();
    refusal(() => validator.agree(1, 1), /^this validator can no longer be used: it was disposed$/);
  });
});
