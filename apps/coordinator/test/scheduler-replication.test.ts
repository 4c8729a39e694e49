import { afterEach, describe, expect, it } from 'vitest';
import { type FakeHost, clock, closeSchedulers, connect, resultsOf, schedulerHarness, settle, spec, statusOf } from './support/scheduler-harness.ts';

afterEach(closeSchedulers);

type Harness = ReturnType<typeof schedulerHarness>;
const answer = (h: Harness, hostId: string, link: FakeHost, value: unknown) => {
  const { tid, attempt } = link.assigned().at(-1)!;
  h.scheduler.reports.outcomes(hostId, [{ tid, attempt, ok: true, value }]);
};
const volunteer = (h: Harness, id: string) => h.scheduler.hosts.volunteers.get(id);

describe('replicated bag tasks', () => {
  it('run on distinct volunteers — not two tabs of one — and end with what a quorum agrees on', async () => {
    const h = schedulerHarness();
    h.scheduler.jobs.submit(spec([7], { replicas: 2, quorum: 2 }), 'p', 'o', 'job1');
    const a = connect(h.scheduler, 'ha', 1, [], 'va');
    const a2 = connect(h.scheduler, 'ha2', 1, [], 'va');
    const b = connect(h.scheduler, 'hb', 1, [], 'vb');
    await settle();
    expect([a, a2, b].map((l) => l.assigned().length)).toEqual([1, 0, 1]);
    answer(h, 'ha', a, { square: 49, n: 7 });
    await settle();
    expect((await statusOf(h.scheduler, 'job1'))?.state).toBe('running');
    answer(h, 'hb', b, { n: 7, square: 49 });
    await settle();
    await h.scheduler.writes.durable();
    expect(await resultsOf(h.store, 'job1')).toEqual([{ square: 49, n: 7 }]);
    expect([volunteer(h, 'va').validated, volunteer(h, 'vb').validated]).toEqual([1, 1]);
  });

  it('replace a replica whose host could not run it, which casts no ballot: two host faults do not fail the task', async () => {
    const h = schedulerHarness();
    h.scheduler.jobs.submit(spec([7], { replicas: 2, quorum: 2 }), 'p', 'o', 'job1');
    const a = connect(h.scheduler, 'ha', 1);
    const b = connect(h.scheduler, 'hb', 1);
    await settle();
    const c = connect(h.scheduler, 'hc', 1);
    const d = connect(h.scheduler, 'hd', 1);
    for (const [hostId, link] of [['ha', a], ['hb', b]] as const) {
      const { tid, attempt } = link.assigned().at(-1)!;
      h.scheduler.reports.outcomes(hostId, [{ tid, attempt, ok: false, error: { code: 'E_HOST_FAULT', message: 'the task sandbox did not start within 20 s' } }]);
    }
    await settle();
    expect((await statusOf(h.scheduler, 'job1'))?.state).toBe('running');
    expect([c, d].map((l) => l.assigned().map((t) => t.attempt))).toEqual([[3], [4]]);
    answer(h, 'hc', c, 49);
    answer(h, 'hd', d, 49);
    await settle();
    await h.scheduler.writes.durable();
    expect(await resultsOf(h.store, 'job1')).toEqual([49]);
  });

  it('run on distinct network addresses too when the job asks for it', async () => {
    const h = schedulerHarness();
    h.scheduler.jobs.submit(spec([7], { replicas: 2, quorum: 2, distinct: 'address' }), 'p', 'o', 'job1');
    // two browser profiles behind one address (one person, or one NAT), and one elsewhere
    const a = connect(h.scheduler, 'ha', 1, [], 'va', '192.0.2.1');
    const b = connect(h.scheduler, 'hb', 1, [], 'vb', '192.0.2.1');
    await settle();
    expect(a.assigned().length + b.assigned().length).toBe(1);
    const c = connect(h.scheduler, 'hc', 1, [], 'vc', '198.51.100.7');
    await settle();
    expect(c.assigned()).toEqual([expect.objectContaining({ tid: 'job1.0', attempt: 2 })]);
  });

  it('give out one more replica when results disagree, side with the quorum, and count the liar invalid', async () => {
    const h = schedulerHarness();
    h.scheduler.jobs.submit(spec([7], { replicas: 2, quorum: 2 }), 'p', 'o', 'job1');
    const liar = connect(h.scheduler, 'ha', 1);
    const b = connect(h.scheduler, 'hb', 1);
    await settle();
    const c = connect(h.scheduler, 'hc', 1);
    answer(h, 'ha', liar, 50);
    answer(h, 'hb', b, 49);
    await settle();
    expect(c.assigned()).toEqual([expect.objectContaining({ tid: 'job1.0', attempt: 3 })]);
    answer(h, 'hc', c, 49);
    await settle();
    await h.scheduler.writes.durable();
    expect(await resultsOf(h.store, 'job1')).toEqual([49]);
    expect([volunteer(h, 'v-ha'), volunteer(h, 'v-hb'), volunteer(h, 'v-hc')].map((v) => [v.validated, v.invalid])).toEqual([
      [0, 1],
      [1, 0],
      [1, 0],
    ]);
  });

  it('fail a task whose replicas never agree once twice the replicas and one more have answered', async () => {
    const h = schedulerHarness();
    h.scheduler.jobs.submit(spec([7], { replicas: 2, quorum: 2 }), 'p', 'o', 'job1');
    const links = ['ha', 'hb', 'hc', 'hd', 'he', 'hf'].map((id) => [id, connect(h.scheduler, id, 1)] as const);
    await settle();
    let value = 0;
    for (let round = 0; round < 4; round++) {
      for (const [id, link] of links) {
        const last = link.assigned().at(-1);
        if (last && !link.of('ack').some((m) => m.tasks.some((t) => t.attempt === last.attempt))) answer(h, id, link, ++value);
      }
      await settle();
    }
    expect(links.map(([, l]) => l.assigned().length)).toEqual([1, 1, 1, 1, 1, 0]);
    const status = await statusOf(h.scheduler, 'job1');
    expect(status?.state).toBe('failed');
    expect(status?.error?.message).toContain('no 2 of its 5 results agreed');
  });

  it('replace a replica lost with its host on another volunteer, without counting a failure', async () => {
    const h = schedulerHarness();
    h.scheduler.jobs.submit(spec([7, 8], { replicas: 2, quorum: 2, maxAttempts: 1 }), 'p', 'o', 'job1');
    const a = connect(h.scheduler, 'ha', 1);
    const b = connect(h.scheduler, 'hb', 2);
    await settle();
    h.scheduler.hosts.detach('ha', a);
    const c = connect(h.scheduler, 'hc', 2);
    await settle();
    expect(c.assigned().map((t) => t.tid).sort()).toEqual(['job1.0', 'job1.1']);
    for (const [id, link] of [['hb', b], ['hc', c]] as const) {
      h.scheduler.reports.outcomes(id, link.assigned().map(({ tid, attempt }) => ({ tid, attempt, ok: true, value: tid })));
    }
    await settle();
    expect((await statusOf(h.scheduler, 'job1'))?.state).toBe('done');
  });

  it('replace a replica that outlives its lease, and give its volunteer fewer leases', async () => {
    const h = schedulerHarness({ leaseFloorMs: 1000 });
    h.scheduler.jobs.submit(spec([7, 8], { replicas: 2, quorum: 2 }), 'p', 'o', 'job1');
    const hoarder = connect(h.scheduler, 'ha', 1);
    const b = connect(h.scheduler, 'hb', 2);
    await settle();
    // a replica of each task on ha and on hb: hb answers both, and the job's first outcomes set its lease
    expect(hoarder.assigned().map((t) => t.tid)).toEqual(['job1.0', 'job1.1']);
    h.scheduler.reports.outcomes('hb', b.assigned().map(({ tid, attempt }) => ({ tid, attempt, ok: true, value: tid })));
    const c = connect(h.scheduler, 'hc', 2);
    await settle();
    clock.now += 1500;
    h.scheduler.tick();
    await settle();
    expect(hoarder.of('cancel').map((m) => [m.tasks[0]!.tid, m.reason])).toEqual([
      ['job1.0', 'lease expired'],
      ['job1.1', 'lease expired'],
    ]);
    expect(h.scheduler.hosts.volunteers.get('v-ha').allowance).toBe(2);
    h.scheduler.reports.outcomes('hc', c.assigned().map(({ tid, attempt }) => ({ tid, attempt, ok: true, value: tid })));
    await settle();
    expect((await statusOf(h.scheduler, 'job1'))?.state).toBe('done');
  });

  it('start a replica afresh on another volunteer when its tab is reclaimed, instead of migrating it', async () => {
    const h = schedulerHarness();
    h.scheduler.jobs.submit(spec([7], { replicas: 2, quorum: 2 }), 'p', 'o', 'job1');
    const a = connect(h.scheduler, 'ha', 1);
    const b = connect(h.scheduler, 'hb', 1);
    await settle();
    const c = connect(h.scheduler, 'hc', 1);
    h.scheduler.migrations.migrating('ha', [{ tid: 'job1.0', attempt: 1 }], 'hidden');
    await settle();
    expect(a.of('cancel')).toEqual([{ type: 'cancel', tasks: [{ tid: 'job1.0', attempt: 1 }], reason: 'a replica does not migrate: it runs again elsewhere' }]);
    expect(a.of('destination')).toEqual([]);
    expect(c.assigned()).toEqual([expect.objectContaining({ tid: 'job1.0', attempt: 3, resume: null })]);
    answer(h, 'hb', b, 49);
    answer(h, 'hc', c, 49);
    await settle();
    expect((await statusOf(h.scheduler, 'job1'))?.state).toBe('done');
    expect(h.events).toEqual([]);
  });

  it('agree within the job\'s tolerance, or by the validate its program exports', async () => {
    const h = schedulerHarness();
    h.scheduler.jobs.submit(spec([0], { replicas: 2, quorum: 2, tolerance: 1e-9 }), 'p', 'o', 'job1');
    await h.scheduler.validators.prepare('parity', 'export default (ctx, x) => x; export function validate(a, b) { return a % 2 === b % 2; }');
    expect(h.scheduler.validators.size).toBe(1);
    h.scheduler.jobs.submit(spec([0], { replicas: 2, quorum: 2 }), 'parity', 'o', 'job2');
    const a = connect(h.scheduler, 'ha', 2);
    const b = connect(h.scheduler, 'hb', 2);
    await settle();
    const reply = (id: string, link: FakeHost, values: Record<string, unknown>) =>
      h.scheduler.reports.outcomes(id, link.assigned().map(({ tid, attempt }) => ({ tid, attempt, ok: true, value: values[tid] })));
    reply('ha', a, { 'job1.0': 0.1 + 0.2, 'job2.0': 3 });
    reply('hb', b, { 'job1.0': 0.3, 'job2.0': 5 });
    await settle();
    await h.scheduler.writes.durable();
    expect(await resultsOf(h.store, 'job1')).toEqual([0.1 + 0.2]);
    expect(await resultsOf(h.store, 'job2')).toEqual([3]);
    // no job of the program is left: its validate engine is let go
    expect(h.scheduler.validators.size).toBe(0);
  });
});

