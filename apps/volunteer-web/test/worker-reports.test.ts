import { encodeEnvelope, encodeMessage, sealMessage } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { checkDelivered, checkLaneSent, checkSend, parseWorkerReport } from '../src/host/worker-reports.ts';
import { assignment } from './support/assignments.ts';

const task = assignment('joba', 0);
const message = (from: string, to: string, seq: number) => encodeMessage({ from, to, tag: 1, seq, data: seq });

describe('worker reports', () => {
  it('parses what a worker says, and turns anything else into a bad frame', () => {
    expect(parseWorkerReport({ type: 'log', tid: 'joba.0', line: 'hi' })).toEqual({ ok: true, value: { type: 'log', tid: 'joba.0', line: 'hi' } });
    const bad = parseWorkerReport({ type: 'log', tid: 'joba.0' });
    expect(bad).toMatchObject({ ok: false, error: { code: 'E_BAD_FRAME', message: expect.stringContaining('bad message from the task worker') } });
  });

  it('lets a task send only its own numbered messages to tasks of its job', () => {
    const sent = checkSend(message('joba.0', 'joba.1', 1), task);
    expect(sent.ok && sent.value).toMatchObject({ from: 'joba.0', to: 'joba.1', seq: 1 });
    expect(checkSend(message('joba.0', 'joba.1', 0), task)).toEqual({ ok: false, error: { code: 'E_BAD_FRAME', message: 'joba.0 sent what is not a message: message frame: seq is not a count from 1' } });
    expect(checkSend(new Uint8Array([1, 2]), task)).toMatchObject({ ok: false, error: { code: 'E_BAD_FRAME' } });
    expect(checkSend(message('joba.3', 'joba.1', 1), task)).toEqual({ ok: false, error: { code: 'E_FORBIDDEN', message: 'joba.0 may not send as joba.3 to joba.1' } });
    expect(checkSend(message('joba.0', 'jobb.1', 1), task)).toEqual({ ok: false, error: { code: 'E_FORBIDDEN', message: 'joba.0 may not send as joba.0 to jobb.1' } });
  });

  it('takes what a task wrote on lanes up to the first envelope that is not its own message to its job', () => {
    const good = [message('joba.0', 'joba.1', 1), message('joba.0', 'joba.2', 1)];
    expect(checkLaneSent(good, task)).toEqual({
      sent: [
        { message: expect.objectContaining({ from: 'joba.0', to: 'joba.1', seq: 1 }), bytes: good[0] },
        { message: expect.objectContaining({ from: 'joba.0', to: 'joba.2', seq: 1 }), bytes: good[1] },
      ],
      error: null,
    });
    for (const bad of [message('joba.1', 'joba.2', 1), message('joba.0', 'jobb.2', 1), message('joba.0', 'joba.2', 0), encodeEnvelope({ type: 'ack', of: 'joba.0', by: 'joba.2', seq: 1 })]) {
      const checked = checkLaneSent([good[0]!, bad, good[1]!], task);
      expect(checked.sent.map((s) => s.bytes)).toEqual([good[0]]);
      expect(checked.error).toEqual({ code: 'E_FORBIDDEN', message: 'joba.0 wrote on a lane what is not a message of its own to a task of its job' });
    }
  });

  it('takes a delivery report whose lane messages are named as of the task’s job', () => {
    const entries = [
      { n: 1, from: 'joba.1', seq: 1 },
      { n: 2, from: 'joba.1', seq: 2, lane: true as const },
    ];
    expect(checkDelivered(entries, 'joba.0')).toEqual({ ok: true, value: entries });
    const error = { code: 'E_BAD_FRAME', message: 'joba.0 reported a lane delivery that is not a message of its job to it' };
    expect(checkDelivered([{ n: 1, from: 'jobb.1', seq: 2, lane: true }], 'joba.0')).toEqual({ ok: false, error });
    expect(checkDelivered([{ n: 1, from: 'joba.1', seq: 0, lane: true }], 'joba.0')).toEqual({ ok: false, error });
  });
});
