import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ReportBatch } from '../src/runtime/report-batch.ts';

describe('ReportBatch', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] }));
  afterEach(() => vi.useRealTimers());

  const batch = () => {
    const sent: number[][] = [];
    return { sent, reports: new ReportBatch<number>((items) => sent.push(items)) };
  };

  it('sends what comes within 20 ms as one batch, and everything at once on flush', () => {
    const { sent, reports } = batch();
    reports.add(1);
    vi.advanceTimersByTime(19);
    reports.add(2);
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([[1, 2]]);
    reports.add(3);
    reports.flush();
    vi.advanceTimersByTime(20);
    expect(sent).toEqual([[1, 2], [3]]);
  });

  it('sends at once when hurried, and each report of the next 20 ms as it comes', () => {
    const { sent, reports } = batch();
    reports.add(1);
    reports.hurry();
    expect(sent).toEqual([[1]]);
    vi.advanceTimersByTime(5);
    reports.add(2);
    expect(sent).toEqual([[1], [2]]);
    vi.advanceTimersByTime(15);
    reports.add(3);
    expect(sent).toEqual([[1], [2]]);
    vi.advanceTimersByTime(20);
    expect(sent).toEqual([[1], [2], [3]]);
  });
});
