import { afterEach, describe, expect, it } from 'vitest';
import { TaskWindow } from '../src/scheduler/task-window.ts';
import type { TaskRun } from '../src/scheduler/model.ts';
import type { StoredTask } from '../src/store/store.ts';
import { closeSchedulers, connect, resultsOf, schedulerHarness, settle, spec, statusOf } from './support/scheduler-harness.ts';

afterEach(closeSchedulers);

const row = (index: number) => ({ index }) as StoredTask;

/** A window over a fake store of pending rows `pending`, with every read recorded. */
function windowOver(size: number, pending: number[]) {
  const reads: { from: number; until: number; limit: number }[] = [];
  const taken: number[] = [];
  let more = 0;
  const window = new TaskWindow(size, {
    read: async (from, until, limit) => {
      reads.push({ from, until, limit });
      return pending.filter((i) => i >= from && i < until).slice(0, limit).map(row);
    },
    admit: (r) => ({ tid: `j.${r.index}` }) as TaskRun,
    more: () => more++,
    failed: (error) => {
      throw error;
    },
  });
  const take = () => {
    const task = window.take();
    if (task) taken.push(Number(task.tid.slice(2)));
    return task;
  };
  return { window, reads, taken, take, more: () => more };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('TaskWindow', () => {
  it('reads only stored rows, a window at a time, again when fewer than half of it are left', async () => {
    const { window, reads, take } = windowOver(4, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(take()).toBeNull();
    window.durable(6);
    await turn();
    expect(reads).toEqual([{ from: 0, until: 6, limit: 4 }]);
    expect(window.waiting).toBe(4);
    take();
    take();
    await turn();
    expect(reads).toHaveLength(1);
    take();
    await turn();
    // one left of four: the next page, from where the last one ended, up to what is stored
    expect(reads[1]).toEqual({ from: 4, until: 6, limit: 3 });
    expect(window.waiting).toBe(3);
    window.durable(10);
    while (take()) await turn();
    await turn();
    expect(window.waiting).toBe(0);
  });

  it('hands out every stored root once, in index order, whatever the window size', async () => {
    for (const size of [1, 2, 3, 7]) {
      const pending = [0, 1, 2, 4, 5, 8, 9, 10, 11, 13];
      const { window, taken, take } = windowOver(size, pending);
      window.durable(14);
      for (let i = 0; i < 40; i++) {
        take();
        await turn();
      }
      expect(taken, `window of ${size}`).toEqual(pending);
    }
  });

  it('skips the roots a restart holds in memory already, however their rows read later', async () => {
    // rows 0-3 pending, 4 and 5 were running when the coordinator stopped; by the time the next
    // page is read, they went back to pending (their host did not come back) and are retried elsewhere
    const pending = [0, 1, 2, 3, 6, 7];
    const { window, taken, take } = windowOver(4, pending);
    window.restored(8, [4, 5]);
    await turn();
    pending.push(4, 5);
    pending.sort((a, b) => a - b);
    for (let i = 0; i < 10; i++) {
      take();
      await turn();
    }
    expect(taken).toEqual([0, 1, 2, 3, 6, 7]);
  });

  it('reads nothing once closed, and drops a page that comes back after', async () => {
    const { window, reads, more } = windowOver(4, [0, 1, 2]);
    window.durable(3);
    expect(window.close()).toEqual([]);
    await turn();
    expect(window.waiting).toBe(0);
    expect(more()).toBe(0);
    window.durable(5);
    expect(reads).toHaveLength(1);
  });
});

describe('the task window in the scheduler', () => {
  it('runs a job of many more tasks than its window with a bounded number in memory', async () => {
    const { scheduler, store } = schedulerHarness({ windowTasks: 8 });
    const inputs = Array.from({ length: 300 }, (_, i) => i);
    scheduler.jobs.submit(spec(inputs), 'p', 'o', 'big');
    const host = connect(scheduler, 'ha', 2);
    let most = 0;
    for (let round = 0; round < 200 && scheduler.jobs.job('big'); round++) {
      await settle();
      most = Math.max(most, scheduler.jobs.size.tasks);
      const acked = new Set(host.of('ack').flatMap((m) => m.tasks.map((t) => `${t.tid}/${t.attempt}`)));
      const held = host.assigned().filter((t) => !acked.has(`${t.tid}/${t.attempt}`));
      scheduler.reports.outcomes('ha', held.map((t) => ({ tid: t.tid, attempt: t.attempt, ok: true as const, value: (t.input as number) * 3 })));
    }
    expect(await statusOf(scheduler, 'big')).toMatchObject({ state: 'done', tasks: { total: 300, done: 300 } });
    expect(await resultsOf(store, 'big')).toEqual(inputs.map((i) => i * 3));
    expect(host.assigned().map((t) => t.tid)).toEqual(inputs.map((i) => `big.${i}`));
    // the window, what the host holds (prefetch: two a slot) and ended tasks not yet stored
    expect(most).toBeLessThanOrEqual(8 + 4 + 4);
    expect(scheduler.jobs.size.tasks).toBe(0);
  });

  it('does not lease twice a root that ran when the coordinator stopped and was retried after', async () => {
    const first = schedulerHarness({ windowTasks: 4 });
    first.scheduler.jobs.submit(spec(Array.from({ length: 10 }, (_, i) => i)), 'p', 'o', 'job1');
    connect(first.scheduler, 'ha', 3);
    await settle();
    // ha runs 0-5; it reloads with one slot, keeping 4 and 5: 0-3 wait for a retry
    connect(first.scheduler, 'ha', 1, [
      { tid: 'job1.4', attempt: 1 },
      { tid: 'job1.5', attempt: 1 },
    ]);
    await settle();
    await first.scheduler.writes.durable();
    // the coordinator restarts and ha never comes back: 4 and 5 are retried, after 0-3 were read in
    const { scheduler } = schedulerHarness({ store: first.store, windowTasks: 4, reconnectGraceMs: 0 });
    await scheduler.restore();
    await new Promise((resolve) => setTimeout(resolve, 5));
    await settle();
    const b = connect(scheduler, 'hb', 8);
    await settle();
    await settle();
    // a new volunteer holds a few leases at first (volunteers.ts); each result earns one more
    for (let returned = 0; returned < b.assigned().length; returned++) {
      const { tid, attempt } = b.assigned()[returned]!;
      scheduler.reports.outcomes('hb', [{ tid, attempt, ok: true, value: null }]);
      await settle();
    }
    const tids = b.assigned().map((t) => t.tid);
    expect(tids.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `job1.${i}`).sort());
  });
});
