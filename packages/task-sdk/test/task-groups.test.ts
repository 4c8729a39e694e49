import { describe, expect, it } from 'vitest';
import { TaskGroups } from '../src/vm/task-groups.ts';

describe('TaskGroups', () => {
  it('gives the lowest free instance number, as pvm_joingroup does', () => {
    const g = new TaskGroups<{ tid: string; requestId: number }>();
    expect(['a', 'b', 'c'].map((t) => g.join('ring', t))).toEqual([0, 1, 2]);
    expect(g.join('ring', 'b')).toBe(1);
    expect(g.leave('ring', 'b')).toBe(true);
    expect(g.join('ring', 'd')).toBe(1);
    expect(g.members('ring')).toEqual(['a', 'd', 'c']);
    expect(g.size('ring')).toBe(3);
    expect(g.leave('ring', 'zz')).toBe(false);
    expect(g.size('other')).toBe(0);
  });

  it('releases a barrier when count callers wait, then starts afresh', () => {
    const g = new TaskGroups<{ tid: string; requestId: number }>();
    expect(g.barrier('b', 3, { tid: 'a', requestId: 1 })).toEqual([]);
    expect(g.barrier('b', 3, { tid: 'b', requestId: 4 })).toEqual([]);
    expect(g.barrier('b', 2, { tid: 'c', requestId: 1 })).toBeNull();
    expect(g.barrier('b', 3, { tid: 'c', requestId: 2 })?.map((w) => w.tid)).toEqual(['a', 'b', 'c']);
    expect(g.barrier('b', 1, { tid: 'a', requestId: 2 })?.map((w) => w.tid)).toEqual(['a']);
  });

  it('takes an ended task out of its groups and barriers', () => {
    const g = new TaskGroups<{ tid: string; requestId: number }>();
    g.join('x', 'a');
    g.join('y', 'a');
    g.barrier('x', 2, { tid: 'a', requestId: 1 });
    g.leaveAll('a');
    expect(g.size('x') + g.size('y')).toBe(0);
    expect(g.barrier('x', 1, { tid: 'b', requestId: 1 })?.map((w) => w.tid)).toEqual(['b']);
  });
});
