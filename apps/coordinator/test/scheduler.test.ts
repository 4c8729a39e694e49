import { LIMITS, SubmitJobRequest, encodeMessage, unsealMessage } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeHost, clock, closeSchedulers, connect, resultsOf, schedulerHarness, settle, spec, statusOf } from './support/scheduler-harness.ts';

afterEach(closeSchedulers);

describe('scheduler leasing', () => {
  it('runs at most an owner’s running quota of its tasks at once, over all its jobs; others take the rest', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([1, 2, 3]), 'p', 'capped', 'job1', 2);
    scheduler.jobs.submit(spec([4, 5, 6]), 'p', 'capped', 'job2', 2);
    scheduler.jobs.submit(spec([7, 8]), 'p', 'free', 'job3');
    const host = connect(scheduler, 'ha', 8);
    await settle();
    const ofJob = (id: string) => host.assigned().filter((t) => t.jobId === id);
    expect(ofJob('job1').length + ofJob('job2').length).toBe(2);
    expect(ofJob('job3')).toHaveLength(2);
    expect(scheduler.jobs.runningOf('capped')).toBe(2);
    // one ends: one more of the capped owner's may run
    const [first] = [...ofJob('job1'), ...ofJob('job2')];
    scheduler.reports.outcomes('ha', [{ tid: first!.tid, attempt: first!.attempt, ok: true, value: 1 }]);
    await settle();
    expect(ofJob('job1').length + ofJob('job2').length).toBe(3);
    expect(scheduler.jobs.runningOf('capped')).toBe(2);
  });

  it('fills every host up to its slots before prefetching more', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([1, 2, 3, 4]), 'p', 'owner', 'job1');
    const a = connect(scheduler, 'ha', 2);
    const b = connect(scheduler, 'hb', 2);
    await settle();
    expect(a.assigned()).toHaveLength(2);
    expect(b.assigned()).toHaveLength(2);
    expect(scheduler.views.status('job1')?.tasks).toMatchObject({ pending: 0, running: 4 });
  });

  it('prefetches up to two tasks per slot when there is more work than slots', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec(Array.from({ length: 10 }, (_, i) => i)), 'p', 'owner', 'job1');
    const a = connect(scheduler, 'ha', 2);
    await settle();
    expect(a.assigned().map((t) => t.tid)).toEqual(['job1.0', 'job1.1', 'job1.2', 'job1.3']);
    expect(a.assigned()[0]).toMatchObject({ attempt: 1, jobId: 'job1', input: 0, resume: null, programUrl: '/programs/p.js' });
  });

  it('lets a host that finishes tasks quickly hold more of them, and a slow one only two per slot', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec(Array.from({ length: 50_000 }, (_, i) => i)), 'p', 'o', 'job1');
    const fast = connect(scheduler, 'fast', 1);
    const slow = connect(scheduler, 'slow', 1);
    await settle();
    const held = (link: FakeHost) => {
      const acked = new Set(link.of('ack').flatMap((m) => m.tasks.map((t) => t.tid)));
      return link.assigned().filter((t) => !acked.has(t.tid));
    };
    for (let round = 0; round < 100; round++) {
      clock.now += 5;
      const items = held(fast).map((t) => ({ tid: t.tid, attempt: t.attempt, ok: true as const, value: 0 }));
      scheduler.reports.outcomes('fast', items);
      await settle();
    }
    expect(held(fast).length).toBeGreaterThan(20);
    expect(held(fast).length).toBeLessThanOrEqual(512);
    expect(held(slow)).toHaveLength(2);
  });

  describe('at a job\'s end', () => {
    /** job1.0–1 on ha (one running, one queued behind it), job1.2–3 on hb, which then finishes both. */
    async function tail() {
      const { scheduler } = schedulerHarness();
      scheduler.jobs.submit(spec([0, 1, 2, 3]), 'p', 'o', 'job1');
      const a = connect(scheduler, 'ha', 1);
      await settle();
      const b = connect(scheduler, 'hb', 1);
      await settle();
      expect([a.assigned().map((t) => t.tid), b.assigned().map((t) => t.tid)]).toEqual([
        ['job1.0', 'job1.1'],
        ['job1.2', 'job1.3'],
      ]);
      scheduler.reports.outcomes('hb', b.assigned().map((t) => ({ tid: t.tid, attempt: t.attempt, ok: true as const, value: 0 })));
      await settle();
      return { scheduler, a, b };
    }

    it('asks a host with tasks queued behind its slots to give them back when another has nothing to run', async () => {
      const { scheduler, a, b } = await tail();
      expect(a.of('withdraw')).toEqual([{ type: 'withdraw', tasks: [{ tid: 'job1.1', attempt: 1 }] }]);
      scheduler.reports.withdrawn('ha', [{ tid: 'job1.1', attempt: 1 }]);
      await settle();
      expect(b.assigned().at(-1)).toMatchObject({ tid: 'job1.1', attempt: 2 });
      // the lease that never ran is not an attempt
      expect(scheduler.views.status('job1')).toMatchObject({ attempts: 4, tasks: { running: 2, done: 2 } });
      // what ha says of the attempt it gave back counts for nothing
      expect(scheduler.reports.outcomes('ha', [{ tid: 'job1.1', attempt: 1, ok: true, value: 'late' }])).toMatchObject([{ code: 'E_NOT_ASSIGNED' }]);
    });

    it('asks for an attempt once, and ignores one given back that it did not ask for', async () => {
      const { scheduler, a, b } = await tail();
      // ha had started job1.1 already and gives nothing back: hb is still idle, but ha is not asked again
      scheduler.tick();
      await settle();
      expect(a.of('withdraw')).toHaveLength(1);
      scheduler.reports.withdrawn('hb', [{ tid: 'job1.1', attempt: 1 }]);
      await settle();
      expect(b.assigned().map((t) => t.tid)).toEqual(['job1.2', 'job1.3']);
      expect(scheduler.views.status('job1')?.tasks).toMatchObject({ running: 2, done: 2 });
    });

    it('places a task given back on a volunteer that has not failed it, however idle the one that has', async () => {
      const { scheduler } = schedulerHarness();
      scheduler.jobs.submit(spec([0, 1, 2, 3]), 'p', 'o', 'job1');
      const a = connect(scheduler, 'ha', 1);
      const b = connect(scheduler, 'hb', 1);
      await settle();
      const ok = (t: { tid: string; attempt: number }) => ({ tid: t.tid, attempt: t.attempt, ok: true as const, value: 0 });
      // ha holds job1.0 and job1.2, hb job1.1 and job1.3; ha's job1.0 fails, and hb takes it once it has room
      scheduler.reports.outcomes('ha', [{ tid: 'job1.0', attempt: 1, ok: false, error: { code: 'E_TASK_FAILED', message: 'no' } }]);
      scheduler.reports.outcomes('hb', [ok({ tid: 'job1.1', attempt: 1 })]);
      await settle();
      expect(b.assigned().at(-1)).toMatchObject({ tid: 'job1.0', attempt: 2 });
      // ha runs out of work: hb gives job1.0 back from its queue, and gets it again
      scheduler.reports.outcomes('ha', [ok({ tid: 'job1.2', attempt: 1 })]);
      await settle();
      expect(b.of('withdraw')).toEqual([{ type: 'withdraw', tasks: [{ tid: 'job1.0', attempt: 2 }] }]);
      scheduler.reports.withdrawn('hb', [{ tid: 'job1.0', attempt: 2 }]);
      await settle();
      expect(a.assigned().map((t) => t.tid)).toEqual(['job1.0', 'job1.2']);
      expect(b.assigned().at(-1)).toMatchObject({ tid: 'job1.0', attempt: 3 });
    });
  });

  it('shares hosts fairly between jobs by priority', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec(Array.from({ length: 20 }, () => 0)), 'p', 'o', 'low1');
    scheduler.jobs.submit(spec(Array.from({ length: 20 }, () => 0), { priority: 3 }), 'p', 'o', 'high');
    const a = connect(scheduler, 'ha', 4);
    await settle();
    const byJob = (id: string) => a.assigned().filter((t) => t.jobId === id).length;
    expect(byJob('high')).toBe(6);
    expect(byJob('low1')).toBe(2);
  });

  it('finishes a job when every result is in and acknowledges results after storing them', async () => {
    const { scheduler, store } = schedulerHarness();
    scheduler.jobs.submit(spec([10, 20]), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 2);
    await settle();
    const refused = scheduler.reports.outcomes(
      'ha',
      a.assigned().map((t) => ({ tid: t.tid, attempt: t.attempt, ok: true as const, value: (t.input as number) * 2 })),
    );
    expect(refused).toEqual([]);
    await settle();
    expect(a.of('ack')[0]?.tasks).toEqual([
      { tid: 'job1.0', attempt: 1 },
      { tid: 'job1.1', attempt: 1 },
    ]);
    expect((await statusOf(scheduler, 'job1'))?.state).toBe('done');
    expect(await resultsOf(store, 'job1')).toEqual([20, 40]);
    expect((await store.getJob('job1'))?.state).toBe('done');
  });

  it('refuses an outcome from a host the task was never assigned to', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([1]), 'p', 'o', 'job1');
    connect(scheduler, 'ha', 1);
    await settle();
    const intruder = connect(scheduler, 'hx', 1);
    const refused = scheduler.reports.outcomes('hx', [{ tid: 'job1.0', attempt: 1, ok: true, value: 666 }]);
    expect(refused).toHaveLength(1);
    expect(refused[0]?.code).toBe('E_NOT_ASSIGNED');
    expect(scheduler.views.status('job1')?.tasks.done).toBe(0);
    expect(intruder.assigned()).toHaveLength(0);
  });
});

