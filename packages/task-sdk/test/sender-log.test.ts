import { encodeMessage, unsealMessage } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { LOG_MAX_BYTES, LOG_SHARE_BYTES, SenderLog } from '../src/runtime/sender-log.ts';

const envelope = (to: string, seq: number, data: unknown = seq) => encodeMessage({ from: 'job1.0', to, tag: 1, seq, data }) as Uint8Array<ArrayBuffer>;
const seqs = (envelopes: Uint8Array[]) => envelopes.map((e) => unsealMessage(e)!.seq);

function log() {
  const full: string[] = [];
  const dropped: string[] = [];
  return { log: new SenderLog((to) => full.push(to), (to) => dropped.push(to)), full, dropped };
}

describe('SenderLog', () => {
  it('keeps every message per receiver until the receiver’s checkpoint covers it', () => {
    const { log: l } = log();
    for (let seq = 1; seq <= 4; seq++) l.add('job1.1', seq, envelope('job1.1', seq));
    l.add('job1.2', 1, envelope('job1.2', 1));
    l.covered('job1.1', 2);
    expect(seqs(l.for('job1.1'))).toEqual([3, 4]);
    expect(l.all().map((e) => [unsealMessage(e)!.to, unsealMessage(e)!.seq])).toEqual([['job1.1', 3], ['job1.1', 4], ['job1.2', 1]]);
    // a checkpoint older than what was covered covers nothing more
    l.covered('job1.1', 1);
    expect(seqs(l.for('job1.1'))).toEqual([3, 4]);
    l.covered('job1.1', 9);
    l.covered('job1.2', 1);
    expect(l.all()).toEqual([]);
    expect(l.bytes).toBe(0);
  });

  it('asks once for a checkpoint of a receiver whose share passes its bound, and again once it shrank', () => {
    const { log: l, full } = log();
    const big = (seq: number) => envelope('job1.1', seq, new Uint8Array(LOG_SHARE_BYTES / 2));
    for (let seq = 1; seq <= 4; seq++) l.add('job1.1', seq, big(seq));
    expect(full).toEqual(['job1.1']);
    l.covered('job1.1', 4);
    for (let seq = 5; seq <= 8; seq++) l.add('job1.1', seq, big(seq));
    expect(full).toEqual(['job1.1', 'job1.1']);
  });

  it('past its limit lets go of the oldest messages of the largest share, and says so', () => {
    const { log: l, dropped } = log();
    const chunk = LOG_MAX_BYTES / 8;
    for (let seq = 1; seq <= 6; seq++) l.add('job1.1', seq, envelope('job1.1', seq, new Uint8Array(chunk)));
    l.add('job1.2', 1, envelope('job1.2', 1, new Uint8Array(chunk)));
    expect(dropped).toEqual([]);
    l.add('job1.2', 2, envelope('job1.2', 2, new Uint8Array(chunk)));
    // an eighth under the limit at once: the next sends drop nothing
    expect(dropped).toEqual(['job1.1']);
    expect(seqs(l.for('job1.1'))).toEqual([3, 4, 5, 6]);
    expect(seqs(l.for('job1.2'))).toEqual([1, 2]);
    expect(l.bytes).toBeLessThanOrEqual(LOG_MAX_BYTES - LOG_MAX_BYTES / 8);
  });

  it('drops a log of many small messages a batch at a time, not one per send', () => {
    const { log: l, dropped } = log();
    const small = envelope('job1.1', 1, new Uint8Array(4096));
    const count = Math.ceil(LOG_MAX_BYTES / small.byteLength) + 10;
    for (let seq = 1; seq <= count; seq++) l.add('job1.1', seq, small);
    // one batch took it an eighth under the limit: the sends after it dropped nothing
    expect(dropped).toEqual(['job1.1']);
    expect(l.bytes).toBeLessThanOrEqual(LOG_MAX_BYTES - LOG_MAX_BYTES / 8 + 10 * small.byteLength);
  });

  it('restores the log a checkpoint kept, skipping what does not read as a message', () => {
    const { log: l } = log();
    l.restore([envelope('job1.1', 3), new Uint8Array([1, 2, 3]), envelope('job1.2', 1)]);
    expect(seqs(l.for('job1.1'))).toEqual([3]);
    expect(seqs(l.for('job1.2'))).toEqual([1]);
  });
});
