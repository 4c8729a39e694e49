import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeEnvelope,
  decodeImage,
  decodeValue,
  encodeEnvelope,
  encodeImage,
  encodeValue,
  ImageAssembly,
  imageParts,
  isSealed,
  LIMITS,
  sealMessage,
  unsealMessage,
  type EncodedValue,
  type ImageCheckpoint,
  type ImagePartHeader,
  type SealedMessage,
  type TaskImage,
} from '../src/index.ts';

const MiB = 1024 * 1024;

const emptyImage = (tid = 'abcd.1'): TaskImage => ({ tid, checkpoint: null, delivered: new Map(), mailbox: [], pending: [], log: [] });

const sampleImage = (): TaskImage => ({
  tid: 'abcd.1',
  checkpoint: {
    state: encodeValue({ step: 7, grid: new Float64Array([0.5, -0, NaN]), big: 2n ** 70n }),
    rng: [1, 2, 3, 0xffffffff],
    sent: [{ to: 'abcd.2', seq: 4 }],
    requests: 3,
  },
  delivered: new Map([['abcd.2', 5]]),
  mailbox: [
    sealMessage({ from: 'abcd.2', to: 'abcd.1', tag: 1, seq: 5, data: { halo: new Int16Array([1, -2]) } }),
    sealMessage({ from: 'abcd.3', to: 'abcd.1', tag: 9, seq: 3, data: { tid: 'abcd.3', ok: true } }),
  ],
  pending: [sealMessage({ from: 'abcd.2', to: 'abcd.1', tag: 1, seq: 7, data: new Uint8Array([9, 8, 7]) })],
  log: [sealMessage({ from: 'abcd.1', to: 'abcd.2', tag: 3, seq: 4, data: new Float64Array([1.5]) }).envelope],
});

/** The first byte at which two byte strings differ, -1 when they are the same. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.byteLength !== b.byteLength) return Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/**
 * Equal as values and bit for bit: toEqual alone passes NaNs of other payloads and ArrayBuffers
 * or DataViews of other contents, and walks large typed arrays far too slowly, so those are
 * compared as bytes.
 */
function expectSameValue(value: unknown, expected: unknown): void {
  const a = encodeValue(value);
  const b = encodeValue(expected);
  expect(a.json).toEqual(b.json);
  expect(a.buffers.length).toBe(b.buffers.length);
  a.buffers.forEach((buffer, i) => expect(firstDifference(buffer, b.buffers[i]!), `byte segment ${i}`).toBe(-1));
  if (b.buffers.every((buffer) => buffer.byteLength < 4096)) expect(value).toEqual(expected);
}

const decodeState = (state: EncodedValue) => decodeValue(state.json, state.buffers);

/** The data a sealed message's envelope carries, as its receiving task will read it. */
function dataOf({ envelope }: SealedMessage): unknown {
  const message = unsealMessage(envelope);
  expect(message, 'the envelope holds a message').not.toBeNull();
  return message!.data;
}

/** The bytes of an image laid out by hand, for images encodeImage would never write. */
function rawImage(header: unknown, segments: Uint8Array[] = [], headText = JSON.stringify(header)): Uint8Array {
  const head = new TextEncoder().encode(headText);
  const out = new Uint8Array(4 + head.length + segments.reduce((n, s) => n + s.byteLength, 0));
  new DataView(out.buffer).setUint32(0, head.length, true);
  out.set(head, 4);
  let offset = 4 + head.length;
  for (const segment of segments) {
    out.set(segment, offset);
    offset += segment.byteLength;
  }
  return out;
}

function partOf(frame: Uint8Array): { header: ImagePartHeader; piece: Uint8Array } {
  const decoded = decodeEnvelope(frame);
  if (!decoded.ok) throw new Error(decoded.error.message);
  const { header, buffers } = decoded.value;
  if (header.type !== 'part') throw new Error(`expected a part frame, got ${header.type}`);
  return { header, piece: buffers[0]! };
}