describe('leases held by strangers', () => {
  it('gives a new volunteer a few leases at once over all its tabs, and one more per result', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec(Array.from({ length: 100 }, (_, i) => i)), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 64, [], 'v1');
    const a2 = connect(scheduler, 'ha2', 64, [], 'v1');
    await settle();
    expect(a.assigned().length + a2.assigned().length).toBe(8);
    const [first, second] = a.assigned();
    scheduler.reports.outcomes('ha', [first!, second!].map(({ tid, attempt }) => ({ tid, attempt, ok: true as const, value: 0 })));
    await settle();
    // two results returned: two freed, two more earned
    expect(a.assigned().length + a2.assigned().length).toBe(12);
  });

  it('takes back a bag task kept past its lease, runs it elsewhere without counting a failure, and halves its volunteer\'s leases', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([0, 1, 2, 3], { maxAttempts: 1 }), 'p', 'o', 'job1');
    const hoarder = connect(scheduler, 'ha', 2);
    await settle();
    expect(hoarder.assigned()).toHaveLength(4);
    const honest = connect(scheduler, 'hb', 2);
    clock.now += 29 * 60_000;
    scheduler.tick();
    await settle();
    expect(honest.assigned()).toHaveLength(0);
    // no outcome of the job yet: a lease lasts 30 minutes
    clock.now += 2 * 60_000;
    scheduler.tick();
    await settle();
    expect(hoarder.of('cancel').flatMap((m) => m.tasks)).toHaveLength(4);
    expect(hoarder.of('cancel')[0]!.reason).toBe('lease expired');
    expect(honest.assigned().map((t) => t.attempt)).toEqual([2, 2, 2, 2]);
    expect(scheduler.hosts.volunteers.get('v-ha').allowance).toBe(1);
    expect((await statusOf(scheduler, 'job1'))?.state).toBe('running');
  });

  it('lasts a lease ten times what the job\'s tasks took, a floor at least, and from the last sign of the task alive', async () => {
    const { scheduler } = schedulerHarness({ leaseFloorMs: 1000 });
    scheduler.jobs.submit(spec([0, 1, 2]), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 3);
    await settle();
    const [t0, t1, t2] = a.assigned();
    clock.now += 200;
    scheduler.reports.outcomes('ha', [{ tid: t0!.tid, attempt: t0!.attempt, ok: true, value: 0 }]);
    // lease → outcome took 200 ms: leases last 2 s now
    clock.now += 1500;
    scheduler.reports.progress('ha', [{ tid: t1!.tid, attempt: t1!.attempt, fraction: 0.5 }]);
    clock.now += 1000;
    scheduler.tick();
    await settle();
    expect(a.of('cancel').flatMap((m) => m.tasks.map((t) => t.tid))).toEqual([t2!.tid]);
    clock.now += 1500;
    scheduler.tick();
    await settle();
    expect(a.of('cancel').flatMap((m) => m.tasks.map((t) => t.tid))).toEqual([t2!.tid, t1!.tid]);
  });
});

