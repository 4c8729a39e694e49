import { sealMessage } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { ENDED_LOG_BYTES, EndedLogs } from '../src/host/ended-logs.ts';

const message = (from: string, to: string, seq: number, bytes = 8) => sealMessage({ from, to, tag: 1, seq, data: new Uint8Array(bytes) });
const names = (messages: { from: string; to: string; seq: number }[]) => messages.map((m) => `${m.from}>${m.to}:${m.seq}`);

describe('EndedLogs', () => {
  it('gives all it keeps or what was not acknowledged, per receiver, and forgets what is covered and what its job was', () => {
    const logs = new EndedLogs();
    logs.keep('joba.1', [message('joba.1', 'joba.0', 1), message('joba.1', 'joba.0', 2), message('joba.1', 'joba.2', 1)]);
    logs.keep('jobb.3', [message('jobb.3', 'jobb.0', 7)]);
    expect(logs.tids()).toEqual(['joba.1', 'jobb.3']);
    logs.acked('joba.1', 'joba.0', 1);
    // a task that did not end here is not marked
    logs.acked('joba.9', 'joba.0', 5);
    expect(names(logs.messages({ unacknowledged: true }))).toEqual(['joba.1>joba.0:2', 'joba.1>joba.2:1', 'jobb.3>jobb.0:7']);
    expect(names(logs.messages({ to: new Set(['joba.0']), unacknowledged: false }))).toEqual(['joba.1>joba.0:1', 'joba.1>joba.0:2']);
    logs.covered('joba.1', 'joba.0', 2);
    expect(names(logs.messages({ unacknowledged: false }))).toEqual(['joba.1>joba.2:1', 'jobb.3>jobb.0:7']);
    logs.covered('joba.1', 'joba.2', 1);
    expect(logs.tids()).toEqual(['jobb.3']);
    logs.forget(new Set(['jobb']));
    expect(logs.bytes).toBe(0);
  });

  it('past its bound lets go of the logs of the tasks that ended first', () => {
    const logs = new EndedLogs();
    // four fit with their envelopes' headers, five do not
    const big = ENDED_LOG_BYTES / 4 - 1024;
    for (let i = 1; i <= 5; i++) logs.keep(`joba.${i}`, [message(`joba.${i}`, 'joba.0', 1, big)]);
    expect(names(logs.messages({ unacknowledged: false }))).toEqual(['joba.2>joba.0:1', 'joba.3>joba.0:1', 'joba.4>joba.0:1', 'joba.5>joba.0:1']);
    expect(logs.bytes).toBeLessThanOrEqual(ENDED_LOG_BYTES);
  });
});