describe('adaptive replication', () => {
  /** Answers every attempt given to the host and not answered yet, with `value(input)`. */
  function answerer(h: Harness) {
    const answered = new Set<string>();
    return (hostId: string, link: FakeHost, value: (input: number, tid: string) => unknown = (x) => x * x) => {
      const items = link
        .assigned()
        .filter((t) => !answered.has(`${t.tid}/${t.attempt}`) && !link.of('cancel').some((m) => m.tasks.some((c) => c.tid === t.tid && c.attempt === t.attempt)))
        .map((t) => (answered.add(`${t.tid}/${t.attempt}`), { tid: t.tid, attempt: t.attempt, ok: true as const, value: value(t.input as number, t.tid) }));
      if (items.length) h.scheduler.reports.outcomes(hostId, items);
    };
  }

  it('trusts a volunteer after ten agreeing results, lets its results stand alone until a spot check, and checks them all when one of its results is caught wrong', async () => {
    let draw = 0.5;
    const h = schedulerHarness({ random: () => draw });
    const answer = answerer(h);
    const adaptive = (inputs: number[]) => spec(inputs, { replicas: 2, quorum: 2, adaptive: true });
    const a = connect(h.scheduler, 'ha', 2, [], 'va');
    const b = connect(h.scheduler, 'hb', 2, [], 'vb');
    h.scheduler.jobs.submit(adaptive(Array.from({ length: 10 }, (_, i) => i)), 'p', 'o', 'trust');
    for (let i = 0; i < 30 && (await statusOf(h.scheduler, 'trust'))?.state !== 'done'; i++) {
      await settle();
      answer('ha', a);
      answer('hb', b);
    }
    expect([volunteer(h, 'va'), volunteer(h, 'vb')].map((v) => [v.validated, v.trusted])).toEqual([
      [10, true],
      [10, true],
    ]);

    // trusted: each task of the next job goes to one volunteer only
    h.scheduler.jobs.submit(adaptive([0, 1, 2, 3, 4, 5]), 'p', 'o', 'job2');
    await settle();
    const job2 = (link: FakeHost) => link.assigned().filter((t) => t.tid.startsWith('job2.'));
    expect([...job2(a), ...job2(b)].map((t) => t.tid).sort()).toEqual(['job2.0', 'job2.1', 'job2.2', 'job2.3', 'job2.4', 'job2.5']);
    const reply = (hostId: string, link: FakeHost, task: { tid: string; attempt: number; input: unknown }, value = (task.input as number) ** 2) =>
      h.scheduler.reports.outcomes(hostId, [{ tid: task.tid, attempt: task.attempt, ok: true, value }]);
    reply('ha', a, job2(a)[0]!);
    reply('hb', b, job2(b)[0]!);
    await settle();
    // what each gave alone stands provisionally: not done until its volunteer's next spot check
    expect((await statusOf(h.scheduler, 'job2'))?.tasks).toMatchObject({ done: 0 });
    expect(volunteer(h, 'va').provisional.size + volunteer(h, 'vb').provisional.size).toBe(2);

    // a spot check both pass confirms what each gave alone
    draw = 0;
    h.scheduler.jobs.submit(adaptive([5]), 'p', 'o', 'spot');
    await settle();
    for (const [id, link] of [['ha', a], ['hb', b]] as const) reply(id, link, link.assigned().find((t) => t.tid === 'spot.0')!);
    await settle();
    expect((await statusOf(h.scheduler, 'spot'))?.state).toBe('done');
    expect((await statusOf(h.scheduler, 'job2'))?.tasks).toMatchObject({ done: 2 });
    draw = 0.5;

    // hb now lies on what it runs alone: once only lone results are left, they are checked, and it is caught
    const c = connect(h.scheduler, 'hc', 2, [], 'vc');
    for (let i = 0; i < 10 && (await statusOf(h.scheduler, 'job2'))?.state !== 'done'; i++) {
      await settle();
      answer('ha', a);
      answer('hb', b, (x) => x * x + 1);
      answer('hc', c);
    }
    await h.scheduler.writes.durable();
    expect(await resultsOf(h.store, 'job2')).toEqual([0, 1, 4, 9, 16, 25]);
    expect(volunteer(h, 'vb')).toMatchObject({ trusted: false });
    expect(volunteer(h, 'vb').invalid).toBeGreaterThan(0);
    expect(volunteer(h, 'va')).toMatchObject({ trusted: true, invalid: 0 });
  });
});