describe('scheduler reissue', () => {
  it('reissues the tasks of a host that disconnects, resuming from the last checkpoint', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([1]), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    await settle();
    const checkpoint = { state: { i: 5 }, rng: [1, 2, 3, 4] as [number, number, number, number] };
    expect(scheduler.reports.checkpoint('ha', 'job1.0', 1, checkpoint)).toBeNull();
    scheduler.hosts.detach('ha', a);
    const b = connect(scheduler, 'hb', 1);
    await settle();
    expect(b.assigned()).toEqual([expect.objectContaining({ tid: 'job1.0', attempt: 2, resume: checkpoint })]);
  });

  it('keeps the tasks of a host whose connection dropped for it to come back within the grace, and reissues them after', async () => {
    const { scheduler } = schedulerHarness({ disconnectGraceMs: 200 });
    scheduler.jobs.submit(spec([1, 2]), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 2);
    await settle();
    expect(a.assigned().map((t) => t.tid)).toEqual(['job1.0', 'job1.1']);
    const b = connect(scheduler, 'hb', 2);
    // a drop and a reconnect within the grace: the host still runs both, and nothing is reissued
    scheduler.hosts.detach('ha', a);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = connect(scheduler, 'ha', 0, [
      { tid: 'job1.0', attempt: 1 },
      { tid: 'job1.1', attempt: 1 },
    ]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await settle();
    expect(again.of('cancel')).toEqual([]);
    expect(b.assigned()).toEqual([]);
    expect(scheduler.views.status('job1')?.tasks.running).toBe(2);
    // a drop for good: once the grace is over, its tasks run elsewhere, from attempt 2
    scheduler.hosts.detach('ha', again);
    await settle();
    expect(b.assigned()).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await settle();
    expect(b.assigned().map((t) => [t.tid, t.attempt])).toEqual([
      ['job1.0', 2],
      ['job1.1', 2],
    ]);
  });

  it('hands a host that came back within the grace what was relayed to its tasks while it was away', async () => {
    const { scheduler } = schedulerHarness({ disconnectGraceMs: 1000 });
    scheduler.jobs.submit(spec([1, 2]), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    const b = connect(scheduler, 'hb', 1);
    await settle();
    expect([a, b].map((host) => host.assigned().map((t) => t.tid))).toEqual([['job1.0'], ['job1.1']]);
    scheduler.hosts.detach('ha', a);
    const message = (seq: number) => encodeMessage({ from: 'job1.1', to: 'job1.0', tag: 1, seq, data: seq });
    for (const seq of [1, 2]) expect(scheduler.relay.relay('hb', 'msg', 'job1.1', 'job1.0', 'job1.0', message(seq))).toBeNull();
    const again = connect(scheduler, 'ha', 0, [{ tid: 'job1.0', attempt: 1 }]);
    await settle();
    // no later message comes to push them out: the task may be waiting for exactly these
    expect(again.binary.map((bytes) => unsealMessage(bytes)?.seq)).toEqual([1, 2]);
  });

  it('retries a failing task up to maxAttempts, then fails the job', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([1], { maxAttempts: 2 }), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    for (const attempt of [1, 2]) {
      await settle();
      scheduler.reports.outcomes('ha', [{ tid: 'job1.0', attempt, ok: false, error: { code: 'E_TASK_FAILED', message: 'boom' } }]);
    }
    await settle();
    expect(a.assigned().map((t) => t.attempt)).toEqual([1, 2]);
    const status = await statusOf(scheduler, 'job1');
    expect(status?.state).toBe('failed');
    expect(status?.error?.message).toContain('boom');
  });

  it('does not count attempts lost with their host toward maxAttempts, and fails a task lost ten times', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([1], { maxAttempts: 1 }), 'p', 'o', 'job1');
    for (let lost = 1; lost <= 10; lost++) {
      const link = connect(scheduler, 'ha', 1);
      await settle();
      expect(link.assigned().map((t) => t.attempt)).toEqual([lost]);
      scheduler.hosts.detach('ha', link);
      await settle();
      expect((await statusOf(scheduler, 'job1'))?.state).toBe(lost < 10 ? 'running' : 'failed');
    }
    expect((await statusOf(scheduler, 'job1'))?.error?.message).toContain('lost with its host 10 times');
  });

  it('retries a failed task on another volunteer while one is connected, and on the same one when none is', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([1, 2], { maxAttempts: 3 }), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    const b = connect(scheduler, 'hb', 1);
    const a2 = connect(scheduler, 'ha2', 1, [], 'v-ha');
    await settle();
    const onA = a.assigned()[0]!;
    const error = { code: 'E_TASK_FAILED' as const, message: 'a lie' };
    scheduler.reports.outcomes('ha', [{ tid: onA.tid, attempt: onA.attempt, ok: false, error }]);
    await settle();
    // ha and ha2 are tabs of one browser profile: neither takes it again while hb is there
    expect([...a.assigned(), ...a2.assigned()].filter((t) => t.tid === onA.tid)).toHaveLength(1);
    expect(b.assigned().filter((t) => t.tid === onA.tid).map((t) => t.attempt)).toEqual([onA.attempt + 1]);
    scheduler.hosts.detach('hb', b);
    await settle();
    const retried = [...a.assigned(), ...a2.assigned()].filter((t) => t.tid === onA.tid);
    expect(retried.map((t) => t.attempt)).toEqual([onA.attempt, onA.attempt + 2]);
    expect((await statusOf(scheduler, 'job1'))?.state).toBe('running');
  });

  it('reissues an attempt past its deadline and cancels it on its host', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([1], { taskTimeoutMs: 1000 }), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    await settle();
    clock.now += 999;
    scheduler.tick();
    expect(a.of('cancel')).toHaveLength(0);
    clock.now += 2;
    scheduler.tick();
    await settle();
    expect(a.of('cancel')[0]?.tasks).toEqual([{ tid: 'job1.0', attempt: 1 }]);
    expect(a.assigned().map((t) => t.attempt)).toEqual([1, 2]);
  });

  it('counts the first result once and cancels the other attempt', async () => {
    const { scheduler, store } = schedulerHarness();
    scheduler.jobs.submit(spec([1]), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    await settle();
    scheduler.hosts.detach('ha', a);
    const b = connect(scheduler, 'hb', 1);
    await settle();
    // host a comes back with the result it kept while offline: it still counts
    const a2 = connect(scheduler, 'ha', 1);
    expect(scheduler.reports.outcomes('ha', [{ tid: 'job1.0', attempt: 1, ok: true, value: 'first' }])).toEqual([]);
    expect(scheduler.reports.outcomes('hb', [{ tid: 'job1.0', attempt: 2, ok: true, value: 'second' }])).toEqual([]);
    await settle();
    expect(await resultsOf(store, 'job1')).toEqual(['first']);
    expect(b.of('cancel')[0]?.tasks).toEqual([{ tid: 'job1.0', attempt: 2 }]);
    expect(a2.of('ack')).toHaveLength(1);
    expect((await statusOf(scheduler, 'job1'))?.tasks.done).toBe(1);
  });

  it('does not run again a task whose lost attempt reported while its retry waited, and ends the job with exact counts', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([1, 2, 3]), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    await settle();
    await settle();
    expect(a.assigned().map((t) => t.tid)).toEqual(['job1.0', 'job1.1']);
    // the host goes away with two: they wait for another host as retries
    scheduler.hosts.detach('ha', a);
    // it comes back with the results it kept while offline
    connect(scheduler, 'ha', 0);
    scheduler.reports.outcomes('ha', [0, 1].map((i) => ({ tid: `job1.${i}`, attempt: 1, ok: true as const, value: i })));
    const b = connect(scheduler, 'hb', 3);
    await settle();
    expect(b.assigned().map((t) => t.tid)).toEqual(['job1.2']);
    scheduler.reports.outcomes('hb', [{ tid: 'job1.2', attempt: 1, ok: true, value: 2 }]);
    await settle();
    expect(await statusOf(scheduler, 'job1')).toMatchObject({ state: 'done', tasks: { total: 3, pending: 0, running: 0, done: 3, failed: 0 } });
  });

  it('after a restart keeps tasks running on hosts that come back and reissues the others', async () => {
    const first = schedulerHarness();
    first.scheduler.jobs.submit(spec([1, 2]), 'p', 'o', 'job1');
    connect(first.scheduler, 'ha', 1);
    connect(first.scheduler, 'hb', 1);
    await settle();
    await first.scheduler.writes.durable();
    const { scheduler } = schedulerHarness({ store: first.store, reconnectGraceMs: 50 });
    await scheduler.restore();
    const a = connect(scheduler, 'ha', 1, [{ tid: 'job1.0', attempt: 1 }]);
    await settle();
    expect(a.of('cancel')).toHaveLength(0);
    expect(scheduler.views.status('job1')?.tasks.running).toBe(2);
    scheduler.reports.outcomes('ha', [{ tid: 'job1.0', attempt: 1, ok: true, value: 'kept' }]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await settle();
    expect(scheduler.views.status('job1')?.tasks.done).toBe(1);
    // hb never came back: its task went to the host that is there
    expect(a.assigned()).toEqual([expect.objectContaining({ tid: 'job1.1', attempt: 2 })]);
  });
});

