import { LIMITS, SubmitJobRequest, decodeEnvelope, encodeImage, imageParts, type ImagePartHeader } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it } from 'vitest';
import type { Scheduler } from '../src/scheduler/scheduler.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import { type FakeHost, closeSchedulers, connect, schedulerHarness, settle } from './support/scheduler-harness.ts';

afterEach(closeSchedulers);

/**
 * A main job whose root spawned two tasks over hosts a and b, of one volunteer, and a keeper k of
 * another that runs nothing: the only host an image can go to.
 */
async function withKeeper(store?: SqliteStore) {
  const { scheduler } = schedulerHarness(store ? { store } : {});
  scheduler.jobs.submit(SubmitJobRequest.parse({ program: 'x', main: { n: 1 } }), 'p', 'o', 'job1');
  const hosts: Record<string, FakeHost> = { ha: connect(scheduler, 'ha', 1, [], 'v-ab'), hb: connect(scheduler, 'hb', 1, [], 'v-ab') };
  await settle();
  const rootHost = hosts.ha!.assigned().length ? 'ha' : 'hb';
  scheduler.vm.request(rootHost, 'job1.0', 1, 1, { kind: 'spawn', name: 'strip', inputs: [1, 2] });
  await settle();
  hosts.hk = connect(scheduler, 'hk', 0);
  const hostOf = (tid: string) => scheduler.jobs.task(tid)!.hostId!;
  return { scheduler, hosts, hostOf };
}

/** A checkpoint image of `tid` whose state is too large for the coordinator to keep. */
const largeImage = (tid: string, fill = 0) =>
  encodeImage({
    tid,
    checkpoint: { state: { json: { step: 7 }, buffers: [new Uint8Array(LIMITS.checkpointImageBytes + 8).fill(fill)] }, rng: [1, 2, 3, 4], sent: [], requests: 0 },
    delivered: new Map([['job1.0', 3]]),
    mailbox: [],
    pending: [],
    log: [],
  });

function partsOf(frames: Uint8Array[]): { header: ImagePartHeader; piece: Uint8Array; frame: Uint8Array }[] {
  return frames.flatMap((frame) => {
    const decoded = decodeEnvelope(frame);
    return decoded.ok && decoded.value.header.type === 'part' ? [{ header: decoded.value.header, piece: decoded.value.buffers[0]!, frame }] : [];
  });
}

function sendImage(scheduler: Scheduler, hostId: string, tid: string, bytes: Uint8Array, id = 1) {
  for (const { header, piece, frame } of partsOf(imageParts(tid, 1, bytes, id))) expect(scheduler.migrations.imagePart(hostId, header, piece, frame)).toBeNull();
  return scheduler.recovery.checkpointImage(hostId, { type: 'checkpoint-image', tid, attempt: 1, image: id, imageBytes: bytes.byteLength });
}

/** The keeper stores what it was sent last and says so. */
function keeperStores(scheduler: Scheduler, keeper: FakeHost, hostId = 'hk') {
  const keep = keeper.of('keep-image').at(-1)!;
  scheduler.kept.stored(hostId, { type: 'image-kept', tid: keep.tid, image: keep.image });
  return keep;
}

/** The keeper gives back `bytes` as asked. */
function keeperReturns(scheduler: Scheduler, keeper: FakeHost, bytes: Uint8Array) {
  const asked = keeper.of('return-image').at(-1)!;
  for (const { header, piece, frame } of partsOf(imageParts(asked.tid, asked.attempt, bytes, asked.image))) scheduler.migrations.imagePart('hk', header, piece, frame);
  return scheduler.kept.returned('hk', { type: 'image-returned', tid: asked.tid, attempt: asked.attempt, image: asked.image });
}

const covered = (hosts: Record<string, FakeHost>) => Object.values(hosts).flatMap((h) => h.of('covered').flatMap((m) => m.items));

