import { decodeEnvelope, type TaskOp } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { taskSeed } from '../src/runtime/determinism.ts';
import { JobVm, encodeNotice, type VmEffect, type VmState } from '../src/vm/index.ts';

const spawn = (inputs: unknown[], name: string | null = 'worker'): TaskOp => ({ kind: 'spawn', name, inputs });

/** A job with one root task, `jobj.0`. */
function rootJob(seed = 1) {
  const vm = new JobVm('jobj', seed, 8);
  const root = vm.add({ n: 1 }, null, null);
  return { vm, root };
}

describe('JobVm', () => {
  it('numbers tasks in order and seeds each from the job’s seed and its index, as runLocal and the grid both do', () => {
    const { vm, root } = rootJob(42);
    expect(root).toEqual({ tid: 'jobj.0', index: 0, parent: null, name: null, input: { n: 1 }, seed: taskSeed(42, 0) });
    const { answer, effects } = vm.request('jobj.0', 1, spawn(['a', undefined]));
    expect(answer).toEqual({ ok: true, value: ['jobj.1', 'jobj.2'] });
    expect(effects).toEqual([
      {
        kind: 'spawn',
        tasks: [
          { tid: 'jobj.1', index: 1, parent: 'jobj.0', name: 'worker', input: 'a', seed: taskSeed(42, 1) },
          { tid: 'jobj.2', index: 2, parent: 'jobj.0', name: 'worker', input: null, seed: taskSeed(42, 2) },
        ],
      },
    ]);
    expect(vm.size).toBe(3);
    expect(new Set([0, 1, 2].map((i) => taskSeed(42, i))).size).toBe(3);
  });

  it('answers a request made again with its first answer, and carries it out once', () => {
    const { vm } = rootJob();
    const first = vm.request('jobj.0', 1, spawn([1, 2]));
    const again = vm.request('jobj.0', 1, spawn([1, 2]));
    expect(again).toEqual({ answer: first.answer, effects: [] });
    expect(vm.size).toBe(3);
  });

  it('resumes from its stored state as a restarted coordinator does: first answers, barrier calls, watchers and groups', () => {
    const { vm } = rootJob();
    vm.request('jobj.0', 1, spawn([1, 2]));
    vm.request('jobj.1', 1, { kind: 'join', group: 'crew' });
    vm.request('jobj.2', 1, { kind: 'join', group: 'crew' });
    vm.request('jobj.0', 2, { kind: 'notify', tids: ['jobj.2'], tag: 7 });
    expect(vm.request('jobj.1', 2, { kind: 'barrier', group: 'crew', count: 2 }).answer).toBe('later');
    const stored = JSON.parse(JSON.stringify(vm.state())) as VmState;

    const restarted = new JobVm('jobj', 1, 8);
    restarted.restore(3, 2, [0, 1, 2], []);
    restarted.restoreState(stored);
    // a spawn made again gets its first tids, and spawns nothing
    expect(restarted.request('jobj.0', 1, spawn([1, 2]))).toEqual({ answer: { ok: true, value: ['jobj.1', 'jobj.2'] }, effects: [] });
    expect(restarted.size).toBe(3);
    // a barrier call made again is still the one waiting: the other's call releases both, each once
    expect(restarted.request('jobj.1', 2, { kind: 'barrier', group: 'crew', count: 2 }).answer).toBe('later');
    const released = restarted.request('jobj.2', 2, { kind: 'barrier', group: 'crew', count: 2 });
    expect(released.effects.map((e) => e.kind === 'reply' && [e.tid, e.requestId])).toEqual([['jobj.1', 2], ['jobj.2', 2]]);
    expect(restarted.request('jobj.1', 3, { kind: 'members', group: 'crew' }).answer).toEqual({ ok: true, value: ['jobj.1', 'jobj.2'] });
    // the watcher stored hears of the end
    expect(restarted.ended('jobj.2', true, new Map())).toEqual([{ kind: 'notice', notice: { from: 'jobj.2', to: 'jobj.0', tag: 7, ok: true, seq: 1 } }]);
  });

  it('refuses a spawn past the limit of spawned tasks, spawning none of it; root tasks do not count', () => {
    const { vm } = rootJob();
    vm.add('another root', null, null);
    expect(vm.request('jobj.0', 1, spawn([1, 2, 3, 4, 5, 6, 7, 8, 9])).answer).toMatchObject({ ok: false, error: { code: 'E_TOO_LARGE' } });
    expect(vm.size).toBe(2);
    expect(vm.request('jobj.0', 2, spawn([1, 2, 3, 4, 5, 6, 7])).answer).toMatchObject({ ok: true });
    expect(vm.request('jobj.0', 3, spawn([1, 2])).answer).toMatchObject({ ok: false, error: { code: 'E_TOO_LARGE' } });
    expect(vm.request('jobj.0', 4, spawn([1])).answer).toMatchObject({ ok: true });
    expect(vm.size).toBe(10);
  });

  it('keeps no task object: a task is described again from its index, the same as when it was added', () => {
    const { vm } = rootJob(9);
    const added = vm.add('x', null, null);
    expect(vm.describe(1, 'x', null, null)).toEqual(added);
    expect(vm.describe(1, 'x', null, null)).not.toBe(added);
    for (let i = 0; i < 1000; i++) vm.add(i, null, null);
    expect(vm.size).toBe(1002);
    expect(vm.standing('jobj.1001')).toBe('live');
    expect(vm.standing('jobj.1002')).toBe('no-such-task');
  });

  it('after a restart knows every task as ended well, but those said to be live or failed', () => {
    const vm = new JobVm('jobj', 1, 8);
    vm.restore(6, 2, [0, 4], [3]);
    expect(vm.size).toBe(6);
    expect(['jobj.0', 'jobj.1', 'jobj.3', 'jobj.4', 'jobj.6'].map((tid) => vm.standing(tid))).toEqual(['live', 'ended', 'ended', 'live', 'no-such-task']);
    const { effects } = vm.request('jobj.0', 1, { kind: 'notify', tids: ['jobj.1', 'jobj.3'], tag: 2 });
    expect(effects.map((e) => e.kind === 'notice' && e.notice.ok)).toEqual([true, false]);
    // two spawned before the restart: six more fit under the limit of eight
    expect(vm.request('jobj.0', 2, spawn([1, 2, 3, 4, 5, 6, 7])).answer).toMatchObject({ ok: false });
    expect(vm.request('jobj.0', 3, spawn([1, 2, 3, 4, 5, 6])).answer).toEqual({ ok: true, value: ['jobj.6', 'jobj.7', 'jobj.8', 'jobj.9', 'jobj.10', 'jobj.11'] });
  });

  it('gives group instances from 0, refuses leaving a group one is not in, and lists members in instance order', () => {
    const { vm } = rootJob();
    vm.request('jobj.0', 1, spawn([null, null]));
    expect(vm.request('jobj.1', 1, { kind: 'join', group: 'g' }).answer).toEqual({ ok: true, value: 0 });
    expect(vm.request('jobj.0', 2, { kind: 'join', group: 'g' }).answer).toEqual({ ok: true, value: 1 });
    expect(vm.request('jobj.2', 1, { kind: 'leave', group: 'g' }).answer).toMatchObject({ ok: false, error: { code: 'E_CONFLICT' } });
    expect(vm.request('jobj.2', 2, { kind: 'members', group: 'g' }).answer).toEqual({ ok: true, value: ['jobj.1', 'jobj.0'] });
    expect(vm.request('jobj.2', 3, { kind: 'size', group: 'g' }).answer).toEqual({ ok: true, value: 2 });
  });

  it('holds barrier callers until the count is reached, then answers them all — a caller asking again still waits', () => {
    const { vm } = rootJob();
    vm.request('jobj.0', 1, spawn([null, null]));
    expect(vm.request('jobj.1', 1, { kind: 'barrier', group: 'b', count: 3 })).toEqual({ answer: 'later', effects: [] });
    expect(vm.request('jobj.1', 1, { kind: 'barrier', group: 'b', count: 3 })).toEqual({ answer: 'later', effects: [] });
    expect(vm.request('jobj.2', 1, { kind: 'barrier', group: 'b', count: 2 }).answer).toMatchObject({ ok: false, error: { code: 'E_CONFLICT' } });
    vm.request('jobj.2', 2, { kind: 'barrier', group: 'b', count: 3 });
    const last = vm.request('jobj.0', 2, { kind: 'barrier', group: 'b', count: 3 });
    expect(last.answer).toBe('later');
    const done = { ok: true, value: null };
    expect(last.effects).toEqual([
      { kind: 'reply', tid: 'jobj.1', requestId: 1, answer: done },
      { kind: 'reply', tid: 'jobj.2', requestId: 2, answer: done },
      { kind: 'reply', tid: 'jobj.0', requestId: 2, answer: done },
    ]);
    // Released, a replayed barrier call gets its answer at once.
    expect(vm.request('jobj.1', 1, { kind: 'barrier', group: 'b', count: 3 })).toEqual({ answer: done, effects: [] });
  });

  it('notifies watchers when a task ends, each with the seq after the last message it sent them', () => {
    const { vm } = rootJob();
    vm.request('jobj.0', 1, spawn([null]));
    expect(vm.request('jobj.0', 2, { kind: 'notify', tids: ['jobj.1'], tag: 7 })).toEqual({ answer: { ok: true, value: null }, effects: [] });
    const effects = vm.ended('jobj.1', true, new Map([['jobj.0', 12]]));
    expect(effects).toEqual<VmEffect[]>([{ kind: 'notice', notice: { from: 'jobj.1', to: 'jobj.0', tag: 7, ok: true, seq: 13 } }]);
    expect(vm.ended('jobj.1', true, new Map())).toEqual([]);
    expect(vm.standing('jobj.1')).toBe('ended');
  });

  it('keeps the notices a task was sent, to send again, until it ends; a second notice of one task comes after the first', () => {
    const { vm } = rootJob();
    vm.request('jobj.0', 1, spawn([null, null]));
    vm.request('jobj.0', 2, { kind: 'notify', tids: ['jobj.1'], tag: 7 });
    vm.ended('jobj.1', false, new Map([['jobj.0', 2]]));
    vm.request('jobj.0', 3, { kind: 'notify', tids: ['jobj.1', 'jobj.2'], tag: 8 });
    expect(vm.noticesFor('jobj.0')).toEqual([
      { from: 'jobj.1', to: 'jobj.0', tag: 7, ok: false, seq: 3 },
      { from: 'jobj.1', to: 'jobj.0', tag: 8, ok: false, seq: 4 },
    ]);
    // a coordinator restarted on the stored state sends them again
    const restarted = new JobVm('jobj', 1, 8);
    restarted.restore(3, 2, [0, 2], [1]);
    restarted.restoreState(JSON.parse(JSON.stringify(vm.state())));
    expect(restarted.noticesFor('jobj.0')).toEqual(vm.noticesFor('jobj.0'));
    expect(restarted.ended('jobj.2', true, new Map())).toEqual([{ kind: 'notice', notice: { from: 'jobj.2', to: 'jobj.0', tag: 8, ok: true, seq: 1 } }]);
    expect(restarted.noticesFor('jobj.0')).toHaveLength(3);
    restarted.ended('jobj.0', true, new Map());
    expect(restarted.noticesFor('jobj.0')).toEqual([]);
    expect(restarted.holdsState).toBe(true);
  });

  it('reports at once a task that has ended, or never was (not ok), and refuses another job’s tid', () => {
    const { vm } = rootJob();
    vm.request('jobj.0', 1, spawn([null]));
    vm.ended('jobj.1', false, new Map([['jobj.0', 3]]));
    const { answer, effects } = vm.request('jobj.0', 2, { kind: 'notify', tids: ['jobj.1', 'jobj.99'], tag: 5 });
    expect(answer).toEqual({ ok: true, value: null });
    expect(effects).toEqual([
      { kind: 'notice', notice: { from: 'jobj.1', to: 'jobj.0', tag: 5, ok: false, seq: 4 } },
      { kind: 'notice', notice: { from: 'jobj.99', to: 'jobj.0', tag: 5, ok: false, seq: 1 } },
    ]);
    expect(vm.request('jobj.0', 3, { kind: 'notify', tids: ['jobj.1', 'kjob.1'], tag: 5 })).toEqual({
      answer: { ok: false, error: { code: 'E_FORBIDDEN', message: 'kjob.1 is not a task of job jobj' } },
      effects: [],
    });
  });

  it('takes an ended task out of its groups and barriers', () => {
    const { vm } = rootJob();
    vm.request('jobj.0', 1, spawn([null]));
    vm.request('jobj.1', 1, { kind: 'join', group: 'g' });
    vm.request('jobj.1', 2, { kind: 'barrier', group: 'b', count: 2 });
    vm.ended('jobj.1', true, new Map());
    expect(vm.request('jobj.0', 2, { kind: 'size', group: 'g' }).answer).toEqual({ ok: true, value: 0 });
    expect(vm.request('jobj.0', 3, { kind: 'barrier', group: 'b', count: 2 }).effects).toEqual([]);
  });

  it('tells where a tid stands, and refuses requests of tasks that are not live', () => {
    const { vm } = rootJob();
    expect(['jobj.0', 'jobj.5', 'kjob.0', 'jobj.00'].map((tid) => vm.standing(tid))).toEqual(['live', 'no-such-task', 'another-job', 'no-such-task']);
    vm.ended('jobj.0', true, new Map());
    expect(vm.request('jobj.0', 9, { kind: 'size', group: 'g' }).answer).toMatchObject({ ok: false, error: { code: 'E_NOT_FOUND' } });
  });

  it('encodes a notice as the message its watcher receives from the task that ended', () => {
    const decoded = decodeEnvelope(encodeNotice({ from: 'jobj.1', to: 'jobj.0', tag: 7, ok: true, seq: 5 }));
    expect(decoded.ok && decoded.value.header).toMatchObject({ type: 'msg', from: 'jobj.1', to: 'jobj.0', tag: 7, seq: 5 });
    expect(decoded.ok && 'after' in decoded.value.header).toBe(false);
  });
});
