import {
  decodeEnvelope,
  encodeImage,
  encodeMessage,
  imageParts,
  sealMessage,
} from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { clock, closeSchedulers, connect, schedulerHarness, settle, spec } from './support/scheduler-harness.ts';

afterEach(closeSchedulers);

const image = (tid: string) =>
  encodeImage({
    log: [],
    tid,
    checkpoint: { state: { json: { step: 7 }, buffers: [] }, rng: [1, 2, 3, 4], sent: [{ to: 'job1.1', seq: 3 }], requests: 2 },
    delivered: new Map([['job1.1', 5]]),
    mailbox: [sealMessage({ from: 'job1.1', to: tid, tag: 1, seq: 5, data: 'unread' })],
    pending: [],
  });

/** Runs job1 (two bag tasks): job1.0 on host a, job1.1 on host b. */
async function oneTaskOnA() {
  const { scheduler, events } = schedulerHarness();
  scheduler.jobs.submit(spec([0, 1]), 'p', 'owner', 'job1');
  const a = connect(scheduler, 'ha', 1);
  const b = connect(scheduler, 'hb', 1);
  await settle();
  expect(b.assigned().map((t) => t.tid)).toEqual(['job1.1']);
  const onA = a.assigned().find((t) => t.tid === 'job1.0')!;
  expect(onA).toBeDefined();
  return { scheduler, events, a, b, attempt: onA.attempt };
}

