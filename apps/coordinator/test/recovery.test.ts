import { SubmitJobRequest, decodeEnvelope, encodeImage, imageParts, sealMessage, type TaskImage } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it } from 'vitest';
import type { Scheduler } from '../src/scheduler/scheduler.ts';
import { SqliteStore } from '../src/store/sqlite-store.ts';
import type { WriteBatch } from '../src/store/store.ts';
import { type FakeHost, closeSchedulers, connect, schedulerHarness, settle } from './support/scheduler-harness.ts';

afterEach(closeSchedulers);

const mainSpec = () => SubmitJobRequest.parse({ program: 'x', main: { n: 1 } });

/** A main job whose root spawned two tasks, spread over hosts a and b. */
async function threeTasks(disconnectGraceMs = 0) {
  const { scheduler } = schedulerHarness({ disconnectGraceMs });
  scheduler.jobs.submit(mainSpec(), 'p', 'o', 'job1');
  const hosts = { ha: connect(scheduler, 'ha', 1), hb: connect(scheduler, 'hb', 1) };
  await settle();
  const rootHost = hosts.ha.assigned().length ? 'ha' : 'hb';
  scheduler.vm.request(rootHost, 'job1.0', 1, 1, { kind: 'spawn', name: 'strip', inputs: [1, 2] });
  await settle();
  const hostOf = (tid: string) => scheduler.jobs.task(tid)!.hostId!;
  return { scheduler, hosts, hostOf };
}

const image = (tid: string, extra: Partial<TaskImage> = {}): Uint8Array =>
  encodeImage({
    tid,
    checkpoint: { state: { json: { step: 7 }, buffers: [new Uint8Array(8)] }, rng: [1, 2, 3, 4], sent: [{ to: 'job1.1', seq: 4 }], requests: 1 },
    delivered: new Map([['job1.0', 3], ['job1.2', 5]]),
    mailbox: [sealMessage({ from: 'job1.0', to: tid, tag: 1, seq: 3, data: 'unread' })],
    pending: [],
    log: [sealMessage({ from: tid, to: 'job1.0', tag: 1, seq: 4, data: 'halo' }).envelope],
    ...extra,
  });

/** Sends `bytes` as checkpoint image `id` of `tid`'s attempt 1 from `hostId`. */
function sendImage(scheduler: Scheduler, hostId: string, tid: string, bytes: Uint8Array, id = 1) {
  for (const part of imageParts(tid, 1, bytes, id)) {
    const decoded = decodeEnvelope(part);
    if (!decoded.ok || decoded.value.header.type !== 'part') throw new Error('not a part');
    expect(scheduler.migrations.imagePart(hostId, decoded.value.header, decoded.value.buffers[0]!, part)).toBeNull();
  }
  return scheduler.recovery.checkpointImage(hostId, { type: 'checkpoint-image', tid, attempt: 1, image: id, imageBytes: bytes.byteLength });
}

const covered = (host: FakeHost) => host.of('covered').flatMap((m) => m.items);

