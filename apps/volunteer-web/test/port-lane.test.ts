import { describe, expect, it } from 'vitest';
import { portLane } from '../src/sandbox/port-lane.ts';

/** A lane's worker end, and the relay's end of its port. */
function setup() {
  const { port1, port2 } = new MessageChannel();
  const relayHeard: unknown[] = [];
  port2.onmessage = ({ data }) => relayHeard.push(data);
  const lane = portLane(port1);
  const events: string[] = [];
  lane.addEventListener('bufferedamountlow', () => events.push('low'));
  lane.addEventListener('close', () => events.push('close'));
  lane.addEventListener('message', ({ data }) => events.push(`message ${new Uint8Array(data as ArrayBuffer).join(',')}`));
  const settle = () => new Promise((resolve) => setTimeout(resolve, 10));
  return { lane, relay: port2, relayHeard, events, settle, close: () => port2.close() };
}

describe('portLane', () => {
  it('writes envelopes to the relay and counts them buffered until the relay says they left the channel', async () => {
    const t = setup();
    t.lane.bufferedAmountLowThreshold = 4;
    t.lane.send(new Uint8Array([1, 2, 3, 4, 5, 6]));
    // a view into a larger buffer goes as its own bytes only
    t.lane.send(new Uint8Array([9, 9, 7, 8, 9]).subarray(2));
    expect(t.lane.bufferedAmount).toBe(9);
    await t.settle();
    expect(t.relayHeard.map((b) => [...new Uint8Array(b as ArrayBuffer)])).toEqual([[1, 2, 3, 4, 5, 6], [7, 8, 9]]);

    t.relay.postMessage({ op: 'sent', bytes: 3 });
    await t.settle();
    expect(t.lane.bufferedAmount).toBe(6);
    expect(t.events).toEqual([]);
    // crossing the low threshold downwards fires once; more drain does not fire again
    t.relay.postMessage({ op: 'sent', bytes: 6 });
    t.relay.postMessage({ op: 'sent', bytes: 9 });
    await t.settle();
    expect(t.lane.bufferedAmount).toBe(0);
    expect(t.events).toEqual(['low']);
    t.close();
  });

  it('never counts more sent than was written, nor less than before', async () => {
    const t = setup();
    t.lane.send(new Uint8Array(10));
    t.relay.postMessage({ op: 'sent', bytes: 50 });
    t.relay.postMessage({ op: 'sent', bytes: 2 });
    await t.settle();
    expect(t.lane.bufferedAmount).toBe(0);
    t.close();
  });

  it('hands envelopes from the relay to its listeners, and ignores what is neither envelope nor control', async () => {
    const t = setup();
    t.relay.postMessage('junk');
    t.relay.postMessage({ op: 'sent', bytes: -1 });
    t.relay.postMessage(new Uint8Array([1, 2]).buffer);
    await t.settle();
    expect(t.events).toEqual(['message 1,2']);
    expect(t.lane.readyState).toBe('open');
    t.close();
  });

  it('closes when the relay says its channel closed: writing then fails as on a closed data channel', async () => {
    const t = setup();
    t.relay.postMessage({ op: 'close' });
    await t.settle();
    expect(t.lane.readyState).toBe('closed');
    expect(t.events).toEqual(['close']);
    expect(() => t.lane.send(new Uint8Array(1))).toThrow(expect.objectContaining({ name: 'InvalidStateError' }));
    t.close();
  });

  it('tells the relay when the task closes it, once', async () => {
    const t = setup();
    t.lane.close();
    t.lane.close();
    await t.settle();
    expect(t.relayHeard).toEqual([{ op: 'close' }]);
    expect(t.events).toEqual(['close']);
    t.close();
  });
});
