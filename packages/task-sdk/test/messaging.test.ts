import { describe, expect, it } from 'vitest';
import { LANE_MESSAGE_BYTES, LIMITS, LaneAssembly, WebpvmError, isLanePiece, decodeEnvelope, encodeEnvelope, encodeMessage, messageFromEnvelope, unsealMessage } from '@webpvm/vm-protocol';
import type { ExitNotice, ReceivedMessage, TaskContext } from '../src/index.ts';
import { FakeLane } from './support/fake-lane.ts';
import { HOOKED_PROGRAM, fakeWorker, hookTasks, program, settle, type Answer } from './support/fake-worker.ts';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (error) {
    return error instanceof WebpvmError ? error.code : String(error);
  }
  return undefined;
};

const codeOfAsync = async (promise: Promise<unknown>): Promise<string | undefined> =>
  promise.then(
    () => undefined,
    (error: unknown) => (error instanceof WebpvmError ? error.code : String(error)),
  );

describe('ctx.send and ctx.mcast', () => {
  it('numbers messages from 1 per receiver and posts them in order', async () => {
    const worker = fakeWorker();
    hookTasks({
      main: (ctx) => {
        ctx.send('job1.1', 5, 'a');
        ctx.send('job1.2', 5, 'b');
        ctx.send('job1.1', 6, { n: 1 });
        ctx.mcast(['job1.1', 'job1.2', 'job1.0'], 7, [1, 2]);
      },
    });
    expect(await worker.run({ programUrl: HOOKED_PROGRAM })).toMatchObject({ ok: true });
    expect(worker.sent()).toEqual([
      { from: 'job1.0', to: 'job1.1', tag: 5, seq: 1, data: 'a' },
      { from: 'job1.0', to: 'job1.2', tag: 5, seq: 1, data: 'b' },
      { from: 'job1.0', to: 'job1.1', tag: 6, seq: 2, data: { n: 1 } },
      { from: 'job1.0', to: 'job1.1', tag: 7, seq: 3, data: [1, 2] },
      { from: 'job1.0', to: 'job1.2', tag: 7, seq: 2, data: [1, 2] },
      { from: 'job1.0', to: 'job1.0', tag: 7, seq: 1, data: [1, 2] },
    ]);
  });

  it('hands the host each message as an envelope of its own, moving its buffer rather than copying it when it keeps no sender log', async () => {
    const worker = fakeWorker();
    hookTasks({ main: (ctx) => ctx.mcast(['job1.1', 'job1.2'], 3, new Float64Array(1000)) });
    await worker.run({ programUrl: HOOKED_PROGRAM }, 0, { senderLog: false });
    const sends = worker.of('send');
    expect(sends).toHaveLength(2);
    for (const send of sends) {
      const { envelope } = send;
      expect(worker.transferOf(send)).toHaveLength(1);
      expect(worker.transferOf(send)![0]).toBe(envelope.buffer);
      // a buffer holding more than the envelope would move bytes the worker still uses
      expect([envelope.byteOffset, envelope.byteLength]).toEqual([0, envelope.buffer.byteLength]);
    }
    expect(sends[0]!.envelope.buffer).not.toBe(sends[1]!.envelope.buffer);
    expect(worker.sent().map((m) => (m.data as Float64Array).length)).toEqual([1000, 1000]);
  });

  it('keeps what it sends in its sender log until covered: its checkpoints carry the log, and resend sends what is left', async () => {
    const worker = fakeWorker();
    hookTasks({
      main: async (ctx) => {
        for (let i = 1; i <= 3; i++) ctx.send('job1.1', 1, i);
        ctx.send('job1.2', 1, 'other');
        await ctx.checkpoint({ step: 1 });
        await ctx.recv({ tag: 9 });
      },
    });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    // the host got copies: the log keeps the envelopes
    expect(worker.of('send').every((send) => !worker.transferOf(send)?.length)).toBe(true);
    const [checkpoint] = worker.of('checkpoint');
    expect(checkpoint!.log.map((e) => [unsealMessage(e)!.to, unsealMessage(e)!.seq])).toEqual([['job1.1', 1], ['job1.1', 2], ['job1.1', 3], ['job1.2', 1]]);
    worker.send({ type: 'covered', tid: 'job1.0', to: 'job1.1', seq: 2 });
    worker.send({ type: 'resend', tid: 'job1.0', to: 'job1.1', acked: [] });
    await settle();
    expect(worker.of('resent').flatMap((r) => r.envelopes.map((e) => [unsealMessage(e)!.data, unsealMessage(e)!.seq]))).toEqual([[3, 3]]);
    // after a broken connection: every receiver, but what its host acknowledged
    worker.send({ type: 'resend', tid: 'job1.0', acked: [{ to: 'job1.2', seq: 1 }] });
    await settle();
    expect(worker.of('resent').slice(1).flatMap((r) => r.envelopes.map((e) => [unsealMessage(e)!.to, unsealMessage(e)!.seq]))).toEqual([['job1.1', 3]]);
    worker.deliver('job1.0', { from: 'job1.2', tag: 9, seq: 1, data: null });
    await done;
  });

  it('hands the host what its log still holds as it ends, before its outcome', async () => {
    const worker = fakeWorker();
    hookTasks({
      main: async (ctx) => {
        ctx.send('job1.1', 1, 'covered');
        ctx.send('job1.1', 1, 'last');
        await ctx.recv({ tag: 9 });
        return 'ok';
      },
    });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'covered', tid: 'job1.0', to: 'job1.1', seq: 1 });
    worker.deliver('job1.0', { from: 'job1.2', tag: 9, seq: 1, data: null });
    await done;
    expect(worker.of('ended-log').flatMap((r) => r.envelopes.map((e) => unsealMessage(e)!.data))).toEqual(['last']);
    const types = worker.posted.map((m) => m.type);
    expect(types.indexOf('ended-log')).toBeLessThan(types.indexOf('done'));
  });

  it('sends its restored log again as it starts when it recovers from a crash, not when it resumes from a migration', async () => {
    const logged = [encodeMessage({ from: 'job1.0', to: 'job1.1', tag: 1, seq: 1, data: 'before the crash' })];
    const program = { main: async (ctx: TaskContext) => void (await ctx.recv({ tag: 9 })) };
    const migrated = fakeWorker();
    hookTasks(program);
    const moved = migrated.run({ programUrl: HOOKED_PROGRAM }, 0, { log: logged });
    await settle();
    expect(migrated.of('resent')).toEqual([]);
    migrated.deliver('job1.0', { from: 'job1.2', tag: 9, seq: 1, data: null });
    await moved;
    const recovered = fakeWorker();
    const restarted = recovered.run({ programUrl: HOOKED_PROGRAM, recovering: true }, 0, { log: logged });
    await settle();
    expect(recovered.of('resent').flatMap((r) => r.envelopes.map((e) => unsealMessage(e)!.data))).toEqual(['before the crash']);
    recovered.deliver('job1.0', { from: 'job1.2', tag: 9, seq: 1, data: null });
    await restarted;
  });

  it('refuses another job, a bad tid or tag, oversized or cyclic data, and then sends nothing', async () => {
    const worker = fakeWorker();
    let codes: (string | undefined)[] = [];
    hookTasks({
      main: (ctx) => {
        codes = [
          codeOf(() => ctx.send('other.1', 1, 'x')),
          codeOf(() => ctx.send('not a tid', 1, 'x')),
          codeOf(() => ctx.send('job1.1', -1, 'x')),
          codeOf(() => ctx.send('job1.1', 2 ** 31, 'x')),
          codeOf(() => ctx.send('job1.1', 1.5, 'x')),
          codeOf(() => ctx.send('job1.1', 1, new Uint8Array(LIMITS.messageBytes + 1))),
          codeOf(() => ctx.mcast(['job1.1', 'other.2'], 1, 'x')),
          codeOf(() => {
            const cycle: { self?: unknown } = {};
            cycle.self = cycle;
            ctx.send('job1.1', 1, cycle);
          }),
        ];
        ctx.send('job1.1', 1, 'after');
      },
    });
    await worker.run({ programUrl: HOOKED_PROGRAM });
    expect(codes).toEqual(['E_FORBIDDEN', 'E_BAD_REQUEST', 'E_BAD_REQUEST', 'E_BAD_REQUEST', 'E_BAD_REQUEST', 'E_TOO_LARGE', 'E_FORBIDDEN', 'E_BAD_REQUEST']);
    expect(worker.sent()).toEqual([{ from: 'job1.0', to: 'job1.1', tag: 1, seq: 1, data: 'after' }]);
  });

  it('sends data as the wire carries it: binary bit for bit, only the bytes of a view; a Map or Date is refused', async () => {
    const worker = fakeWorker();
    const floats = new Float64Array([1.5, -0, NaN, Infinity]);
    const refused: string[] = [];
    hookTasks({
      main: (ctx) => {
        ctx.send('job1.1', 1, { floats, row: floats.subarray(1, 3), big: 2n });
        floats[0] = 99;
        for (const bad of [new Map([[1, 2]]), { when: new Date(0) }]) {
          try {
            ctx.send('job1.1', 1, bad);
          } catch (error) {
            refused.push((error as { code: string }).code);
          }
        }
      },
    });
    await worker.run({ programUrl: HOOKED_PROGRAM });
    expect(worker.of('send')).toHaveLength(1);
    const data = worker.sent()[0]!.data as { floats: Float64Array; row: Float64Array; big: bigint };
    expect(data.floats).toEqual(new Float64Array([1.5, -0, NaN, Infinity]));
    expect(data.row.buffer.byteLength).toBe(16);
    expect(Object.is(data.row[0], -0)).toBe(true);
    expect(data.big).toBe(2n);
    expect(refused).toEqual(['E_BAD_REQUEST', 'E_BAD_REQUEST']);
  });
});

