import { afterEach, describe, expect, it } from 'vitest';
import { closeSchedulers, connect, schedulerHarness, settle, spec } from './support/scheduler-harness.ts';

afterEach(closeSchedulers);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One coordinator of several (docs/cluster.md): hosts of a coordinator that died reconnect here
 * before or after this one takes its jobs over (`adopt`); what they still run they keep.
 */
describe('a scheduler taking over another coordinator’s jobs', () => {
  async function jobOfAnother() {
    const first = schedulerHarness();
    first.scheduler.jobs.submit(spec([1, 2, 3]), 'p', 'o', 'job1');
    connect(first.scheduler, 'ha', 1);
    connect(first.scheduler, 'hb', 1);
    connect(first.scheduler, 'hc', 1);
    await settle();
    await first.scheduler.writes.durable();
    return first.store;
  }

  it('holds what a connecting host runs of a job it does not run yet, and lets the host keep it once it takes the job over', async () => {
    const store = await jobOfAnother();
    const { scheduler } = schedulerHarness({ store, heldMs: 60_000, reconnectGraceMs: 50 });
    await scheduler.restore([]);
    // ha still runs its task; hb lost its own (a reload); hc does not come here
    const a = connect(scheduler, 'ha', 1, [{ tid: 'job1.0', attempt: 1 }]);
    const b = connect(scheduler, 'hb', 1);
    await settle();
    expect(a.of('cancel')).toEqual([]);
    expect(scheduler.views.status('job1')).toBeNull();

    await scheduler.adopt(['job1']);
    await settle();
    expect(a.of('cancel')).toEqual([]);
    expect(scheduler.hosts.get('ha')?.assigned.get('job1.0')).toBe(1);
    // hb's task was lost with the reload: it runs again, from its start point, as a recovering task
    expect(scheduler.jobs.task('job1.1')).toMatchObject({ attempt: 2, state: 'running' });
    expect(b.of('cancel')).toEqual([]);
    scheduler.reports.outcomes('ha', [{ tid: 'job1.0', attempt: 1, ok: true, value: 'kept' }]);
    await settle();
    expect(scheduler.views.status('job1')?.tasks.done).toBe(1);
    // hc never came: after the reconnect grace its task runs again, on a host that is there
    expect(scheduler.jobs.task('job1.2')).toMatchObject({ attempt: 1, hostId: 'hc' });
    await sleep(100);
    await settle();
    expect(scheduler.jobs.task('job1.2')?.attempt).toBe(2);
    expect([...a.assigned(), ...b.assigned()].map((t) => [t.tid, t.attempt])).toContainEqual(['job1.2', 2]);
  });

  it('cancels what it held once the hold runs out with the job still run elsewhere', async () => {
    const store = await jobOfAnother();
    const { scheduler } = schedulerHarness({ store, heldMs: 30 });
    await scheduler.restore([]);
    const a = connect(scheduler, 'ha', 1, [{ tid: 'job1.0', attempt: 1 }]);
    await settle();
    expect(a.of('cancel')).toEqual([]);
    await sleep(60);
    expect(a.of('cancel')).toEqual([expect.objectContaining({ tasks: [{ tid: 'job1.0', attempt: 1 }] })]);
  });

  it('takes over only the jobs it is given, and a job it runs already only once', async () => {
    const store = await jobOfAnother();
    const { scheduler } = schedulerHarness({ store, heldMs: 60_000 });
    await scheduler.restore(['no-such-job']);
    expect(scheduler.views.status('job1')).toBeNull();
    await scheduler.adopt(['job1']);
    await scheduler.adopt(['job1']);
    expect(scheduler.jobs.size).toMatchObject({ jobs: 1, tasks: 3 });
  });
});
