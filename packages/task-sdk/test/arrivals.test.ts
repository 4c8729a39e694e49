import { encodeMessage, readSealed } from '@webpvm/vm-protocol/envelope';
import { lanePieces } from '@webpvm/vm-protocol/lane';
import { describe, expect, it } from 'vitest';
import type { ReceivedMessage } from '../src/index.ts';
import { FakeLane } from './support/fake-lane.ts';
import { HOOKED_PROGRAM, fakeWorker, hookTasks, settle } from './support/fake-worker.ts';

/** A task that reads `count` messages, checkpoints, and returns what it read. */
function reader(count: number) {
  hookTasks({
    main: async (ctx) => {
      const read: ReceivedMessage[] = [];
      for (let i = 0; i < count; i++) read.push((await ctx.recv())!);
      await ctx.checkpoint(null);
      return read.map((m) => m.data);
    },
  });
}

const reports = (worker: ReturnType<typeof fakeWorker>) =>
  worker.of('delivered').flatMap((m) => m.entries.map(({ n, from, seq, lane }) => `${n}:${from}:${seq}${lane ? ' lane' : ''}`));

describe('a task’s arrivals', () => {
  it('reports what the host delivered, numbered as the task received it, once per message', async () => {
    const worker = fakeWorker();
    reader(3);
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    worker.deliver('job1.0', { from: 'job1.1', tag: 1, seq: 1, data: 'a' }, { from: 'job1.2', tag: 1, seq: 1, data: 'b' });
    worker.deliver('job1.0', { from: 'job1.1', tag: 1, seq: 1, data: 'a again' }, { from: 'job1.1', tag: 1, seq: 2, data: 'c' });
    expect(await done).toMatchObject({ ok: true, value: ['a', 'b', 'c'] });
    expect(reports(worker)).toEqual(['1:job1.1:1', '2:job1.2:1', '3:job1.1:2']);
  });

  it('delivers a lane’s messages in seq order with the host’s, holding one that comes ahead of a gap', async () => {
    const worker = fakeWorker();
    reader(5);
    const lane = new FakeLane();
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'lane-in', tid: 'job1.0', from: 'job1.1', channel: lane });
    expect(lane.binaryType).toBe('arraybuffer');
    lane.write('job1.1', 1, 'one');
    lane.write('job1.1', 3, 'three');
    lane.write('job1.1', 4, 'four');
    worker.deliver('job1.0', { from: 'job1.1', tag: 1, seq: 2, data: 'two (through the host)' });
    lane.write('job1.1', 4, 'four again');
    lane.write('job1.1', 5, 'five');
    expect(await done).toMatchObject({ ok: true, value: ['one', 'two (through the host)', 'three', 'four', 'five'] });
    expect(reports(worker)).toEqual(['1:job1.1:1 lane', '2:job1.1:2', '3:job1.1:3 lane', '4:job1.1:4 lane', '5:job1.1:5 lane']);
  });

  it('keeps a lane that comes before its task starts and opens it as the task starts; one for a task withdrawn unstarted closes', async () => {
    const worker = fakeWorker();
    reader(2);
    // A sandbox frame hands lanes over apart from the host's messages: these overtook their starts.
    const early = new FakeLane();
    worker.send({ type: 'lane-in', tid: 'job1.0', from: 'job1.1', channel: early });
    const gone = new FakeLane();
    worker.send({ type: 'lane-in', tid: 'job1.6', from: 'job1.1', channel: gone });
    worker.send({ type: 'starts', tasks: [5, 6].map((i) => ({ type: 'start', task: { tid: `job1.${i}`, attempt: 1, jobId: 'job1', parent: null, name: null, input: null, resume: null, seed: 1, timeoutMs: null, programUrl: HOOKED_PROGRAM }, checkpointIntervalMs: 0 })) });
    worker.send({ type: 'withdraw', tids: ['job1.6'] });
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    expect([early.readyState, gone.readyState]).toEqual(['open', 'closed']);
    early.write('job1.1', 1, 'one');
    early.write('job1.1', 2, 'two');
    expect(await done).toMatchObject({ ok: true, value: ['one', 'two'] });
    expect(reports(worker)).toEqual(['1:job1.1:1 lane', '2:job1.1:2 lane']);
  });

  it('reports lane deliveries at once while its host waits for them (report-now), in batches otherwise', async () => {
    const worker = fakeWorker();
    reader(3);
    const lane = new FakeLane();
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'lane-in', tid: 'job1.0', from: 'job1.1', channel: lane });
    lane.write('job1.1', 1, 'one');
    expect(reports(worker)).toEqual([]);
    worker.send({ type: 'report-now', tid: 'job1.0' });
    expect(reports(worker)).toEqual(['1:job1.1:1 lane']);
    lane.write('job1.1', 2, 'two');
    expect(reports(worker)).toEqual(['1:job1.1:1 lane', '2:job1.1:2 lane']);
    worker.deliver('job1.0', { from: 'job1.1', tag: 1, seq: 3, data: 'three' });
    expect(await done).toMatchObject({ ok: true, value: ['one', 'two', 'three'] });
  });

  it('puts a lane’s large message together from its pieces, and drops one whose pieces stopped short', async () => {
    const worker = fakeWorker();
    hookTasks({
      main: async (ctx) => {
        const first = (await ctx.recv())!.data;
        const second = (await ctx.recv())!.data as Uint8Array;
        return [first, second.byteLength, second.every((b) => b === 9)];
      },
    });
    const lane = new FakeLane();
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'lane-in', tid: 'job1.0', from: 'job1.1', channel: lane });
    const big = (seq: number, fill: number) => lanePieces(encodeMessage({ from: 'job1.1', to: 'job1.0', tag: 1, seq, data: new Uint8Array(300_000).fill(fill) }));
    // the first try of seq 1 stopped after one piece (its lane broke there): a whole message comes next
    lane.writeFrame(big(1, 7)[0]!);
    lane.write('job1.1', 1, 'small, after pieces that stopped');
    for (const piece of big(2, 9)) lane.writeFrame(piece);
    expect(await done).toMatchObject({ ok: true, value: ['small, after pieces that stopped', 300_000, true] });
    expect(reports(worker)).toEqual(['1:job1.1:1 lane', '2:job1.1:2 lane']);
  });

  it('drops what a lane carries that is not its sender’s message to this task', async () => {
    const worker = fakeWorker();
    reader(1);
    const lane = new FakeLane();
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'lane-in', tid: 'job1.0', from: 'job1.1', channel: lane });
    lane.write('job1.2', 1, 'another sender');
    lane.write('job1.1', 1, 'another receiver', 'job1.3');
    lane.write('job1.1', 1, 'yes');
    expect(await done).toMatchObject({ ok: true, value: ['yes'] });
    expect(reports(worker)).toEqual(['1:job1.1:1 lane']);
  });

  it('names a lane’s messages in its reports, and hands the host the envelopes of those unread at a checkpoint', async () => {
    const worker = fakeWorker();
    hookTasks({
      main: async (ctx) => {
        const first = (await ctx.recv({ from: 'job1.1' }))!;
        await ctx.checkpoint(null);
        return first.data;
      },
    });
    const lane = new FakeLane();
    const done = worker.run({ programUrl: HOOKED_PROGRAM });
    await settle();
    worker.send({ type: 'lane-in', tid: 'job1.0', from: 'job1.2', channel: lane });
    lane.write('job1.2', 1, 'unread, from a lane');
    worker.deliver('job1.0', { from: 'job1.2', tag: 1, seq: 2, data: 'unread, from the host' });
    const other = new FakeLane();
    worker.send({ type: 'lane-in', tid: 'job1.0', from: 'job1.1', channel: other });
    other.write('job1.1', 1, 'read');
    expect(await done).toMatchObject({ ok: true, value: 'read' });
    const delivered = worker.of('delivered').flatMap((m) => m.entries);
    expect(delivered.every((e) => !('bytes' in e))).toBe(true);
    const [checkpoint] = worker.of('checkpoint');
    expect(checkpoint!.unread).toEqual([1, 2]);
    expect(checkpoint!.unreadLane.map(({ n }) => n)).toEqual([1]);
    expect(readSealed(checkpoint!.unreadLane[0]!.envelope)).toMatchObject({ ok: true, message: { from: 'job1.2', to: 'job1.0', seq: 1 } });
  });

  it('goes on from the seqs a resumed task had, and reports everything before its checkpoint', async () => {
    const worker = fakeWorker();
    reader(1);
    const lane = new FakeLane();
    const start = { type: 'start', checkpointIntervalMs: 0, delivered: [['job1.1', 7]], mailbox: [] };
    worker.send({ ...start, task: { tid: 'job1.0', attempt: 2, jobId: 'job1', parent: null, name: null, input: null, resume: null, seed: 1, timeoutMs: null, programUrl: HOOKED_PROGRAM } });
    await settle();
    worker.send({ type: 'lane-in', tid: 'job1.0', from: 'job1.1', channel: lane });
    lane.write('job1.1', 7, 'had it');
    lane.write('job1.1', 8, 'new');
    await settle();
    const kinds = worker.posted.filter((m) => m.type === 'delivered' || m.type === 'checkpoint').map((m) => m.type);
    expect(kinds).toEqual(['delivered', 'checkpoint']);
    expect(reports(worker)).toEqual(['1:job1.1:8 lane']);
  });
});