describe('crash recovery', () => {
  it('keeps a checkpoint image as the restart point and tells each sender what it covers', async () => {
    const { scheduler, hosts, hostOf } = await threeTasks();
    const bytes = image('job1.1');
    expect(sendImage(scheduler, hostOf('job1.1'), 'job1.1', bytes)).toBeNull();
    expect(scheduler.jobs.task('job1.1')!.start.image).toEqual(bytes);
    // senders hear of it once the image is stored
    expect([...covered(hosts.ha), ...covered(hosts.hb)]).toEqual([]);
    await settle();
    const told = [...covered(hosts.ha), ...covered(hosts.hb)];
    expect(told).toEqual(expect.arrayContaining([{ tid: 'job1.0', to: 'job1.1', seq: 3 }, { tid: 'job1.2', to: 'job1.1', seq: 5 }]));
    expect(told).toHaveLength(2);
    // each sender's own host hears of it
    for (const { tid } of told) expect(covered(hosts[hostOf(tid) as 'ha' | 'hb']).some((c) => c.tid === tid)).toBe(true);
  });

  it('never mixes the parts of an image cut short with those of the next one', async () => {
    const { scheduler, hostOf } = await threeTasks();
    const host = hostOf('job1.1');
    const first = image('job1.1', { log: [sealMessage({ from: 'job1.1', to: 'job1.0', tag: 1, seq: 4, data: new Uint8Array(1_500_000) }).envelope] });
    const [head] = imageParts('job1.1', 1, first, 1);
    const decoded = decodeEnvelope(head!);
    if (!decoded.ok || decoded.value.header.type !== 'part') throw new Error('not a part');
    // the connection broke after its first part: the next image comes whole
    scheduler.migrations.imagePart(host, decoded.value.header, decoded.value.buffers[0]!, head!);
    const second = image('job1.1', { log: [sealMessage({ from: 'job1.1', to: 'job1.0', tag: 1, seq: 5, data: new Uint8Array(1_500_000) }).envelope] });
    expect(sendImage(scheduler, host, 'job1.1', second, 2)).toBeNull();
    expect(scheduler.jobs.task('job1.1')!.start.image).toEqual(second);
  });

  it('refuses an image of another task, one that did not arrive whole, and one from a host that does not run the task', async () => {
    const { scheduler, hostOf } = await threeTasks();
    const host = hostOf('job1.1');
    expect(sendImage(scheduler, host, 'job1.1', image('job1.2'))).toMatchObject({ code: 'E_FORBIDDEN' });
    expect(scheduler.recovery.checkpointImage(host, { type: 'checkpoint-image', tid: 'job1.1', attempt: 1, image: 9, imageBytes: 100 })).toMatchObject({ code: 'E_BAD_FRAME' });
    const other = host === 'ha' ? 'hb' : 'ha';
    expect(scheduler.recovery.checkpointImage(other, { type: 'checkpoint-image', tid: 'job1.1', attempt: 1, image: 9, imageBytes: 100 })).toMatchObject({ code: 'E_NOT_ASSIGNED' });
    expect(scheduler.jobs.task('job1.1')!.start.image).toBeNull();
  });

  it('restarts a task lost with its host from its image, as recovering, and has its job\'s other tasks send it their logs again', async () => {
    const { scheduler, hosts, hostOf } = await threeTasks();
    const lostHost = hostOf('job1.1');
    const bytes = image('job1.1');
    sendImage(scheduler, lostHost, 'job1.1', bytes);
    const survivor = lostHost === 'ha' ? hosts.hb : hosts.ha;
    scheduler.hosts.detach(lostHost, hosts[lostHost as 'ha' | 'hb']);
    await settle();
    expect(survivor.of('restarted')).toEqual([{ type: 'restarted', tids: ['job1.1'] }]);
    const again = survivor.assigned().find((t) => t.tid === 'job1.1')!;
    expect(again).toMatchObject({ attempt: 2, imageBytes: bytes.byteLength, recovering: true, resume: null });
    // a spawned task runs beside the others again, past the survivor's one slot
    expect(survivor.order.indexOf('part')).toBeLessThan(survivor.order.lastIndexOf('assign'));
    expect(scheduler.jobs.task('job1.1')).toMatchObject({ state: 'running', losses: 1, failures: 0 });
  });

  it('has the other hosts of its tasks\' jobs send them again what they did not acknowledge when a host comes back after its connection broke', async () => {
    // its tasks stay its own while it is away
    const { scheduler, hosts, hostOf } = await threeTasks(60_000);
    const back = hostOf('job1.1');
    const other = back === 'ha' ? hosts.hb : hosts.ha;
    const held = scheduler.hosts.get(back)!.assigned;
    const running = [...held].map(([tid, attempt]) => ({ tid, attempt }));
    scheduler.hosts.detach(back, hosts[back as 'ha' | 'hb']);
    const again = connect(scheduler, back, 1, running);
    expect(scheduler.jobs.task('job1.1')!.attempt).toBe(1);
    await settle();
    expect(other.of('reconnected')).toEqual([{ type: 'reconnected', tids: running.map((r) => r.tid) }]);
    expect(other.of('restarted')).toEqual([]);
    // the host that came back is not asked for its own
    expect(again.of('reconnected')).toEqual([]);
  });

  it('keeps track of the hosts that keep ended tasks\' logs: they are told what is covered, asked to send again, and told to forget', async () => {
    const { scheduler, hosts, hostOf } = await threeTasks();
    const enderHost = hostOf('job1.2');
    const ender = hosts[enderHost as 'ha' | 'hb'];
    expect(scheduler.reports.outcomes(enderHost, [{ tid: 'job1.2', attempt: 1, ok: true, value: null, sent: [{ to: 'job1.1', seq: 6 }] }])).toEqual([]);
    await settle();
    // a checkpoint of the receiver that covers the ended task's messages reaches the host that kept its log
    expect(sendImage(scheduler, hostOf('job1.1'), 'job1.1', image('job1.1'))).toBeNull();
    await settle();
    expect(covered(ender)).toContainEqual({ tid: 'job1.2', to: 'job1.1', seq: 5 });
    // the receiver restarts after a crash: the log keeper sends it again what it holds
    const lostHost = hostOf('job1.1');
    scheduler.hosts.detach(lostHost, hosts[lostHost as 'ha' | 'hb']);
    await settle();
    expect(ender.of('restarted')).toContainEqual({ type: 'restarted', tids: ['job1.1'] });
    // after a welcome, the keeper lists its ended tasks: one of an unknown job is forgotten, one of a running job kept
    expect(scheduler.recovery.logsKept(enderHost, ['job1.2', 'nojob.4'])).toEqual({ type: 'forget-logs', jobs: ['nojob'] });
    expect(scheduler.recovery.logsKept(enderHost, ['job1.2'])).toBeNull();
    // a host that never ran the job keeps nothing of it; one that did is known as a keeper again (a restarted coordinator learns so)
    const stranger = connect(scheduler, 'hz', 1);
    expect(scheduler.recovery.logsKept('hz', ['job1.2'])).toEqual({ type: 'forget-logs', jobs: ['job1'] });
    // the job ends: its logs go, from the hosts that keep them
    scheduler.jobs.cancel('job1');
    await settle();
    expect(ender.of('forget-logs')).toEqual([{ type: 'forget-logs', jobs: ['job1'] }]);
    expect(stranger.of('forget-logs')).toEqual([]);
  });

  it('has the hosts of the senders an image names, running or keeping their ended logs, send those messages again', async () => {
    const { scheduler, hosts, hostOf } = await threeTasks();
    const enderHost = hostOf('job1.2');
    expect(scheduler.reports.outcomes(enderHost, [{ tid: 'job1.2', attempt: 1, ok: true, value: null, sent: [{ to: 'job1.1', seq: 6 }] }])).toEqual([]);
    await settle();
    const all = () => [...hosts.ha.of('send-again'), ...hosts.hb.of('send-again')];
    const from = [
      { tid: 'job1.0', after: 2 },
      { tid: 'job1.2', after: 4 },
      { tid: 'jobx.1', after: 1 },
    ];
    // only the host that runs the task may ask for it
    const other = hostOf('job1.1') === 'ha' ? 'hb' : 'ha';
    scheduler.recovery.refill(other, { type: 'refill', tid: 'job1.1', attempt: 1, from });
    expect(all()).toEqual([]);
    scheduler.recovery.refill(hostOf('job1.1'), { type: 'refill', tid: 'job1.1', attempt: 1, from });
    const toHost = (hostId: string) => hosts[hostId as 'ha' | 'hb'].of('send-again').flatMap((m) => m.from.map((f) => `${m.to}<${f.tid}>${f.after}`));
    const expected = new Map<string, string[]>([
      ['ha', []],
      ['hb', []],
    ]);
    expected.get(hostOf('job1.0'))!.push('job1.1<job1.0>2');
    expected.get(enderHost)!.push('job1.1<job1.2>4');
    for (const [hostId, wanted] of expected) expect(toHost(hostId).sort()).toEqual(wanted.sort());
  });

  it('asks the receivers of the ended tasks whose logs a host took with it for a checkpoint, unrestartable until one is kept', async () => {
    const { scheduler, hosts, hostOf } = await threeTasks();
    const enderHost = hostOf('job1.2');
    scheduler.reports.outcomes(enderHost, [{ tid: 'job1.2', attempt: 1, ok: true, value: null, sent: [{ to: 'job1.1', seq: 6 }] }]);
    await settle();
    const receiverHost = hostOf('job1.1');
    expect(receiverHost).not.toBe(enderHost);
    expect(scheduler.jobs.task('job1.1')!.unlogged).toBe(false);
    // the keeper's browser died: it does not come back
    scheduler.hosts.detach(enderHost, hosts[enderHost as 'ha' | 'hb']);
    await settle();
    const receiver = scheduler.jobs.task('job1.1')!;
    expect(receiver.unlogged).toBe(true);
    expect(hosts[receiverHost as 'ha' | 'hb'].of('checkpoint-due')).toEqual([{ type: 'checkpoint-due', tasks: [{ tid: 'job1.1', attempt: 1 }] }]);
    // its next checkpoint kept makes it whole again
    expect(sendImage(scheduler, receiverHost, 'job1.1', image('job1.1'))).toBeNull();
    expect(receiver.unlogged).toBe(false);
  });

  it('asks the receiver of a full log for a checkpoint, and fails it with a clear error when a dropped log leaves it unrecoverable', async () => {
    const { scheduler, hosts, hostOf } = await threeTasks();
    const receiverHost = hostOf('job1.2');
    scheduler.recovery.logFull(hostOf('job1.1'), { type: 'log-full', tid: 'job1.1', attempt: 1, to: 'job1.2', dropped: false });
    expect(hosts[receiverHost as 'ha' | 'hb'].of('checkpoint-due')).toEqual([{ type: 'checkpoint-due', tasks: [{ tid: 'job1.2', attempt: 1 }] }]);
    // a host that does not run the sender is not heard
    const stranger = hostOf('job1.1') === 'ha' ? 'hb' : 'ha';
    scheduler.recovery.logFull(stranger, { type: 'log-full', tid: 'job1.1', attempt: 1, to: 'job1.2', dropped: true });
    expect(scheduler.jobs.task('job1.2')!.unlogged).toBe(false);

    scheduler.recovery.logFull(hostOf('job1.1'), { type: 'log-full', tid: 'job1.1', attempt: 1, to: 'job1.2', dropped: true });
    expect(scheduler.jobs.task('job1.2')!.unlogged).toBe(true);
    // a checkpoint image of the receiver makes it whole again
    sendImage(scheduler, receiverHost, 'job1.2', image('job1.2'));
    expect(scheduler.jobs.task('job1.2')!.unlogged).toBe(false);

    scheduler.recovery.logFull(hostOf('job1.1'), { type: 'log-full', tid: 'job1.1', attempt: 1, to: 'job1.2', dropped: true });
    const receiver = scheduler.jobs.task('job1.2')!;
    scheduler.jobs.lost({ tid: 'job1.2', attempt: 1 }, 'host closed', null);
    expect(receiver).toMatchObject({ state: 'failed', error: { code: 'E_TASK_LOST', message: expect.stringContaining('cannot be restarted exactly') } });
  });

  it('hands out an assignment, and answers a spawn, only once the store has them: a restart never repeats an attempt', async () => {
    // a store whose commits wait until the test lets them through
    let release: () => void = () => undefined;
    class GatedStore extends SqliteStore {
      override async commit(batch: WriteBatch): Promise<void> {
        await new Promise<void>((resolve) => (release = resolve));
        return super.commit(batch);
      }
    }
    const store = new GatedStore(':memory:');
    const { scheduler } = schedulerHarness({ store });
    scheduler.jobs.submit(mainSpec(), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    await settle();
    expect(a.assigned()).toEqual([]);
    // nobody learns where an assignment not sent yet runs: its messages wait
    expect(scheduler.relay.locate(['job1.0'])).toEqual([{ tid: 'job1.0', hostId: null, peerId: null }]);
    release();
    await settle();
    release();
    await settle();
    expect(a.assigned().map((t) => [t.tid, t.attempt])).toEqual([['job1.0', 1]]);
    expect(scheduler.relay.locate(['job1.0'])).toEqual([{ tid: 'job1.0', hostId: 'ha', peerId: 'ha-peer' }]);
    const answered = scheduler.vm.request('ha', 'job1.0', 1, 1, { kind: 'spawn', name: null, inputs: [null] });
    expect(answered).toEqual({ ok: true, value: ['job1.1'] });
    let replied = false;
    scheduler.vm.answered(() => (replied = true));
    await settle();
    expect(replied).toBe(false);
    release();
    await settle();
    expect(replied).toBe(true);
    release();
    await store.close();
  });
});