/** Deterministic bytes, so that a large image costs no generation time and misplaced bytes show. */
function filler(length: number, seed: number): Float64Array {
  const out = new Float64Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) / 7 - i;
  }
  return out;
}

/** toEqual walks a typed array element by element: far too slow for images of several MiB. */
function expectBytes(actual: Uint8Array | null, expected: Uint8Array): void {
  expect(actual).not.toBeNull();
  expect(firstDifference(actual!, expected)).toBe(-1);
}

/** Bytes that differ from one position, and one image, to the next, so that misplaced pieces show. */
function pattern(length: number, salt: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + salt) % 256;
  return out;
}

function expectSameImage(back: TaskImage, image: TaskImage): void {
  expect(back.tid).toBe(image.tid);
  expect(back.delivered).toEqual(image.delivered);
  if (image.checkpoint === null) {
    expect(back.checkpoint).toBeNull();
  } else {
    expect(back.checkpoint).not.toBeNull();
    const { state, ...counters } = back.checkpoint!;
    const { state: original, ...originalCounters } = image.checkpoint;
    expect(counters).toEqual(originalCounters);
    expectSameValue(decodeState(state), decodeState(original));
  }
  for (const list of ['mailbox', 'pending'] as const) {
    expect(back[list]).toHaveLength(image[list].length);
    back[list].forEach((message, i) => {
      const original = image[list][i]!;
      expect(isSealed(message)).toBe(isSealed(original));
      if (!isSealed(message) || !isSealed(original)) return expect(message).toEqual(original);
      const { envelope, ...fields } = message;
      const { envelope: originalEnvelope, ...originalFields } = original;
      expect(fields).toEqual(originalFields);
      // hosts pass envelopes on as they are: the image carries them bit for bit
      expect(firstDifference(envelope, originalEnvelope), `${list}[${i}] envelope`).toBe(-1);
      expectSameValue(dataOf(message), dataOf(original));
    });
  }
}

// ---- arbitraries ----

const tidArb = fc
  .tuple(fc.stringMatching(/^[a-z0-9]{4,8}$/), fc.integer({ min: 0, max: 999_999_999 }))
  .map(([job, n]) => `${job}.${n}`);

const typedArrayArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.float64Array({ maxLength: 6 }),
  fc.float32Array({ maxLength: 6 }),
  fc.int8Array({ maxLength: 6 }),
  fc.uint8Array({ maxLength: 6 }),
  fc.uint8ClampedArray({ maxLength: 6 }),
  fc.int16Array({ maxLength: 6 }),
  fc.uint16Array({ maxLength: 6 }),
  fc.int32Array({ maxLength: 6 }),
  fc.uint32Array({ maxLength: 6 }),
  fc.bigInt64Array({ maxLength: 4 }),
  fc.bigUint64Array({ maxLength: 4 }),
  // A view into a larger buffer must carry only its own bytes.
  fc.tuple(fc.float64Array({ minLength: 2, maxLength: 8 }), fc.nat()).map(([a, start]) => a.subarray(start % a.length)),
  fc.uint8Array({ maxLength: 6 }).map((a) => new DataView(a.buffer)),
  fc.uint8Array({ maxLength: 6 }).map((a) => a.buffer),
);

const leafArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.string({ maxLength: 6 }),
  fc.constant(null),
  fc.constant(undefined),
  fc.bigInt(),
);

const { value: valueArb } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 3 },
    leafArb,
    typedArrayArb,
    fc.array(tie('value'), { maxLength: 4 }),
    // `$wpvm` is the codec's reserved key: a program's own object using it must survive too.
    fc.dictionary(fc.constantFrom('a', 'b', 'grid', '$wpvm'), tie('value'), { maxKeys: 4 }),
  ),
}));

