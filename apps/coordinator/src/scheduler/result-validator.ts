import { LIMITS, WebpvmError } from '@webpvm/vm-protocol';
import { newQuickJSWASMModule, newVariant, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime, RELEASE_SYNC } from 'quickjs-emscripten';

export interface ValidatorLimits {
  /** All the engine's WebAssembly memory, at least the 16 MiB it starts with. Default 32 MiB. */
  memoryBytes?: number;
  /** One `agree`: parsing both values and running validate. Default 100 ms. */
  timeoutMs?: number;
  /** The program's top-level code, run once by `load`. Default 1 s. */
  loadTimeoutMs?: number;
}

const MiB = 1024 * 1024;
const DEFAULTS: Required<ValidatorLimits> = { memoryBytes: 32 * MiB, timeoutMs: 100, loadTimeoutMs: 1_000 };
/** The wasm build asks for this much memory to start; it refuses to instantiate with less. */
const START_BYTES = 16 * MiB;
/** Room above the limit, so our own copy of a value into the engine never finds its memory full. */
const HEADROOM_BYTES = LIMITS.valueBytes + MiB;
/**
 * QuickJS counts its own stack, but the wasm frames beneath live on the coordinator's V8 stack, which
 * deep JSON.stringify uses ~15 times faster than QuickJS counts. Measured: above ~48 KiB a hostile
 * validate overflowed V8's stack instead, unwinding out of the engine mid-operation; 32 KiB still
 * allows ~180 nested calls and JSON ~1000 levels deep.
 */
const STACK_BYTES = 32 * 1024;

/** WebAssembly's types live in the DOM libs, which the coordinator's tsconfig leaves out on purpose. */
type WasmMemory = { readonly buffer: ArrayBuffer };
const { Memory } = (globalThis as unknown as { WebAssembly: { Memory: new (size: { initial: number; maximum: number }) => WasmMemory } }).WebAssembly;

const fail = (message: string) => new WebpvmError('E_VALIDATE', message);
const mib = (bytes: number) => `${Math.round(bytes / MiB)} MiB`;

/** Run before the program, so they hold the engine's own JSON.parse and String whatever the program replaces. */
const HELPERS = `(() => {
  const parse = JSON.parse, str = String, E = Error, slice = Function.prototype.call.bind(String.prototype.slice);
  return [(validate, a, b) => validate(parse(a), parse(b)),
    (e) => slice(e instanceof E ? str(e.name) + ': ' + str(e.message) : str(e), 0, 500)];
})()`;

/**
 * One WebAssembly instance of QuickJS, one runtime and one context. Each validator gets its own
 * instance: its memory can be capped for real (this build's QuickJS counts 8 bytes per allocation
 * against `setMemoryLimit`, so that limit alone let a validate grow to 2 GiB), is given back when the
 * validator is dropped, and an engine that fails can spoil no other job's validator.
 */
class Engine {
  deadline = 0;
  overrun: 'time' | 'memory' | null = null;
  private constructor(
    readonly memory: WasmMemory,
    readonly runtime: QuickJSRuntime,
    readonly ctx: QuickJSContext,
    readonly memoryBytes: number,
    readonly helpers: readonly [call: QuickJSHandle, describe: QuickJSHandle],
  ) {
    runtime.setMemoryLimit(memoryBytes);
    runtime.setMaxStackSize(STACK_BYTES);
    runtime.setModuleLoader((name) => ({ error: new Error(`import "${name}" is refused: validation runs the program alone`) }));
    // QuickJS calls this every few thousand operations: the only way to stop a loop that never returns.
    runtime.setInterruptHandler(() => {
      this.overrun ??= this.grown() ? 'memory' : performance.now() > this.deadline ? 'time' : null;
      return this.overrun !== null;
    });
  }

  static async start(memoryBytes: number): Promise<Engine> {
    const pages = (bytes: number) => Math.ceil(bytes / 65_536);
    const memory = new Memory({ initial: pages(START_BYTES), maximum: pages(memoryBytes + HEADROOM_BYTES) });
    const runtime = (await newQuickJSWASMModule(newVariant(RELEASE_SYNC, { wasmMemory: memory }))).newRuntime();
    const ctx = runtime.newContext();
    const helpers = ctx.unwrapResult(ctx.evalCode(HELPERS, 'helpers.js', { type: 'global' }));
    return new Engine(memory, runtime, ctx, memoryBytes, helpers.consume((pair) => [ctx.getProp(pair, 0), ctx.getProp(pair, 1)] as const));
  }

  /** Wasm memory never shrinks: once past the limit, this engine stays past it. */
  grown(): boolean {
    return this.memory.buffer.byteLength > this.memoryBytes;
  }

  /** The deadline is on the monotonic clock: a step of the wall clock must not stop a validate that just began, nor let a loop run on. */
  arm(ms: number): void {
    this.deadline = performance.now() + ms;
    this.overrun = null;
  }

  /** E_VALIDATE for a failed run (its error handle is freed): the limit it crossed, or what it threw. */
  failure(what: string, error: QuickJSHandle, timeoutMs: number): WebpvmError {
    const overrun = this.grown() ? 'memory' : this.overrun;
    let thrown = 'a value that cannot be shown';
    if (!overrun) {
      // Describing runs the program's code too (a getter, a toString), so it gets a deadline of its own.
      this.arm(timeoutMs);
      const text = this.ctx.callFunction(this.helpers[1], this.ctx.undefined, error);
      if (!text.error && this.ctx.typeof(text.value) === 'string') thrown = this.ctx.getString(text.value).slice(0, 500);
      text.dispose();
    }
    error.dispose();
    if (overrun === 'memory') return fail(`${what} used more than ${mib(this.memoryBytes)} of memory`);
    return fail(overrun === 'time' ? `${what} ran past its time limit of ${timeoutMs} ms` : `${what} threw ${thrown}`);
  }