describe('ctx.recv and ctx.probe', () => {
  const message = (from: string, tag: number, data: unknown, seq = 1) => ({ from, tag, seq, data });

  it('takes the first message matching the filter, an omitted field matching anything', async () => {
    const worker = fakeWorker();
    let got: (ReceivedMessage | null)[] = [];
    let probes: boolean[] = [];
    hookTasks({
      main: async (ctx) => {
        probes = [ctx.probe(), ctx.probe({ from: 'job1.2', tag: 1 }), ctx.probe({ from: 'job1.2', tag: 2 }), ctx.probe({ tag: 3 })];
        got = [await ctx.recv({ tag: 2 }), await ctx.recv({ from: 'job1.1' }), await ctx.recv(), await ctx.recv({ timeoutMs: 0 })];
      },
    });
    // Delivered before the start reaches the runtime: the runtime keeps them for the task.
    worker.deliver('job1.0', message('job1.1', 1, 'a'), message('job1.2', 2, 'b'), message('job1.1', 2, 'c', 2));
    await worker.run({ programUrl: HOOKED_PROGRAM });
    expect(probes).toEqual([true, false, true, false]);
    expect(got).toEqual([{ from: 'job1.2', tag: 2, data: 'b' }, { from: 'job1.1', tag: 1, data: 'a' }, { from: 'job1.1', tag: 2, data: 'c' }, null]);
  });

  it('waits for a message delivered later, serving waiting calls in the order they were made', async () => {
    const worker = fakeWorker();
    hookTasks({ main: (ctx) => Promise.all([ctx.recv({ tag: 1 }), ctx.recv(), ctx.recv({ tag: 1 }), ctx.recv({ from: 'job1.2' })]) });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.deliver('job1.0', message('job1.1', 1, 'first'));
    await settle();
    worker.deliver('job1.0', message('job1.1', 2, 'second', 2), message('job1.1', 1, 'third', 3), message('job1.2', 1, 'fourth'));
    expect(await done).toMatchObject({
      ok: true,
      value: [
        { from: 'job1.1', tag: 1, data: 'first' },
        { from: 'job1.1', tag: 2, data: 'second' },
        { from: 'job1.1', tag: 1, data: 'third' },
        { from: 'job1.2', tag: 1, data: 'fourth' },
      ],
    });
  });

  it('resolves null after timeoutMs, and a later message waits in the mailbox', async () => {
    const worker = fakeWorker();
    let late: ReceivedMessage | null = null;
    hookTasks({
      main: async (ctx) => {
        const started = performance.now();
        const none = await ctx.recv({ tag: 1, timeoutMs: 30 });
        const waited = performance.now() - started;
        while (!ctx.probe()) await new Promise((resolve) => setTimeout(resolve, 1));
        late = await ctx.recv({ timeoutMs: 0 });
        return { none, waited };
      },
    });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await new Promise((resolve) => setTimeout(resolve, 60));
    worker.deliver('job1.0', message('job1.1', 1, 'late'));
    const result = await done;
    expect(result).toMatchObject({ ok: true, value: { none: null } });
    expect(result.ok && (result.value as { waited: number }).waited).toBeGreaterThanOrEqual(25);
    expect(late).toEqual({ from: 'job1.1', tag: 1, data: 'late' });
  });

  it('drops a delivered envelope that is not a message for the task, and takes the ones that are', async () => {
    const worker = fakeWorker();
    hookTasks({ main: async (ctx) => [await ctx.recv(), await ctx.recv({ timeoutMs: 0 })] });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    const twelveByteFloats = { $wpvm: 'Float64Array', b: 0 };
    // the first two, taken for job1.1's message 1, would have the real one dropped as a duplicate
    const envelopes = [
      encodeMessage({ from: 'job1.1', to: 'job1.3', tag: 1, seq: 1, data: 'for another task' }),
      encodeEnvelope({ type: 'msg', from: 'job1.1', to: 'job1.0', tag: 1, seq: 1, data: twelveByteFloats, sizes: [12] }, [new Uint8Array(12)]),
      encodeEnvelope({ type: 'ack', of: 'job1.0', by: 'job1.1', seq: 1 }),
      new Uint8Array([1, 2, 3]),
      encodeMessage({ from: 'job1.1', to: 'job1.0', tag: 1, seq: 1, data: 'mine' }),
    ];
    worker.send({ type: 'deliver', tid: 'job1.0', envelopes });
    expect(await done).toMatchObject({ ok: true, value: [{ from: 'job1.1', tag: 1, data: 'mine' }, null] });
  });

  it('refuses a bad filter', async () => {
    const worker = fakeWorker();
    hookTasks({
      main: (ctx) => Promise.all([codeOfAsync(ctx.recv({ tag: -1 })), codeOfAsync(ctx.recv({ timeoutMs: -5 })), codeOfAsync(ctx.recv({ timeoutMs: NaN }))]),
    });
    expect(await worker.run({ programUrl: HOOKED_PROGRAM })).toMatchObject({ value: ['E_BAD_REQUEST', 'E_BAD_REQUEST', 'E_BAD_REQUEST'] });
  });
});