const messageArb = (to: string): fc.Arbitrary<SealedMessage> =>
  fc
    .record({
      from: tidArb,
      tag: fc.integer({ min: 0, max: 0x7fffffff }),
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      data: valueArb,
    })
    .map((m) => sealMessage({ ...m, to }));

/** A message the image's task sent, as its sender log keeps it: the envelope only. */
const sentArb = (from: string): fc.Arbitrary<Uint8Array> =>
  fc
    .record({ to: tidArb, tag: fc.integer({ min: 0, max: 0x7fffffff }), seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), data: valueArb })
    .map((m) => sealMessage({ ...m, from }).envelope);

const uint32 = fc.integer({ min: 0, max: 0xffffffff });

const imageArb: fc.Arbitrary<TaskImage> = tidArb.chain((tid) =>
  fc.record({
    tid: fc.constant(tid),
    checkpoint: fc.option(
      fc.record({
        state: valueArb.map(encodeValue),
        rng: fc.tuple(uint32, uint32, uint32, uint32),
        sent: fc.array(fc.record({ to: tidArb, seq: fc.maxSafeNat() }), { maxLength: 4 }),
        requests: fc.nat(),
      }),
      { nil: null },
    ),
    delivered: fc.array(fc.tuple(tidArb, fc.maxSafeNat()), { maxLength: 4 }).map((entries) => new Map(entries)),
    // a message the task read on a lane is named by sender and seq (its sender's log keeps it)
    mailbox: fc.array(fc.oneof(messageArb(tid), fc.record({ from: tidArb, seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }) })), { maxLength: 6 }),
    pending: fc.array(messageArb(tid), { maxLength: 4 }),
    log: fc.array(sentArb(tid), { maxLength: 4 }),
  }),
);

/**
 * Sends an image through the whole path — encoded, cut in part frames, the frames arriving in a
 * random order with re-sent duplicates, reassembled, decoded — and checks it comes out the same.
 */
function travels(image: TaskImage, attempt: number, g: fc.GeneratorValue): void {
  const bytes = encodeImage(image);
  const frames = imageParts(image.tid, attempt, bytes);
  const indices = frames.map((_, i) => i);
  const arrivals = [...g(fc.shuffledSubarray, indices, { minLength: indices.length, maxLength: indices.length })];
  for (const [dupe, at] of g(fc.array, fc.tuple(fc.constantFrom(...indices), fc.nat()), { maxLength: 5 })) {
    arrivals.splice(at % (arrivals.length + 1), 0, dupe);
  }
  const assembly = new ImageAssembly(LIMITS.imageBytes);
  const seen = new Set<number>();
  for (const index of arrivals) {
    const { header, piece } = partOf(frames[index]!);
    expect(header).toMatchObject({ tid: image.tid, attempt, index, count: frames.length });
    expect(assembly.add(header, piece)).toBeNull();
    seen.add(index);
    if (seen.size < frames.length) expect(assembly.take(image.tid, attempt)).toBeNull();
  }
  const whole = assembly.take(image.tid, attempt);
  expect(whole).not.toBeNull();
  expect(whole!.byteLength).toBe(bytes.byteLength);
  const decoded = decodeImage(whole!);
  if (!decoded.ok) throw new Error(decoded.error.message);
  expectSameImage(decoded.value, image);
}