  dispose(): void {
    for (const handle of this.helpers) handle.dispose();
    this.ctx.dispose();
    this.runtime.dispose();
  }
}

/**
 * A job's `validate(a, b)`: whether two results of one task agree. The program is an untrusted
 * researcher's, so it never runs in the coordinator's realm: QuickJS has no require, process or
 * other Node global, and may import nothing. Every call is bounded in time, memory and stack, so a
 * hostile validate costs the coordinator at most `timeoutMs` of its event loop (plus parsing the two
 * values, which QuickJS cannot interrupt: ~30 ms a MiB) and `memoryBytes`. After a throw or a
 * timeout the validator goes on; once its memory ran out, or its engine failed, it refuses every call.
 */
export class ResultValidator {
  #spent: string | null = null;

  private constructor(
    private readonly engine: Engine,
    private readonly validate: QuickJSHandle,
    private readonly limits: Required<ValidatorLimits>,
  ) {}

  /** Runs the program's top level once; null when it exports no `validate` function. Throws E_VALIDATE. */
  static async load(programSource: string, limits: ValidatorLimits = {}): Promise<ResultValidator | null> {
    const all = { ...DEFAULTS, ...limits };
    if (all.memoryBytes < START_BYTES) throw new RangeError(`memoryBytes must be at least ${mib(START_BYTES)}`);
    const engine = await Engine.start(all.memoryBytes);
    const { ctx, runtime } = engine;
    try {
      engine.arm(all.loadTimeoutMs);
      const loaded = ctx.evalCode(programSource, 'program.js', { type: 'module' });
      if (loaded.error) throw engine.failure('the program', loaded.error, all.loadTimeoutMs);
      let exports = loaded.value;
      // A module with top-level await evaluates to a promise of its exports.
      if (ctx.getPromiseState(exports).type === 'pending') {
        runtime.executePendingJobs().dispose();
        const settled = ctx.getPromiseState(exports);
        exports.dispose();
        if (settled.type === 'pending') throw fail("the program's top-level await never settled");
        if (settled.type === 'rejected') throw engine.failure('the program', settled.error, all.loadTimeoutMs);
        exports = settled.value;
      }
      const validate = exports.consume((namespace) => ctx.getProp(namespace, 'validate'));
      if (ctx.typeof(validate) === 'function') return new ResultValidator(engine, validate, all);
      validate.dispose();
      engine.dispose();
      return null;
    } catch (error) {
      // An engine that failed itself (a trap, V8's own stack) is dropped, not freed: its state is unknown.
      if (!(error instanceof WebpvmError)) throw fail(`the program could not be loaded: its engine failed: ${messageOf(error)}`);
      engine.dispose();
      throw error;
    }
  }

  /** True only when validate returns exactly true; E_VALIDATE when it throws, overruns or returns no boolean. */
  agree(a: unknown, b: unknown): boolean {
    if (this.#spent) throw fail(`this validator can no longer be used: ${this.#spent}`);
    const texts = [encode(a), encode(b)];
    const { engine, limits } = this;
    try {
      engine.arm(limits.timeoutMs);
      const result = this.#call(texts);
      if (result?.error) throw this.#retireIf(engine.grown(), engine.failure('validate', result.error, limits.timeoutMs));
      const type = result ? engine.ctx.typeof(result.value) : 'nothing';
      const agreed = result ? engine.ctx.eq(result.value, engine.ctx.true) : false;
      result?.dispose();
      if (engine.grown()) throw this.#retireIf(true, fail(`validate used more than ${mib(limits.memoryBytes)} of memory`));
      if (type !== 'boolean') throw fail(`validate returned ${type === 'object' ? 'an object' : type}, not true or false`);
      return agreed;
    } catch (error) {
      if (error instanceof WebpvmError) throw error;
      // The engine itself failed: its state is unknown, so it is neither entered nor freed again.
      this.#spent = `its engine failed: ${messageOf(error)}`;
      throw fail(`validate could not be run: ${this.#spent}`);
    }
  }

  /** Frees the engine; the validator then refuses every call. */
  dispose(): void {
    this.#retireIf(this.#spent === null, null);
    this.#spent ??= 'it was disposed';
  }

  /** Both values into the engine and validate called on them; null when memory is already past the limit. */
  #call(texts: string[]) {
    const { ctx } = this.engine;
    const args: QuickJSHandle[] = [];
    try {
      for (const text of texts) {
        if (this.engine.grown()) return null;
        args.push(ctx.newString(text));
      }
      return ctx.callFunction(this.engine.helpers[0], ctx.undefined, this.validate, ...args);
    } finally {
      for (const arg of args) arg.dispose();
    }
  }

  #retireIf<E extends WebpvmError | null>(retire: boolean, failure: E): E {
    if (!retire) return failure;
    this.#spent = failure?.message ?? 'it was disposed';
    this.validate.dispose();
    this.engine.dispose();
    return failure;
  }
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** A result as JSON, refused before it reaches the engine when it is no JSON value or too large. */
function encode(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw fail(`a result cannot be compared: ${messageOf(error)}`);
  }
  if (text === undefined) throw fail('a result cannot be compared: it is no JSON value');
  const bytes = Buffer.byteLength(text);
  if (bytes > LIMITS.valueBytes) throw fail(`a result of ${bytes} bytes is over the ${mib(LIMITS.valueBytes)} validate takes`);
  return text;
}