describe('requests', () => {
  const host = (op: Parameters<NonNullable<Parameters<typeof fakeWorker>[0]>>[0]): Answer => {
    switch (op.kind) {
      case 'spawn':
        return { ok: true, value: op.inputs.map((_, i) => `job1.${10 + i}`) };
      case 'join':
        return { ok: true, value: 3 };
      case 'size':
        return { ok: true, value: 4 };
      case 'members':
        return { ok: true, value: ['job1.5', 'job1.0', 'job1.6'] };
      case 'barrier':
        return op.count > 100 ? { ok: false, error: { code: 'E_CONFLICT', message: 'too many' } } : { ok: true, value: null };
      default:
        return { ok: true, value: null };
    }
  };

  it('numbers a task’s requests from 1 and resolves each with its reply', async () => {
    const worker = fakeWorker(host);
    hookTasks({
      main: async (ctx) => ({
        tids: await ctx.spawn('helper', [{ a: 1 }, { a: 2 }]),
        none: await ctx.spawn(null, []),
        instance: await ctx.joinGroup('g'),
        size: await ctx.groupSize('g'),
        barrier: await ctx.barrier('g', 4),
        left: await ctx.leaveGroup('g'),
        notified: await ctx.notifyExit(['job1.10'], 9),
      }),
    });
    expect(await worker.run({ programUrl: HOOKED_PROGRAM })).toMatchObject({
      ok: true,
      value: { tids: ['job1.10', 'job1.11'], none: [], instance: 3, size: 4 },
    });
    expect(worker.of('request').map(({ requestId, op }) => ({ requestId, op }))).toEqual([
      { requestId: 1, op: { kind: 'spawn', name: 'helper', inputs: [{ a: 1 }, { a: 2 }] } },
      { requestId: 2, op: { kind: 'join', group: 'g' } },
      { requestId: 3, op: { kind: 'size', group: 'g' } },
      { requestId: 4, op: { kind: 'barrier', group: 'g', count: 4 } },
      { requestId: 5, op: { kind: 'leave', group: 'g' } },
      { requestId: 6, op: { kind: 'notify', tids: ['job1.10'], tag: 9 } },
    ]);
  });

  it('rejects with the error of a failed reply, and refuses a bad request before sending it', async () => {
    const worker = fakeWorker(host);
    hookTasks({
      main: async (ctx) => {
        const failed = await ctx.barrier('g', 1000).catch((error: WebpvmError) => `${error.code}: ${error.message}`);
        return [
          failed,
          await codeOfAsync(ctx.joinGroup('')),
          await codeOfAsync(ctx.notifyExit(['other.1'], 1)),
          await codeOfAsync(ctx.spawn(null, [1n])),
        ];
      },
    });
    expect(await worker.run({ programUrl: HOOKED_PROGRAM })).toMatchObject({
      value: ['E_CONFLICT: too many', 'E_BAD_REQUEST', 'E_FORBIDDEN', 'E_BAD_REQUEST'],
    });
    expect(worker.of('request')).toHaveLength(1);
  });

  it('bcast sends to every member of the group but the sender', async () => {
    const worker = fakeWorker(host);
    hookTasks({ main: (ctx) => ctx.bcast('g', 4, 'hello') });
    await worker.run({ programUrl: HOOKED_PROGRAM });
    expect(worker.sent().map((m) => [m.to, m.seq])).toEqual([
      ['job1.5', 1],
      ['job1.6', 1],
    ]);
  });

  it('hands replies and messages to a task while another task of the worker runs', async () => {
    const worker = fakeWorker();
    hookTasks({
      main: async (ctx) => ({ spawned: await ctx.spawn(null, [1]), got: (await ctx.recv()).data }),
      helper: async (ctx) => (await ctx.recv()).data,
    });
    const first = worker.run({ programUrl: HOOKED_PROGRAM });
    const second = worker.run({ tid: 'job1.1', name: 'helper', parent: 'job1.0', programUrl: HOOKED_PROGRAM });
    await settle();
    worker.deliver('job1.1', message('job1.0', 1, 'to second'));
    worker.send({ type: 'reply', tid: 'job1.0', requestId: 1, ok: true, value: ['job1.1'] });
    await settle();
    worker.deliver('job1.0', message('job1.1', 1, 'to first'));
    expect(await second).toMatchObject({ ok: true, value: 'to second' });
    expect(await first).toMatchObject({ ok: true, value: { spawned: ['job1.1'], got: 'to first' } });
  });

  it('delivers an exit notification as an ordinary message', async () => {
    const worker = fakeWorker(host);
    hookTasks({
      main: async (ctx) => {
        await ctx.notifyExit(['job1.4'], 8);
        return (await ctx.recv({ tag: 8 })) as ReceivedMessage & { data: ExitNotice };
      },
    });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.deliver('job1.0', { from: 'job1.4', tag: 8, seq: 1, data: { tid: 'job1.4', ok: false } });
    expect(await done).toMatchObject({ ok: true, value: { from: 'job1.4', tag: 8, data: { tid: 'job1.4', ok: false } } });
  });

  function message(from: string, tag: number, data: unknown) {
    return { from, tag, seq: 1, data };
  }
});