describe('task image encoding', () => {
  it('round-trips a checkpoint, counters, delivered seqs and both message lists', () => {
    const image = sampleImage();
    const decoded = decodeImage(encodeImage(image));
    if (!decoded.ok) throw new Error(decoded.error.message);
    expectSameImage(decoded.value, image);
  });

  it('round-trips a task that never reached a checkpoint', () => {
    const image: TaskImage = { ...emptyImage(), mailbox: [sealMessage({ from: 'abcd.2', to: 'abcd.1', tag: 0, seq: 1, data: 'hi' })] };
    const decoded = decodeImage(encodeImage(image));
    if (!decoded.ok) throw new Error(decoded.error.message);
    expect(decoded.value.checkpoint).toBeNull();
    expectSameImage(decoded.value, image);
  });

  it('carries state bytes as bytes, not as text in its header', () => {
    const grid = filler(50_000, 3);
    const bytes = encodeImage({ ...emptyImage(), checkpoint: { state: encodeValue({ grid }), rng: [0, 0, 0, 0], sent: [], requests: 0 } });
    const headLength = new DataView(bytes.buffer).getUint32(0, true);
    expect(headLength).toBeLessThan(1000);
    expect(bytes.byteLength).toBeLessThan(grid.byteLength + 2000);
  });

  it('refuses truncated and padded images with E_BAD_FRAME', () => {
    const good = encodeImage(sampleImage());
    const cases = {
      'shorter than its prefix': good.subarray(0, 3),
      'cut inside the header': good.subarray(0, 10),
      'cut inside the segments': good.subarray(0, good.length - 1),
      'trailing bytes': new Uint8Array([...good, 0]),
    };
    for (const [name, bytes] of Object.entries(cases)) {
      expect(decodeImage(bytes), name).toMatchObject({ ok: false, error: { code: 'E_BAD_FRAME' } });
    }
  });

  it('refuses a header that is not JSON, or not an image header, with E_BAD_FRAME', () => {
    const valid = { tid: 'abcd.1', checkpoint: null, delivered: [], mailbox: [], pending: [] };
    expect(decodeImage(rawImage(valid)).ok).toBe(true);
    const cases = {
      'not JSON': rawImage(null, [], '{"tid": "abcd.1",'),
      'control characters': rawImage(null, [], '\u0000\u0001'),
      'bad tid': rawImage({ ...valid, tid: 'ABCD' }),
      'rng of three numbers': rawImage({ ...valid, checkpoint: { state: null, stateSizes: [], rng: [1, 2, 3], sent: [], requests: 0 } }),
      'negative delivered seq': rawImage({ ...valid, delivered: [{ from: 'abcd.2', seq: -1 }] }),
      'mailbox size not a number': rawImage({ ...valid, mailbox: ['12'] }),
      'mailbox message named with seq 0': rawImage({ ...valid, mailbox: [{ from: 'abcd.2', seq: 0 }] }),
      'mailbox message named by a bad tid': rawImage({ ...valid, mailbox: [{ from: 'ABCD', seq: 1 }] }),
    };
    for (const [name, bytes] of Object.entries(cases)) {
      expect(decodeImage(bytes), name).toMatchObject({ ok: false, error: { code: 'E_BAD_FRAME' } });
    }
  });

  it('refuses a mailbox or pending message addressed to another task', () => {
    const stray = sealMessage({ from: 'abcd.3', to: 'abcd.2', tag: 0, seq: 1, data: null });
    expect(decodeImage(encodeImage({ ...emptyImage(), mailbox: [stray] }))).toMatchObject({ ok: false, error: { code: 'E_BAD_FRAME' } });
    expect(decodeImage(encodeImage({ ...emptyImage(), pending: [stray] }))).toMatchObject({ ok: false, error: { code: 'E_BAD_FRAME' } });
  });

  it('refuses a sender log holding a message its task did not send', () => {
    const forged = sealMessage({ from: 'abcd.3', to: 'abcd.2', tag: 0, seq: 1, data: null }).envelope;
    expect(decodeImage(encodeImage({ ...emptyImage(), log: [forged] }))).toMatchObject({ ok: false, error: { code: 'E_BAD_FRAME' } });
  });

  it('refuses a segment that is not a message envelope', () => {
    const ack = encodeEnvelope({ type: 'ack', of: 'abcd.2', by: 'abcd.1', seq: 1 });
    const garbage = new Uint8Array([1, 0, 0, 0, 0x7b]);
    for (const segment of [ack, garbage]) {
      const bytes = rawImage({ tid: 'abcd.1', checkpoint: null, delivered: [], mailbox: [segment.byteLength], pending: [] }, [segment]);
      expect(decodeImage(bytes)).toMatchObject({ ok: false, error: { code: 'E_BAD_FRAME' } });
    }
  });

  // A throw here would make host-runtime's #onAssign throw instead of failing the one task with E_BAD_FRAME.
  it('refuses, rather than throws on, a message whose data does not decode', () => {
    const envelope = (data: unknown, segments: Uint8Array[]) =>
      encodeEnvelope({ type: 'msg', from: 'abcd.2', to: 'abcd.1', tag: 0, seq: 1, data, sizes: segments.map((s) => s.byteLength) }, segments);
    const broken = {
      'float64 array of 3 bytes': envelope({ $wpvm: 'Float64Array', b: 0 }, [new Uint8Array(3)]),
      'missing byte segment': envelope({ $wpvm: 'Uint8Array', b: 4 }, []),
      'unknown tag': envelope({ $wpvm: 'Map' }, []),
    };
    for (const [name, segment] of Object.entries(broken)) {
      for (const list of ['mailbox', 'pending'] as const) {
        const header = { tid: 'abcd.1', checkpoint: null, delivered: [], mailbox: [], pending: [], [list]: [segment.byteLength] };
        let decoded: unknown;
        try {
          decoded = decodeImage(rawImage(header, [segment]));
        } catch (error) {
          decoded = { threw: String(error) };
        }
        expect(decoded, `${name} in ${list}`).toMatchObject({ ok: false, error: { code: 'E_BAD_FRAME' } });
      }
    }
  });
});