describe('scheduler migration', () => {
  it('places a migrated task on another host with its image before the assignment, and records the migration when it runs again', async () => {
    const { scheduler, events, a, b, attempt } = await oneTaskOnA();
    clock.now += 10;
    scheduler.migrations.migrating('ha', [{ tid: 'job1.0', attempt }], 'input');
    const bytes = image('job1.0');
    for (const part of imageParts('job1.0', attempt, bytes)) {
      const decoded = decodeEnvelope(part);
      if (!decoded.ok || decoded.value.header.type !== 'part') throw new Error('not a part');
      expect(scheduler.migrations.imagePart('ha', decoded.value.header, decoded.value.buffers[0]!, part)).toBeNull();
    }
    scheduler.hosts.setSlots('ha', 0);
    clock.now += 5;
    expect(scheduler.migrations.migrated('ha', { type: 'migrated', tid: 'job1.0', attempt, imageBytes: bytes.byteLength, frozen: true, obtrusivenessMs: 4, via: 'coordinator' })).toBeNull();
    await settle();

    const moved = b.assigned().find((t) => t.tid === 'job1.0')!;
    expect(moved).toMatchObject({ attempt: attempt + 1, imageBytes: bytes.byteLength, resume: null });
    // the image travels first: the host finds it whole when the assignment comes
    expect(b.order.indexOf('part')).toBeLessThan(b.order.lastIndexOf('assign'));
    expect(events).toHaveLength(0);

    clock.now += 30;
    scheduler.migrations.resumed('hb', 'job1.0', attempt + 1);
    expect(events).toEqual([
      expect.objectContaining({ jobId: 'job1', tid: 'job1.0', reason: 'input', from: 'ha', to: 'hb', obtrusivenessMs: 4, latencyMs: 35, bytes: bytes.byteLength, frozen: true, path: 'coordinator' }),
    ]);
    expect(scheduler.views.status('job1')?.migrations).toBe(1);
    void a;
  });

  it('holds messages for a task between its event and its new host, then hands them over in order', async () => {
    const { scheduler, b, attempt } = await oneTaskOnA();
    scheduler.migrations.migrating('ha', [{ tid: 'job1.0', attempt }], 'hidden');
    expect(scheduler.relay.locate(['job1.0'])).toEqual([{ tid: 'job1.0', hostId: null, peerId: null }]);
    const messages = [1, 2].map((seq) => encodeMessage({ from: 'job1.1', to: 'job1.0', tag: 1, seq, data: seq }));
    for (const m of messages) expect(scheduler.relay.relay('hb', 'msg', 'job1.1', 'job1.0', 'job1.0', m)).toBeNull();
    scheduler.hosts.setSlots('ha', 0);
    const bytes = image('job1.0');
    for (const part of imageParts('job1.0', attempt, bytes)) {
      const decoded = decodeEnvelope(part);
      if (decoded.ok && decoded.value.header.type === 'part') scheduler.migrations.imagePart('ha', decoded.value.header, decoded.value.buffers[0]!, part);
    }
    scheduler.migrations.migrated('ha', { type: 'migrated', tid: 'job1.0', attempt, imageBytes: bytes.byteLength, frozen: false, obtrusivenessMs: 20, via: 'coordinator' });
    await settle();
    const relayed = b.binary.filter((bytes) => {
      const decoded = decodeEnvelope(bytes);
      return decoded.ok && decoded.value.header.type === 'msg';
    });
    expect(relayed).toEqual(messages);
    expect(b.order.lastIndexOf('assign')).toBeLessThan(b.order.lastIndexOf('msg'));
  });

  it('does not count a migration toward maxAttempts', async () => {
    const { scheduler, attempt } = await oneTaskOnA();
    let current = attempt;
    let host = 'ha';
    for (let i = 0; i < 3; i++) {
      scheduler.migrations.migrating(host, [{ tid: 'job1.0', attempt: current }], 'order');
      scheduler.migrations.migrated(host, { type: 'migrated', tid: 'job1.0', attempt: current, imageBytes: null, frozen: false, obtrusivenessMs: 0, via: 'coordinator' });
      await settle();
      const task = (await scheduler.views.tasks('job1', -1, 100)).tasks.find((t) => t.tid === 'job1.0')!;
      expect(task.state).toBe('running');
      current = task.attempt;
      host = task.hostId!;
    }
    expect(current).toBe(attempt + 3);
    expect(scheduler.views.status('job1')?.state).toBe('running');
  });

  it('refuses an image part or a migrated report for a task the host does not run', async () => {
    const { scheduler, attempt } = await oneTaskOnA();
    expect(scheduler.migrations.imagePart('hb', { tid: 'job1.0', attempt, index: 0, count: 1 }, new Uint8Array(4), new Uint8Array(4))).toMatchObject({ code: 'E_NOT_ASSIGNED' });
    expect(scheduler.migrations.migrated('hb', { type: 'migrated', tid: 'job1.0', attempt, imageBytes: null, frozen: false, obtrusivenessMs: 0, via: 'coordinator' })).toMatchObject({
      code: 'E_NOT_ASSIGNED',
    });
  });

  it('restarts from the last checkpoint when the image did not arrive whole', async () => {
    const { scheduler, b, attempt } = await oneTaskOnA();
    scheduler.reports.checkpoint('ha', 'job1.0', attempt, { state: { step: 3 }, rng: [1, 1, 1, 1] });
    scheduler.migrations.migrating('ha', [{ tid: 'job1.0', attempt }], 'input');
    scheduler.hosts.setSlots('ha', 0);
    expect(scheduler.migrations.migrated('ha', { type: 'migrated', tid: 'job1.0', attempt, imageBytes: 1000, frozen: true, obtrusivenessMs: 1, via: 'coordinator' })).toMatchObject({ code: 'E_BAD_FRAME' });
    await settle();
    const moved = b.assigned().find((t) => t.tid === 'job1.0')!;
    expect(moved.imageBytes).toBeUndefined();
    expect(moved.resume).toEqual({ state: { step: 3 }, rng: [1, 1, 1, 1] });
  });

  it('keeps images as restart points up to 1 GiB in all, each until its task checkpoints or ends', async () => {
    const { scheduler, attempt } = await oneTaskOnA();
    const [first, second] = ['job1.0', 'job1.1'].map((tid) => scheduler.jobs.task(tid)!);
    const mib = (n: number) => new Uint8Array(n * 1024 * 1024);
    expect(scheduler.jobs.keepImage(first!, mib(700))).toBe(true);
    expect(scheduler.jobs.keepImage(second!, mib(400))).toBe(false);
    expect(second!.start.image).toBeNull();
    // a smaller image in the place of the first makes room
    expect(scheduler.jobs.keepImage(first!, mib(500))).toBe(true);
    expect(scheduler.jobs.keepImage(second!, mib(400))).toBe(true);
    expect(scheduler.jobs.keepImage(second!, mib(600))).toBe(false);
    // the first one's next checkpoint supersedes its image, and gives its room back
    scheduler.reports.checkpoint('ha', 'job1.0', attempt, { state: { step: 3 }, rng: [1, 1, 1, 1] });
    expect(first!.start.image).toBeNull();
    expect(scheduler.jobs.keepImage(second!, mib(600))).toBe(true);
  });

  it('answers a migrating task with no destination when no other host can take it', async () => {
    const { scheduler, a, attempt } = await oneTaskOnA();
    scheduler.hosts.setSlots('ha', 0);
    scheduler.hosts.setSlots('hb', 0);
    scheduler.migrations.migrating('ha', [{ tid: 'job1.0', attempt }], 'input');
    expect(a.sent.filter((m) => m.type === 'destination')).toEqual([{ type: 'destination', tid: 'job1.0', attempt: attempt + 1, peerId: null }]);
  });

  it('orders a migration from its host, and refuses one for a task that is not running', async () => {
    const { scheduler, a, attempt } = await oneTaskOnA();
    expect(scheduler.migrations.order('job1.0')).toEqual({ hostId: 'ha' });
    expect(a.sent.filter((m) => m.type === 'migrate')).toEqual([{ type: 'migrate', tasks: [{ tid: 'job1.0', attempt }] }]);
    expect(scheduler.migrations.order('job1.99')).toMatchObject({ code: 'E_NOT_FOUND' });
    scheduler.migrations.migrating('ha', [{ tid: 'job1.0', attempt }], 'order');
    expect(scheduler.migrations.order('job1.0')).toMatchObject({ code: 'E_CONFLICT' });
  });

  it('tells the other hosts when a host leaves, so they stop using data channels to it', async () => {
    const { scheduler, a, b } = await oneTaskOnA();
    scheduler.hosts.detach('ha', a);
    expect(b.sent.filter((m) => m.type === 'peer-gone')).toEqual([{ type: 'peer-gone', peerId: 'ha-peer' }]);
  });

  it('names a destination at the event, places the task there when its image went over a data channel, and records the path', async () => {
    const { scheduler, events, a, b, attempt } = await oneTaskOnA();
    scheduler.hosts.setSlots('ha', 0);
    scheduler.migrations.migrating('ha', [{ tid: 'job1.0', attempt }], 'hidden');
    expect(a.sent.filter((m) => m.type === 'destination')).toEqual([{ type: 'destination', tid: 'job1.0', attempt: attempt + 1, peerId: 'hb-peer' }]);
    // the destination hears first which peer the image comes from: it takes pieces from no other
    expect(b.sent.filter((m) => m.type === 'image-coming')).toEqual([{ type: 'image-coming', tid: 'job1.0', attempt: attempt + 1, peerId: 'ha-peer' }]);
    scheduler.migrations.migrated('ha', { type: 'migrated', tid: 'job1.0', attempt, imageBytes: 5000, frozen: true, obtrusivenessMs: 2, via: 'channel' });
    await settle();
    const moved = b.assigned().find((t) => t.tid === 'job1.0')!;
    expect(moved).toMatchObject({ attempt: attempt + 1, imageBytes: 5000, resume: null });
    // nothing went through here: the bytes are on the data channel
    expect(b.order.filter((kind) => kind === 'part')).toEqual([]);
    expect(a.sent.filter((m) => m.type === 'send-image')).toEqual([]);
    scheduler.migrations.resumed('hb', 'job1.0', attempt + 1);
    expect(events).toEqual([expect.objectContaining({ path: 'channel', from: 'ha', to: 'hb', bytes: 5000 })]);
  });

  it('has an image that did not arrive over a data channel sent again through here, and hands its parts on', async () => {
    const { scheduler, a, b, attempt } = await oneTaskOnA();
    scheduler.hosts.setSlots('ha', 0);
    scheduler.migrations.migrating('ha', [{ tid: 'job1.0', attempt }], 'hidden');
    const bytes = image('job1.0');
    scheduler.migrations.migrated('ha', { type: 'migrated', tid: 'job1.0', attempt, imageBytes: bytes.byteLength, frozen: true, obtrusivenessMs: 2, via: 'channel' });
    await settle();
    scheduler.migrations.imageMissing('hb', 'job1.0', attempt + 1);
    expect(a.sent.filter((m) => m.type === 'send-image')).toEqual([{ type: 'send-image', tid: 'job1.0', attempt: attempt + 1 }]);
    const parts = imageParts('job1.0', attempt + 1, bytes);
    for (const part of parts) {
      const decoded = decodeEnvelope(part);
      if (!decoded.ok || decoded.value.header.type !== 'part') throw new Error('not a part');
      expect(scheduler.migrations.imagePart('ha', decoded.value.header, decoded.value.buffers[0]!, part)).toBeNull();
    }
    expect(b.binary.slice(-parts.length)).toEqual(parts);
    // a host that never ran the task cannot push parts to it
    const stranger = connect(scheduler, 'hc', 1);
    void stranger;
    const decoded = decodeEnvelope(parts[0]!);
    if (!decoded.ok || decoded.value.header.type !== 'part') throw new Error('not a part');
    expect(scheduler.migrations.imagePart('hc', decoded.value.header, decoded.value.buffers[0]!, parts[0]!)).toMatchObject({ code: 'E_NOT_ASSIGNED' });
  });

  it('asks for the image through here at once when the named destination is gone', async () => {
    const { scheduler, a, b, attempt } = await oneTaskOnA();
    const c = connect(scheduler, 'hc', 1);
    scheduler.hosts.setSlots('ha', 0);
    scheduler.migrations.migrating('ha', [{ tid: 'job1.0', attempt }], 'hidden');
    const named = a.sent.find((m) => m.type === 'destination');
    const namedHost = named && named.type === 'destination' && named.peerId === 'hb-peer' ? b : c;
    scheduler.hosts.detach(namedHost === b ? 'hb' : 'hc', namedHost);
    scheduler.migrations.migrated('ha', { type: 'migrated', tid: 'job1.0', attempt, imageBytes: 5000, frozen: true, obtrusivenessMs: 2, via: 'channel' });
    await settle();
    const other = namedHost === b ? c : b;
    expect(other.assigned().find((t) => t.tid === 'job1.0')).toMatchObject({ imageBytes: 5000 });
    expect(a.sent.filter((m) => m.type === 'send-image')).toEqual([{ type: 'send-image', tid: 'job1.0', attempt: attempt + 1 }]);
  });

  it('starts the next attempt from the checkpoint when the new host could not take the image', async () => {
    const { scheduler, b, attempt } = await oneTaskOnA();
    scheduler.reports.checkpoint('ha', 'job1.0', attempt, { state: { step: 2 }, rng: [1, 1, 1, 1] });
    scheduler.hosts.setSlots('ha', 0);
    scheduler.migrations.migrating('ha', [{ tid: 'job1.0', attempt }], 'hidden');
    scheduler.migrations.migrated('ha', { type: 'migrated', tid: 'job1.0', attempt, imageBytes: 5000, frozen: true, obtrusivenessMs: 2, via: 'channel' });
    await settle();
    scheduler.reports.outcomes('hb', [{ tid: 'job1.0', attempt: attempt + 1, ok: false, error: { code: 'E_HOST_FAULT', message: 'its image did not arrive' } }]);
    await settle();
    const retried = b.assigned().filter((t) => t.tid === 'job1.0').at(-1)!;
    expect(retried).toMatchObject({ attempt: attempt + 2, resume: { state: { step: 2 } } });
    expect(retried.imageBytes).toBeUndefined();
    // the host's doing, not the task's: a loss, which maxAttempts does not count
    expect(scheduler.jobs.task('job1.0')).toMatchObject({ failures: 0, losses: 1 });
  });
});