describe('named exports and identity', () => {
  it('runs the named export the assignment names, with its parent', async () => {
    const worker = fakeWorker();
    hookTasks({ helper: (ctx: TaskContext, input) => ({ parent: ctx.parent, input }) });
    expect(await worker.run({ programUrl: HOOKED_PROGRAM, name: 'helper', parent: 'job1.9', input: 3 })).toMatchObject({
      ok: true,
      value: { parent: 'job1.9', input: 3 },
    });
  });

  it('fails a name the program does not export with E_BAD_PROGRAM', async () => {
    const worker = fakeWorker();
    const done = await worker.run({ programUrl: program('export default () => 1; export const notAFunction = 2;'), name: 'missing' });
    expect(done).toMatchObject({ ok: false, error: { code: 'E_BAD_PROGRAM', message: 'the program has no callable export named "missing"' } });
    const data = await worker.run({ tid: 'job1.1', programUrl: program('export default () => 1; export const notAFunction = 2;'), name: 'notAFunction' });
    expect(data).toMatchObject({ ok: false, error: { code: 'E_BAD_PROGRAM' } });
  });

  it('refuses messaging after the task has ended', async () => {
    const worker = fakeWorker();
    let saved: TaskContext | undefined;
    hookTasks({
      main: (ctx) => {
        saved = ctx;
      },
    });
    await worker.run({ programUrl: HOOKED_PROGRAM });
    expect(codeOf(() => saved!.send('job1.1', 1, 'late'))).toBe('E_CONFLICT');
    expect(worker.of('send')).toEqual([]);
  });
});