describe('image parts', () => {
  it('cuts an image in pieces of at most LIMITS.imagePartBytes, each frame within LIMITS.frameBytes', () => {
    for (const [size, count] of [
      [0, 1],
      [10, 1],
      [LIMITS.imagePartBytes, 1],
      [LIMITS.imagePartBytes + 1, 2],
      [3 * LIMITS.imagePartBytes + 5, 4],
    ] as const) {
      const image = pattern(size, 0);
      const frames = imageParts('abcd.1', 2, image);
      expect(frames, `${size} bytes`).toHaveLength(count);
      const pieces = frames.map(partOf);
      pieces.forEach(({ header, piece }, index) => {
        expect(header).toEqual({ type: 'part', tid: 'abcd.1', attempt: 2, index, count, sizes: [piece.byteLength] });
        expect(piece.byteLength).toBeLessThanOrEqual(LIMITS.imagePartBytes);
      });
      for (const frame of frames) expect(frame.byteLength).toBeLessThanOrEqual(LIMITS.frameBytes);
      const joined = new Uint8Array(size);
      let offset = 0;
      for (const { piece } of pieces) {
        joined.set(piece, offset);
        offset += piece.byteLength;
      }
      expectBytes(joined, image);
    }
  });
});

describe('ImageAssembly', () => {
  /** An image of `bytes` bytes, cut in its part frames and decoded as the router hands them over. */
  const cut = (tid: string, attempt: number, bytes: number) => {
    const image = pattern(bytes, attempt + tid.length);
    return { image, parts: imageParts(tid, attempt, image).map(partOf) };
  };

  it('puts an image back together from parts in any order, and hands it over once', () => {
    const { image, parts } = cut('abcd.1', 1, 2 * MiB + 10);
    const assembly = new ImageAssembly(4 * MiB);
    for (const { header, piece } of [parts[2]!, parts[0]!]) expect(assembly.add(header, piece)).toBeNull();
    expect(assembly.take('abcd.1', 1)).toBeNull();
    expect(assembly.add(parts[1]!.header, parts[1]!.piece)).toBeNull();
    expect(assembly.take('abcd.1', 2)).toBeNull();
    expectBytes(assembly.take('abcd.1', 1), image);
    expect(assembly.take('abcd.1', 1)).toBeNull();
  });

  it('keeps its own copy of a piece that is a view into a frame', () => {
    const { image, parts } = cut('abcd.1', 1, MiB + 10);
    const assembly = new ImageAssembly(4 * MiB);
    assembly.add(parts[0]!.header, parts[0]!.piece);
    // the transport may reuse the frame's buffer once the handler returns
    parts[0]!.piece.fill(0);
    assembly.add(parts[1]!.header, parts[1]!.piece);
    expectBytes(assembly.take('abcd.1', 1), image);
  });

  it('keeps the attempts of one task apart', () => {
    const first = cut('abcd.1', 1, MiB + 1);
    const second = cut('abcd.1', 2, MiB + 2);
    const assembly = new ImageAssembly(8 * MiB);
    for (let i = 0; i < 2; i++) {
      expect(assembly.add(second.parts[i]!.header, second.parts[i]!.piece)).toBeNull();
      expect(assembly.add(first.parts[i]!.header, first.parts[i]!.piece)).toBeNull();
    }
    expectBytes(assembly.take('abcd.1', 2), second.image);
    expectBytes(assembly.take('abcd.1', 1), first.image);
  });

  it('refuses a part whose count or index does not fit the image it belongs to', () => {
    const { parts } = cut('abcd.1', 1, 2 * MiB + 1);
    const assembly = new ImageAssembly(8 * MiB);
    expect(assembly.add(parts[0]!.header, parts[0]!.piece)).toBeNull();
    const piece = parts[1]!.piece;
    expect(assembly.add({ ...parts[1]!.header, count: 2 }, piece)).toMatchObject({ code: 'E_BAD_FRAME' });
    expect(assembly.add({ ...parts[1]!.header, count: 4 }, piece)).toMatchObject({ code: 'E_BAD_FRAME' });
    expect(assembly.add({ ...parts[1]!.header, index: 3 }, piece)).toMatchObject({ code: 'E_BAD_FRAME' });
    expect(assembly.add({ tid: 'abcd.9', attempt: 1, index: 1, count: 1 }, piece)).toMatchObject({ code: 'E_BAD_FRAME' });
  });

  it('refuses parts over its byte limit and drops that image, freeing its bytes for others', () => {
    const big = cut('abcd.1', 1, 3 * MiB);
    const other = cut('abcd.2', 1, MiB);
    const assembly = new ImageAssembly(1.5 * MiB);
    expect(assembly.add(big.parts[0]!.header, big.parts[0]!.piece)).toBeNull();
    expect(assembly.add(big.parts[1]!.header, big.parts[1]!.piece)).toMatchObject({ code: 'E_TOO_LARGE' });
    // with the first piece of the refused image still counted, 2 MiB would be over the limit
    expect(assembly.add(other.parts[0]!.header, other.parts[0]!.piece)).toBeNull();
    expectBytes(assembly.take('abcd.2', 1), other.image);
    // the refused image cannot complete from its remaining piece
    expect(assembly.add(big.parts[2]!.header, big.parts[2]!.piece)).toBeNull();
    expect(assembly.take('abcd.1', 1)).toBeNull();
  });

  it('counts only unfinished images against its limit', () => {
    const assembly = new ImageAssembly(1.5 * MiB);
    for (const tid of ['abcd.1', 'abcd.2', 'abcd.3']) {
      for (const { header, piece } of cut(tid, 1, MiB + 100).parts) expect(assembly.add(header, piece)).toBeNull();
    }
    expect(assembly.take('abcd.3', 1)).not.toBeNull();
  });

  it('forgets partial and complete images of a task, and no other task', () => {
    const partial = cut('abcd.1', 1, 2 * MiB + 1);
    const complete = cut('abcd.1', 2, 10);
    const neighbour = cut('abcd.10', 1, 10);
    const assembly = new ImageAssembly(1.5 * MiB);
    assembly.add(partial.parts[0]!.header, partial.parts[0]!.piece);
    assembly.add(complete.parts[0]!.header, complete.parts[0]!.piece);
    assembly.add(neighbour.parts[0]!.header, neighbour.parts[0]!.piece);
    assembly.forget('abcd.1');
    expect(assembly.take('abcd.1', 2)).toBeNull();
    expectBytes(assembly.take('abcd.10', 1), neighbour.image);
    // the partial image's first MiB is gone: the next MiB fits, and the image cannot complete
    expect(assembly.add(partial.parts[1]!.header, partial.parts[1]!.piece)).toBeNull();
    expect(assembly.add(partial.parts[2]!.header, partial.parts[2]!.piece)).toBeNull();
    expect(assembly.take('abcd.1', 1)).toBeNull();
  });

  it('drops a partial image whose remaining parts have not come within 60 s', () => {
    let now = 1_000;
    const { image, parts } = cut('abcd.1', 1, MiB + 10);
    const kept = new ImageAssembly(4 * MiB, () => now);
    kept.add(parts[0]!.header, parts[0]!.piece);
    now += 59_000;
    kept.add(parts[1]!.header, parts[1]!.piece);
    expectBytes(kept.take('abcd.1', 1), image);

    now = 1_000;
    const expired = new ImageAssembly(1.5 * MiB, () => now);
    expired.add(parts[0]!.header, parts[0]!.piece);
    now += 60_001;
    // the expired first MiB no longer counts against the limit
    const other = cut('abcd.2', 1, MiB);
    expect(expired.add(other.parts[0]!.header, other.parts[0]!.piece)).toBeNull();
    expect(expired.add(parts[1]!.header, parts[1]!.piece)).toBeNull();
    expect(expired.take('abcd.1', 1)).toBeNull();
  });

  // An image may take longer than a minute to arrive (192 MiB at under 3.2 MB/s): the 60 s must run
  // from its latest part, or it is dropped while it still comes and its later parts never complete.
  it('keeps a partial image while its parts keep coming', () => {
    let now = 0;
    const { image, parts } = cut('abcd.1', 1, 5 * MiB + 10);
    const assembly = new ImageAssembly(8 * MiB, () => now);
    for (const { header, piece } of parts) {
      expect(assembly.add(header, piece)).toBeNull();
      now += 15_000;
    }
    expectBytes(assembly.take('abcd.1', 1), image);
  });
});