describe('scheduler restarts and volunteers', () => {
  it('resumes each volunteer’s allowance, record and trust after a restart', async () => {
    const first = schedulerHarness();
    const { volunteers } = first.scheduler.hosts;
    for (let i = 0; i < 10; i++) volunteers.judged('v-honest', true);
    volunteers.returned('v-honest', 30);
    volunteers.judged('v-liar', true);
    volunteers.judged('v-liar', false);
    volunteers.dropped('v-liar');
    await settle();
    await first.scheduler.writes.durable();
    const { scheduler } = schedulerHarness({ store: first.store });
    await scheduler.restore();
    expect(scheduler.hosts.volunteers.get('v-honest')).toMatchObject({ trusted: true, validated: 10, invalid: 0, streak: 10, returned: 30, allowance: 38 });
    expect(scheduler.hosts.volunteers.get('v-liar')).toMatchObject({ trusted: false, validated: 1, invalid: 1, streak: 0, dropped: 1, allowance: 4 });
    // and a trusted volunteer's next disagreement still ends its trust
    scheduler.hosts.volunteers.judged('v-honest', false);
    expect(scheduler.hosts.volunteers.get('v-honest').trusted).toBe(false);
  });
});

describe('scheduler restarts and cancels of big jobs', () => {
  it('shows after a restart the total a job grew to, by spawned tasks and appended inputs', async () => {
    const first = schedulerHarness();
    const job = first.scheduler.jobs.submit(spec([1], { open: true }), 'p', 'o', 'job1');
    connect(first.scheduler, 'ha', 1);
    await settle();
    first.scheduler.vm.request('ha', 'job1.0', 1, 1, { kind: 'spawn', name: null, inputs: [null, null] });
    first.scheduler.jobs.append(job, [2, 3, 4]);
    await settle();
    await first.scheduler.writes.durable();
    expect(first.scheduler.views.status('job1')?.tasks.total).toBe(6);
    const { scheduler } = schedulerHarness({ store: first.store });
    await scheduler.restore();
    expect(scheduler.views.status('job1')?.tasks).toEqual({ total: 6, pending: 3, running: 3, done: 0, failed: 0 });
    expect(scheduler.jobs.job('job1')?.stored.options.roots).toBe(4);
    // the appended roots come after the spawned tasks, and keep their places among the inputs
    const host = connect(scheduler, 'ha', 8, [1, 2, 3].map((n) => ({ tid: `job1.${n - 1}`, attempt: 1 })));
    await settle();
    expect(host.assigned().map((t) => [t.tid, t.input])).toEqual([
      ['job1.3', 2],
      ['job1.4', 3],
      ['job1.5', 4],
    ]);
  });

  it('after a restart, goes on with a retried root task from its last attempt and checkpoint', async () => {
    const first = schedulerHarness();
    first.scheduler.jobs.submit(spec([1, 2]), 'p', 'o', 'job1');
    const a = connect(first.scheduler, 'ha', 1);
    await settle();
    const checkpoint = { state: { i: 7 }, rng: [1, 2, 3, 4] as [number, number, number, number] };
    first.scheduler.reports.checkpoint('ha', 'job1.0', 1, checkpoint);
    first.scheduler.hosts.detach('ha', a);
    await settle();
    await first.scheduler.writes.durable();
    const { scheduler } = schedulerHarness({ store: first.store });
    await scheduler.restore();
    const b = connect(scheduler, 'hb', 2);
    await settle();
    expect(b.assigned().map((t) => [t.tid, t.attempt, t.resume])).toEqual([
      ['job1.0', 2, checkpoint],
      ['job1.1', 2, null],
    ]);
  });

  it('counts a task’s failures and losses across a restart: a restart does not reset maxAttempts', async () => {
    const first = schedulerHarness();
    first.scheduler.jobs.submit(spec([1], { maxAttempts: 2 }), 'p', 'o', 'job1');
    const a = connect(first.scheduler, 'ha', 1);
    await settle();
    first.scheduler.reports.outcomes('ha', [{ tid: 'job1.0', attempt: 1, ok: false, error: { code: 'E_TASK_FAILED', message: 'boom' } }]);
    await settle();
    first.scheduler.hosts.detach('ha', a);
    await settle();
    await first.scheduler.writes.durable();
    const { scheduler } = schedulerHarness({ store: first.store });
    await scheduler.restore();
    expect(scheduler.jobs.task('job1.0')).toMatchObject({ failures: 1, losses: 1 });
    const b = connect(scheduler, 'hb', 1);
    await settle();
    const [next] = b.assigned();
    scheduler.reports.outcomes('hb', [{ tid: 'job1.0', attempt: next!.attempt, ok: false, error: { code: 'E_TASK_FAILED', message: 'boom again' } }]);
    await settle();
    expect((await statusOf(scheduler, 'job1'))?.state).toBe('failed');
  });

  it('cancels a job whose tasks are mostly still in the store, and marks them cancelled there', async () => {
    const { scheduler, store } = schedulerHarness({ windowTasks: 4 });
    scheduler.jobs.submit(spec(Array.from({ length: 50 }, (_, i) => i)), 'p', 'o', 'job1');
    const host = connect(scheduler, 'ha', 1);
    await settle();
    scheduler.jobs.cancel('job1');
    expect(scheduler.views.status('job1')?.tasks).toEqual({ total: 50, pending: 0, running: 0, done: 0, failed: 0 });
    expect(host.of('cancel').flatMap((m) => m.tasks.map((t) => t.tid))).toEqual(['job1.0', 'job1.1']);
    for (let i = 0; i < 4; i++) await settle();
    expect(await store.taskCounts('job1')).toEqual({ total: 50, pending: 0, running: 0, done: 0, failed: 0 });
    expect(await store.cancelledWithPending()).toEqual([]);
    expect(scheduler.jobs.size).toEqual({ jobs: 0, tasks: 0 });
  });
});

