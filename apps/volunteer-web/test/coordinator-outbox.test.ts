import type { HostMessage } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { CoordinatorOutbox, type OutboxFrame } from '../src/host/coordinator-outbox.ts';

const request = (tid: string, requestId: number): HostMessage => ({ type: 'request', tid, attempt: 1, requestId, op: { kind: 'size', group: 'g' } });

describe('CoordinatorOutbox', () => {
  it('keeps frames in order while offline, sends them after the welcome, and never sends one twice', () => {
    let online = false;
    const sent: OutboxFrame[] = [];
    const outbox = new CoordinatorOutbox((frame) => online && sent.push(frame) > 0);
    const envelope = new Uint8Array([1, 2]);
    outbox.send(request('joba.0', 1));
    outbox.send(envelope);
    outbox.send(request('joba.1', 1));
    outbox.dropRequestsOf('joba.1');
    online = true;
    // a frame sent while older ones wait would overtake them: it waits too
    outbox.send(request('joba.0', 2));
    expect(sent).toEqual([]);
    outbox.flush();
    expect(sent).toEqual([request('joba.0', 1), envelope, request('joba.0', 2)]);
    outbox.flush();
    outbox.send(request('joba.0', 3));
    expect(sent).toHaveLength(4);
  });
});