describe('task image transfer (property)', () => {
  it('any small image arrives whole and equal, whatever the order and duplicates of its parts', () => {
    fc.assert(
      fc.property(imageArb, fc.integer({ min: 1, max: 1_000_000 }), fc.gen(), (image, attempt, g) => {
        travels(image, attempt, g);
      }),
    );
  });

  it('an image over 1 MiB arrives whole and equal from several parts', () => {
    const large = fc
      .tuple(imageArb, fc.integer({ min: 140_000, max: 400_000 }), fc.integer({ min: 0, max: 200_000 }), fc.nat())
      .map(([image, stateLength, messageLength, seed]): TaskImage => {
        const checkpoint: ImageCheckpoint = image.checkpoint ?? { rng: [1, 2, 3, 4], sent: [], requests: 0, state: encodeValue(null) };
        const state = encodeValue({ grid: filler(stateLength, seed), rest: decodeState(checkpoint.state) });
        const halo = sealMessage({ from: 'abcd.2', to: image.tid, tag: 3, seq: 1, data: filler(messageLength, seed + 1) });
        return { ...image, checkpoint: { ...checkpoint, state }, mailbox: [...image.mailbox, halo] };
      });
    fc.assert(
      fc.property(large, fc.gen(), (image, g) => {
        expect(encodeImage(image).byteLength).toBeGreaterThan(MiB);
        travels(image, 1, g);
      }),
      { numRuns: 8 },
    );
  });
});