describe('scheduler services for message passing', () => {
  const mainSpec = () => SubmitJobRequest.parse({ program: 'x', main: { n: 1 } });
  /** A main job's root, leased to one of two one-slot hosts. */
  const rootOnTwoHosts = async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(mainSpec(), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    const b = connect(scheduler, 'hb', 1);
    await settle();
    const root = [...a.assigned(), ...b.assigned()][0]!;
    return { scheduler, a, b, root, rootHost: a.assigned().length ? 'ha' : 'hb' };
  };

  it('starts spawned tasks at once past slots, spread over hosts, and answers a replayed spawn with the same tids', async () => {
    const { scheduler, a, b, root, rootHost } = await rootOnTwoHosts();
    const spawned = scheduler.vm.request(rootHost, root.tid, 1, 1, { kind: 'spawn', name: 'worker', inputs: [1, 2, 3, 4] });
    expect(spawned).toEqual({ ok: true, value: ['job1.1', 'job1.2', 'job1.3', 'job1.4'] });
    expect(scheduler.vm.request(rootHost, root.tid, 1, 1, { kind: 'spawn', name: 'worker', inputs: [1, 2, 3, 4] })).toEqual(spawned);
    await settle();
    const children = [...a.assigned(), ...b.assigned()].filter((t) => t.parent === root.tid);
    expect(children.map((t) => t.tid).sort()).toEqual(['job1.1', 'job1.2', 'job1.3', 'job1.4']);
    expect(children.every((t) => t.name === 'worker')).toBe(true);
    expect(a.assigned().length + b.assigned().length).toBe(5);
    expect(Math.abs(a.assigned().length - b.assigned().length)).toBeLessThanOrEqual(1);
    expect(scheduler.views.status('job1')?.tasks.total).toBe(5);
  });

  it('places no more spawned tasks on a host than it may start workers for; the rest wait for room', async () => {
    const { scheduler, a, b, root, rootHost } = await rootOnTwoHosts();
    const many = LIMITS.spawnedPerHost * 2 + 5;
    scheduler.vm.request(rootHost, root.tid, 1, 1, { kind: 'spawn', name: null, inputs: Array.from({ length: many }, () => null) });
    await settle();
    const spawnedOn = (host: FakeHost) => host.assigned().filter((t) => t.parent === root.tid);
    expect(spawnedOn(a)).toHaveLength(LIMITS.spawnedPerHost);
    expect(spawnedOn(b)).toHaveLength(LIMITS.spawnedPerHost);
    expect(scheduler.views.status('job1')?.tasks).toMatchObject({ total: many + 1, pending: 5 });
    // one ends: its host has room for one more
    const ended = spawnedOn(a)[0]!;
    scheduler.reports.outcomes('ha', [{ tid: ended.tid, attempt: ended.attempt, ok: true, value: null }]);
    await settle();
    expect(spawnedOn(a)).toHaveLength(LIMITS.spawnedPerHost + 1);
    expect(scheduler.views.status('job1')?.tasks).toMatchObject({ pending: 4 });
    // a new host takes the others
    const c = connect(scheduler, 'hc', 1);
    await settle();
    expect(spawnedOn(c)).toHaveLength(4);
    expect(scheduler.views.status('job1')?.tasks).toMatchObject({ pending: 0 });
  });

  it('answers a request sent again with the first answer, and counts a barrier call once', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(mainSpec(), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 2);
    await settle();
    scheduler.vm.request('ha', 'job1.0', 1, 1, { kind: 'spawn', name: null, inputs: [null] });
    await settle();
    expect(scheduler.vm.request('ha', 'job1.0', 1, 2, { kind: 'join', group: 'g' })).toEqual({ ok: true, value: 0 });
    expect(scheduler.vm.request('ha', 'job1.0', 1, 2, { kind: 'join', group: 'g' })).toEqual({ ok: true, value: 0 });
    expect(scheduler.vm.request('ha', 'job1.0', 1, 3, { kind: 'leave', group: 'g' })).toEqual({ ok: true, value: null });
    expect(scheduler.vm.request('ha', 'job1.0', 1, 3, { kind: 'leave', group: 'g' })).toEqual({ ok: true, value: null });
    expect(scheduler.vm.request('ha', 'job1.0', 1, 4, { kind: 'barrier', group: 'b', count: 2 })).toBe('later');
    expect(scheduler.vm.request('ha', 'job1.0', 1, 4, { kind: 'barrier', group: 'b', count: 2 })).toBe('later');
    expect(a.of('reply')).toEqual([]);
    expect(scheduler.vm.request('ha', 'job1.1', 1, 1, { kind: 'barrier', group: 'b', count: 2 })).toBe('later');
    // the barrier's replies go once the calls that released it are stored
    expect(a.of('reply')).toEqual([]);
    await settle();
    expect(a.of('reply').map((r) => [r.tid, r.requestId])).toEqual([
      ['job1.0', 4],
      ['job1.1', 1],
    ]);
    expect(scheduler.vm.request('ha', 'job1.0', 1, 4, { kind: 'barrier', group: 'b', count: 2 })).toEqual({ ok: true, value: null });
  });

  it('ends a main job with its root, cancelling children still running, and keeps only the root result', async () => {
    const { scheduler, store } = schedulerHarness();
    scheduler.jobs.submit(mainSpec(), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 2);
    await settle();
    scheduler.vm.request('ha', 'job1.0', 1, 1, { kind: 'spawn', name: null, inputs: [null, null] });
    await settle();
    scheduler.reports.outcomes('ha', [{ tid: 'job1.1', attempt: 1, ok: true, value: 'child' }]);
    scheduler.reports.outcomes('ha', [{ tid: 'job1.0', attempt: 1, ok: true, value: 'root' }]);
    await settle();
    expect(await statusOf(scheduler, 'job1')).toMatchObject({ state: 'done', tasks: { total: 3, done: 2 } });
    expect(a.of('cancel').flatMap((m) => m.tasks)).toEqual([{ tid: 'job1.2', attempt: 1 }]);
    expect(await resultsOf(store, 'job1')).toEqual(['root']);
  });

  it('notifies exit with the seq after the last message the ended task sent the notifier, and sends it again when the notifier\'s host reconnects', async () => {
    // the notifier's host keeps its task while it is away
    const { scheduler } = schedulerHarness({ disconnectGraceMs: 60_000 });
    scheduler.jobs.submit(SubmitJobRequest.parse({ program: 'x', main: 1, maxAttempts: 1 }), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 2);
    await settle();
    scheduler.vm.request('ha', 'job1.0', 1, 1, { kind: 'spawn', name: null, inputs: [null] });
    await settle();
    expect(scheduler.vm.request('ha', 'job1.0', 1, 2, { kind: 'notify', tids: ['job1.1'], tag: 7 })).toEqual({ ok: true, value: null });
    scheduler.reports.outcomes('ha', [{ tid: 'job1.1', attempt: 1, ok: false, error: { code: 'E_TASK_FAILED', message: 'x' }, sent: [{ to: 'job1.0', seq: 5 }] }]);
    await settle();
    const { decodeEnvelope, messageFromEnvelope } = await import('@webpvm/vm-protocol');
    expect(a.binary).toHaveLength(1);
    const decoded = decodeEnvelope(a.binary[0]!);
    expect(decoded.ok && decoded.value.header.type).toBe('msg');
    if (decoded.ok && decoded.value.header.type === 'msg') {
      expect(messageFromEnvelope(decoded.value.header, decoded.value.buffers)).toEqual({
        from: 'job1.1',
        to: 'job1.0',
        tag: 7,
        seq: 6,
        data: { tid: 'job1.1', ok: false },
      });
    }
    // the connection broke with the notice on its way: the host comes back, the notice comes again
    scheduler.hosts.detach('ha', a);
    const again = connect(scheduler, 'ha', 2, [{ tid: 'job1.0', attempt: 1 }]);
    await settle();
    expect(again.binary).toEqual([a.binary[0]]);
  });

  it('ends a relay lane at the other host running its receiver, and at no host for a task here, gone or of another job', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(spec([1, 2]), 'p', 'o', 'job1');
    const links = { ha: connect(scheduler, 'ha', 1), hb: connect(scheduler, 'hb', 1) };
    await settle();
    const [first, second] = scheduler.relay.locate(['job1.0', 'job1.1']).map((r) => r.hostId as 'ha' | 'hb');
    expect(new Set([first, second])).toEqual(new Set(['ha', 'hb']));
    expect(scheduler.relay.relayLaneEnd(first!, 'job1.0', 'job1.1')).toEqual({ hostId: second, link: links[second!] });
    // the asking host must run the sender
    expect(scheduler.relay.relayLaneEnd(second!, 'job1.0', 'job1.1')).toMatchObject({ code: 'E_FORBIDDEN' });
    expect(scheduler.relay.relayLaneEnd(first!, 'job1.0', 'job1.9')).toMatchObject({ code: 'E_FORBIDDEN' });
    expect(scheduler.relay.relayLaneEnd(first!, 'job1.0', 'job1.0')).toMatchObject({ code: 'E_CONFLICT' });
    scheduler.jobs.submit(spec([1]), 'p', 'o', 'job2');
    expect(scheduler.relay.relayLaneEnd(first!, 'job1.0', 'job2.0')).toMatchObject({ code: 'E_FORBIDDEN' });
    // a receiver whose host left runs nowhere now
    scheduler.hosts.detach(second!, links[second!]);
    expect(scheduler.relay.relayLaneEnd(first!, 'job1.0', 'job1.1')).toMatchObject({ code: 'E_CONFLICT' });
  });

  it('relays only between tasks of one job, from a host that runs a task of it', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(mainSpec(), 'p', 'o', 'job1');
    scheduler.jobs.submit(mainSpec(), 'p', 'o', 'job2');
    connect(scheduler, 'ha', 1);
    connect(scheduler, 'hb', 1);
    await settle();
    const holder = scheduler.relay.locate(['job1.0'])[0]!.hostId!;
    const other = holder === 'ha' ? 'hb' : 'ha';
    expect(scheduler.relay.relay(holder, 'msg', 'job1.0', 'job2.0', 'job2.0', new Uint8Array(1))?.code).toBe('E_FORBIDDEN');
    expect(scheduler.relay.relay(other, 'msg', 'job1.0', 'job1.1', 'job1.1', new Uint8Array(1))?.code).toBe('E_FORBIDDEN');
    expect(scheduler.relay.relay(holder, 'msg', 'job1.0', 'job1.0', 'job1.0', new Uint8Array(1))).toBeNull();
    // a host that runs another task of the job speaks neither for the sender nor for the receiver
    scheduler.jobs.submit(SubmitJobRequest.parse({ program: 'x', inputs: [1, 2, 3] }), 'p', 'o', 'job3');
    await settle();
    const routes = scheduler.relay.locate(['job3.0', 'job3.1', 'job3.2']);
    const lone = routes.find((r) => routes.filter((o) => o.hostId === r.hostId).length === 1)!;
    const [from, to] = routes.filter((r) => r !== lone).map((r) => r.tid) as [string, string];
    expect(scheduler.relay.relay(lone.hostId!, 'msg', from, to, to, new Uint8Array(1))).toMatchObject({ code: 'E_FORBIDDEN', message: `this host never ran ${from} or ${to}` });
    expect(scheduler.relay.relay(lone.hostId!, 'ack', to, from, to, new Uint8Array(1))).toMatchObject({ code: 'E_FORBIDDEN' });
    // its own task's message, and one for its own task handed on, go through
    expect(scheduler.relay.relay(lone.hostId!, 'msg', lone.tid, to, to, new Uint8Array(1))).toBeNull();
    expect(scheduler.relay.relay(lone.hostId!, 'msg', from, lone.tid, lone.tid, new Uint8Array(1))).toBeNull();
    // an acknowledgement for a task of a job the scheduler forgot is dropped; a message for one is not the host's to send
    expect(scheduler.relay.relay(holder, 'ack', 'job9.0', 'job9.1', 'job9.0', new Uint8Array(1))).toBeNull();
    expect(scheduler.relay.relay(holder, 'msg', 'job9.0', 'job9.1', 'job9.1', new Uint8Array(1))?.code).toBe('E_FORBIDDEN');
    expect(scheduler.relay.locate(['job1.0', 'job1.9'])).toEqual([
      { tid: 'job1.0', hostId: holder, peerId: `${holder}-peer` },
      { tid: 'job1.9', hostId: null, peerId: null },
    ]);
  });

  it('tells a host where tasks run only for jobs it runs a task of', async () => {
    const { scheduler } = schedulerHarness();
    scheduler.jobs.submit(mainSpec(), 'p', 'o', 'job1');
    const a = connect(scheduler, 'ha', 1);
    const stranger = connect(scheduler, 'hs', 0);
    await settle();
    expect(a.assigned().map((t) => t.tid)).toEqual(['job1.0']);
    expect(stranger.assigned()).toEqual([]);
    expect(scheduler.relay.locate(['job1.0'], 'ha')).toEqual([{ tid: 'job1.0', hostId: 'ha', peerId: 'ha-peer' }]);
    expect(scheduler.relay.locate(['job1.0'], 'hs')).toEqual([{ tid: 'job1.0', hostId: null, peerId: null }]);
  });
});