describe('checkpoint images kept by other volunteers', () => {
  it('sends an image too large to hold to a host of another volunteer, and tells the senders what it covers only once that host stored it', async () => {
    const { scheduler, hosts, hostOf } = await withKeeper();
    const bytes = largeImage('job1.1');
    expect(sendImage(scheduler, hostOf('job1.1'), 'job1.1', bytes)).toBeNull();
    const keep = hosts.hk!.of('keep-image')[0]!;
    expect(keep).toMatchObject({ tid: 'job1.1', attempt: 1, imageBytes: bytes.byteLength });
    expect(partsOf(hosts.hk!.binary).every((p) => p.header.image === keep.image)).toBe(true);
    const task = scheduler.jobs.task('job1.1')!;
    expect(task.start).toMatchObject({ image: null, kept: null });
    await settle();
    expect(covered(hosts)).toEqual([]);

    keeperStores(scheduler, hosts.hk!);
    expect(task.start.kept).toMatchObject({ hostId: 'hk', image: keep.image, bytes: bytes.byteLength });
    // not before a restarted coordinator would know it too
    expect(covered(hosts)).toEqual([]);
    await settle();
    expect(covered(hosts)).toEqual([{ tid: 'job1.0', to: 'job1.1', seq: 3 }]);

    // the next one replaces it in place: the keeper is not told to forget the task
    expect(sendImage(scheduler, hostOf('job1.1'), 'job1.1', largeImage('job1.1', 1), 2)).toBeNull();
    keeperStores(scheduler, hosts.hk!);
    expect(hosts.hk!.of('forget-images')).toEqual([]);
    expect(scheduler.hosts.get('hk')!.kept).toEqual(new Map([['job1.1', bytes.byteLength]]));
  });

  it('says so when no other host can keep it, and ignores a keeper that stored an image it was not sent last', async () => {
    const { scheduler, hosts, hostOf } = await withKeeper();
    // a draining host keeps nothing new
    scheduler.hosts.get('hk')!.draining = true;
    // the other host is of the same volunteer: it keeps the image, as there is no other
    expect(sendImage(scheduler, hostOf('job1.1'), 'job1.1', largeImage('job1.1'))).toBeNull();
    const other = hostOf('job1.1') === 'ha' ? 'hb' : 'ha';
    expect(hosts[other]!.of('keep-image')).toHaveLength(1);
    scheduler.kept.stored(other, { type: 'image-kept', tid: 'job1.1', image: hosts[other]!.of('keep-image')[0]!.image + 1 });
    expect(scheduler.jobs.task('job1.1')!.start.kept).toBeNull();
    scheduler.hosts.detach(other, hosts[other]!);
    await settle();
    // job1.1's own host is the only one left
    const alone = scheduler.jobs.task('job1.1')!;
    expect(alone.state).toBe('running');
    expect(sendImage(scheduler, alone.hostId!, 'job1.1', largeImage('job1.1'), 3)).toMatchObject({ code: 'E_TOO_LARGE', message: expect.stringContaining('no other volunteer can keep') });
  });

  it('restarts a task lost with its host from the image its keeper gives back, checked against its hash', async () => {
    const { scheduler, hosts, hostOf } = await withKeeper();
    const lostHost = hostOf('job1.1');
    const bytes = largeImage('job1.1');
    sendImage(scheduler, lostHost, 'job1.1', bytes);
    keeperStores(scheduler, hosts.hk!);
    await settle();
    const survivor = hosts[lostHost === 'ha' ? 'hb' : 'ha']!;
    scheduler.hosts.detach(lostHost, hosts[lostHost]!);
    await settle();
    const again = survivor.assigned().find((t) => t.tid === 'job1.1')!;
    expect(again).toMatchObject({ attempt: 2, imageBytes: bytes.byteLength, recovering: true, resume: null });
    expect(hosts.hk!.of('return-image')).toEqual([{ type: 'return-image', tid: 'job1.1', attempt: 2, image: hosts.hk!.of('keep-image')[0]!.image }]);

    const before = survivor.binary.length;
    expect(keeperReturns(scheduler, hosts.hk!, bytes)).toBeNull();
    const forwarded = partsOf(survivor.binary.slice(before));
    expect(forwarded.map((p) => [p.header.tid, p.header.attempt, p.header.image ?? 0])).toEqual(forwarded.map(() => ['job1.1', 2, 0]));
    expect(forwarded.reduce((n, p) => n + p.piece.byteLength, 0)).toBe(bytes.byteLength);
    // the holder waited too long and asks again: the keeper is asked again
    scheduler.migrations.imageMissing(survivor === hosts.ha ? 'ha' : 'hb', 'job1.1', 2);
    expect(hosts.hk!.of('return-image')).toHaveLength(1);
  });

  it('fails the task, rather than start it from another state, when the keeper gives back a different image', async () => {
    const { scheduler, hosts, hostOf } = await withKeeper();
    const lostHost = hostOf('job1.1');
    sendImage(scheduler, lostHost, 'job1.1', largeImage('job1.1'));
    keeperStores(scheduler, hosts.hk!);
    await settle();
    const survivor = hosts[lostHost === 'ha' ? 'hb' : 'ha']!;
    scheduler.hosts.detach(lostHost, hosts[lostHost]!);
    await settle();
    const before = survivor.binary.length;
    expect(keeperReturns(scheduler, hosts.hk!, largeImage('job1.1', 9))).toMatchObject({ code: 'E_BAD_FRAME' });
    expect(survivor.binary.length).toBe(before);
    expect(scheduler.jobs.task('job1.1')).toMatchObject({ state: 'failed', error: { code: 'E_TASK_LOST' } });
    expect(survivor.of('cancel').flatMap((c) => c.tasks)).toContainEqual({ tid: 'job1.1', attempt: 2 });
  });

  it('asks a task whose keeper left for a new checkpoint, and fails one that waited to start from it', async () => {
    const { scheduler, hosts, hostOf } = await withKeeper();
    sendImage(scheduler, hostOf('job1.1'), 'job1.1', largeImage('job1.1'));
    keeperStores(scheduler, hosts.hk!);
    sendImage(scheduler, hostOf('job1.2'), 'job1.2', largeImage('job1.2'), 2);
    keeperStores(scheduler, hosts.hk!);
    await settle();
    // job1.2 lost its host and waits for its image when the keeper goes too
    const waiting = scheduler.jobs.task('job1.2')!;
    const running = scheduler.jobs.task('job1.1')!;
    expect(waiting.hostId).not.toBe(running.hostId);
    scheduler.hosts.detach(waiting.hostId!, hosts[waiting.hostId!]!);
    await settle();
    scheduler.hosts.detach('hk', hosts.hk!);
    expect(waiting).toMatchObject({ state: 'failed', error: { code: 'E_TASK_LOST', message: expect.stringContaining('the volunteer that kept its') } });
    expect(running).toMatchObject({ state: 'running', unlogged: true, start: { kept: null } });
    expect(hosts[running.hostId!]!.of('checkpoint-due')).toEqual([{ type: 'checkpoint-due', tasks: [{ tid: 'job1.1', attempt: 1 }] }]);
  });

  it('keeps who keeps what across a restart, and has a host forget what it keeps for nobody', async () => {
    const store = new SqliteStore(':memory:');
    const first = await withKeeper(store);
    sendImage(first.scheduler, first.hostOf('job1.1'), 'job1.1', largeImage('job1.1'));
    const keep = keeperStores(first.scheduler, first.hosts.hk!);
    await settle();
    await first.scheduler.writes.durable();

    const { scheduler } = schedulerHarness({ store });
    await scheduler.restore();
    expect(scheduler.jobs.task('job1.1')!.start.kept).toMatchObject({ hostId: 'hk', image: keep.image });
    expect(scheduler.hosts.get('hk')!.kept.has('job1.1')).toBe(true);
    const keeper = connect(scheduler, 'hk', 0);
    scheduler.kept.reconcile('hk', ['job1.1', 'job1.2']);
    expect(keeper.of('forget-images')).toEqual([{ type: 'forget-images', tids: ['job1.2'] }]);
    await store.close();
  });
});