const seqOf = (bytes: Uint8Array): string => {
  const decoded = decodeEnvelope(bytes);
  if (!decoded.ok || decoded.value.header.type !== 'msg') throw new Error('not a message envelope');
  const { from, to, seq } = decoded.value.header;
  return `${from}>${to}:${seq}`;
};

describe('lanes', () => {
  it('writes a message on an open lane and copies it to the host, one larger than a lane frame in pieces; a lane closed sends through the host', async () => {
    const worker = fakeWorker();
    const lane = new FakeLane();
    hookTasks({
      main: async (ctx) => {
        await ctx.recv({ tag: 99 });
        ctx.send('job1.1', 1, 'on the lane');
        ctx.send('job1.2', 1, 'no lane to it');
        ctx.send('job1.1', 2, new Uint8Array(LANE_MESSAGE_BYTES));
        ctx.send('job1.1', 3, { back: 'on the lane' });
        lane.close();
        ctx.send('job1.1', 4, 'the lane closed');
      },
    });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'lane-out', tid: 'job1.0', to: 'job1.1', channel: lane });
    worker.deliver('job1.0', { from: 'job1.1', tag: 99, seq: 1, data: null });
    expect(await done).toMatchObject({ ok: true });
    // the large one went as two frames, each within a lane frame's size
    expect(lane.sent.map((frame) => (isLanePiece(frame) ? 'piece' : seqOf(frame)))).toEqual(['job1.0>job1.1:1', 'piece', 'piece', 'job1.0>job1.1:3']);
    expect(lane.sent.every((frame) => frame.byteLength <= LANE_MESSAGE_BYTES)).toBe(true);
    const assembly = new LaneAssembly(LIMITS.messageBytes * 2);
    const carried = lane.sent.flatMap((frame) => {
      if (!isLanePiece(frame)) return [frame];
      const whole = assembly.add(frame);
      return whole instanceof Uint8Array ? [whole] : [];
    });
    expect(carried.map(seqOf)).toEqual(['job1.0>job1.1:1', 'job1.0>job1.1:2', 'job1.0>job1.1:3']);
    expect(worker.of('lane-wrote')).toEqual([{ type: 'lane-wrote', tid: 'job1.0', pairs: [{ to: 'job1.1', seq: 3, count: 3 }] }]);
    // nothing acknowledged them: the worker hands its copies over, whole, as the lane closes
    const copies = worker.of('lane-sent').flatMap((m) => m.envelopes);
    expect(copies).toEqual(carried);
    const decoded = decodeEnvelope(copies[2]!);
    expect(decoded.ok && decoded.value.header.type === 'msg' && messageFromEnvelope(decoded.value.header, decoded.value.buffers).data).toEqual({ back: 'on the lane' });
    expect(worker.sent().map((m) => `${m.to}:${m.seq}`)).toEqual(['job1.2:1', 'job1.1:4']);
    expect(worker.of('lane-closed')).toEqual([{ type: 'lane-closed', tid: 'job1.0', to: 'job1.1' }]);
  });

  it('queues in order what a lane that is behind cannot take, and writes it as the lane drains', async () => {
    const worker = fakeWorker();
    const lane = new FakeLane();
    hookTasks({
      main: async (ctx) => {
        await ctx.recv({ tag: 99 });
        ctx.send('job1.1', 1, 'first');
        lane.bufferedAmount = 2 * 1024 * 1024;
        ctx.send('job1.1', 2, 'queued');
        ctx.send('job1.1', 3, 'queued too');
        await ctx.recv({ tag: 98 });
        ctx.send('job1.1', 4, 'after the drain');
      },
    });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'lane-out', tid: 'job1.0', to: 'job1.1', channel: lane });
    expect(lane.bufferedAmountLowThreshold).toBeGreaterThan(0);
    worker.deliver('job1.0', { from: 'job1.1', tag: 99, seq: 1, data: null });
    await settle();
    expect(lane.sent.map(seqOf)).toEqual(['job1.0>job1.1:1']);
    lane.drained();
    expect(lane.sent.map(seqOf)).toEqual(['job1.0>job1.1:1', 'job1.0>job1.1:2', 'job1.0>job1.1:3']);
    worker.deliver('job1.0', { from: 'job1.1', tag: 98, seq: 2, data: null });
    expect(await done).toMatchObject({ ok: true });
    expect(lane.sent.map(seqOf)).toEqual(['job1.0>job1.1:1', 'job1.0>job1.1:2', 'job1.0>job1.1:3', 'job1.0>job1.1:4']);
    const copies = worker.of('lane-sent').flatMap((m) => m.envelopes);
    expect(copies.map(seqOf)).toEqual(lane.sent.map(seqOf));
    expect(worker.of('send')).toEqual([]);
  });

  it('keeps its copies of lane messages until acknowledged, and hands the host the rest before a checkpoint', async () => {
    const worker = fakeWorker();
    const lane = new FakeLane();
    hookTasks({
      main: async (ctx) => {
        await ctx.recv({ tag: 99 });
        for (const n of [1, 2, 3]) ctx.send('job1.1', 1, n);
        await ctx.recv({ tag: 98 });
        await ctx.checkpoint('after three');
        ctx.send('job1.1', 1, 4);
        await ctx.recv({ tag: 97 });
      },
    });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'lane-out', tid: 'job1.0', to: 'job1.1', channel: lane });
    worker.deliver('job1.0', { from: 'job1.1', tag: 99, seq: 1, data: null });
    await settle();
    expect(lane.sent.map(seqOf)).toEqual(['job1.0>job1.1:1', 'job1.0>job1.1:2', 'job1.0>job1.1:3']);
    // the copies stay in the worker: the host's page is another process
    expect(worker.of('lane-sent')).toEqual([]);
    worker.send({ type: 'lane-acked', tid: 'job1.0', to: 'job1.1', seq: 2 });
    worker.deliver('job1.0', { from: 'job1.1', tag: 98, seq: 2, data: null });
    await settle();
    // a task restarted from the checkpoint does not send 3 again: its copy goes to the host first
    const kinds = worker.posted.filter((m) => m.type === 'lane-wrote' || m.type === 'lane-sent' || m.type === 'checkpoint').map((m) => m.type);
    expect(kinds).toEqual(['lane-wrote', 'lane-sent', 'checkpoint']);
    expect(worker.of('lane-sent').flatMap((m) => m.envelopes).map(seqOf)).toEqual(['job1.0>job1.1:3']);
    worker.send({ type: 'lane-acked', tid: 'job1.0', to: 'job1.1', seq: 4 });
    worker.deliver('job1.0', { from: 'job1.1', tag: 97, seq: 3, data: null });
    expect(await done).toMatchObject({ ok: true });
    // 4 was acknowledged: nothing more to hand over as the task ends
    expect(worker.of('lane-sent').flatMap((m) => m.envelopes).map(seqOf)).toEqual(['job1.0>job1.1:3']);
    expect(worker.of('lane-wrote').flatMap((m) => m.pairs)).toEqual([
      { to: 'job1.1', seq: 3, count: 3 },
      { to: 'job1.1', seq: 4, count: 1 },
    ]);
  });

  it('keeps at most 64 MiB unacknowledged over all of a task’s lanes: past that, messages go through the host', async () => {
    const worker = fakeWorker();
    const lanes = [new FakeLane(), new FakeLane()];
    const piece = new Uint8Array(120 * 1024);
    const perLane = 300; // 2 × 300 × 120 KiB is 70 MiB
    hookTasks({
      main: async (ctx) => {
        await ctx.recv({ tag: 99 });
        for (const lane of lanes) lane.bufferedAmount = 2 * 1024 * 1024;
        for (let i = 0; i < perLane; i++) ctx.send('job1.1', 1, piece);
        for (let i = 0; i < perLane; i++) ctx.send('job1.2', 1, piece);
      },
    });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'lane-out', tid: 'job1.0', to: 'job1.1', channel: lanes[0]! });
    worker.send({ type: 'lane-out', tid: 'job1.0', to: 'job1.2', channel: lanes[1]! });
    worker.deliver('job1.0', { from: 'job1.1', tag: 99, seq: 1, data: null });
    expect(await done).toMatchObject({ ok: true });
    const viaHost = worker.sent();
    const queued = worker.of('lane-sent').reduce((n, m) => n + m.envelopes.length, 0);
    expect(queued + viaHost.length).toBe(2 * perLane);
    expect(queued * (120 * 1024)).toBeLessThanOrEqual(64 * 1024 * 1024);
    expect(queued).toBeGreaterThan(perLane);
    expect(viaHost.every((m) => m.to === 'job1.2')).toBe(true);
  });

  it('hands the host its copy of a queued message when the lane closes before writing it', async () => {
    const worker = fakeWorker();
    const lane = new FakeLane();
    hookTasks({
      main: async (ctx) => {
        await ctx.recv({ tag: 99 });
        lane.bufferedAmount = 2 * 1024 * 1024;
        ctx.send('job1.1', 1, 'queued');
        lane.close();
        ctx.send('job1.1', 2, 'the lane closed');
      },
    });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'lane-out', tid: 'job1.0', to: 'job1.1', channel: lane });
    worker.deliver('job1.0', { from: 'job1.1', tag: 99, seq: 1, data: null });
    expect(await done).toMatchObject({ ok: true });
    expect(lane.sent).toEqual([]);
    expect(worker.of('lane-sent').flatMap((m) => m.envelopes).map(seqOf)).toEqual(['job1.0>job1.1:1']);
    expect(worker.sent().map((m) => `${m.to}:${m.seq}`)).toEqual(['job1.1:2']);
    expect(worker.of('lane-closed')).toEqual([{ type: 'lane-closed', tid: 'job1.0', to: 'job1.1' }]);
  });

  it('reports a relay lane whose socket does not open as closed, and sends through the host meanwhile', async () => {
    const worker = fakeWorker();
    hookTasks({
      main: async (ctx) => {
        await ctx.recv({ tag: 99 });
        ctx.send('job1.1', 1, 'through the host');
        await ctx.recv({ tag: 99 });
      },
    });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    // Node has no WebSocket or nothing listens there: either way the lane closes, at once or soon
    worker.send({ type: 'relay-lane-out', tid: 'job1.0', to: 'job1.1', url: 'ws://127.0.0.1:1/lane?token=0' });
    worker.send({ type: 'relay-lane-in', tid: 'job1.0', from: 'job1.1', url: 'ws://127.0.0.1:1/lane?token=1' });
    worker.deliver('job1.0', { from: 'job1.1', tag: 99, seq: 1, data: null });
    for (let i = 0; i < 100 && worker.of('lane-closed').length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(worker.of('lane-closed')).toEqual([{ type: 'lane-closed', tid: 'job1.0', to: 'job1.1' }]);
    worker.deliver('job1.0', { from: 'job1.1', tag: 99, seq: 2, data: null });
    expect(await done).toMatchObject({ ok: true });
    expect(worker.sent().map((m) => `${m.to}:${m.seq}`)).toEqual(['job1.1:1']);
    expect(worker.of('lane-sent')).toEqual([]);
  });

  it('keeps a lane handed to a task not started here for its start, up to a bound, and closes the lanes of a task that ends', async () => {
    const worker = fakeWorker();
    // a sandbox frame hands lanes over apart from the host's `starts`: one may come first
    const strays = Array.from({ length: 257 }, () => new FakeLane());
    strays.forEach((stray, i) => worker.send({ type: 'lane-out', tid: `job1.${100 + i}`, to: 'job1.1', channel: stray }));
    expect(strays.filter((s) => s.readyState === 'closed').length).toBe(1);
    expect(strays.at(-1)!.readyState).toBe('closed');

    const lane = new FakeLane();
    hookTasks({ main: async (ctx) => void (await ctx.recv({ tag: 99 })) });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'lane-out', tid: 'job1.0', to: 'job1.1', channel: lane });
    worker.deliver('job1.0', { from: 'job1.1', tag: 99, seq: 1, data: null });
    await done;
    expect(lane.readyState).toBe('closed');
    expect(worker.of('lane-closed')).toEqual([]);
  });
});
