import { PROTOCOL_VERSION } from '@webpvm/vm-protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { assignment } from './support/assignments.ts';
import { memoryStore } from './support/memory-store.ts';
import { startHost, stopHosts, welcome } from './support/start-host.ts';
import { settle } from './support/timing.ts';
import { startsOf } from './support/fake-workers.ts';

const checkpoint = { state: { i: 3 }, rng: [1, 2, 3, 4], sent: [], requests: 0 };
const taken = (tid: string) => ({ type: 'checkpoint', tid, frozen: false, checkpoint, stateBuffers: [], received: 0, unread: [], unreadLane: [], delivered: [], log: [] });

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  stopHosts();
  vi.useRealTimers();
});

describe('HostRuntime', () => {
  it('says hello, keeps the identity it is given and beats the heart', async () => {
    const host = await startHost();
    expect(host.runtime.snapshot().connection).toBe('connecting');
    host.socket().open();
    expect(host.socket().sent[0]).toEqual({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      identity: null,
      slots: 2,
      running: [],
      userAgent: 'vitest',
      volunteer: 'vitest-volunteer-key-0123456789abcdef',
    });
    host.socket().receive(welcome);
    await settle();
    expect(host.store.data.get('identity')).toEqual({ hostId: 'h1', secret: 's1' });
    expect(host.runtime.snapshot()).toMatchObject({ connection: 'connected', hostId: 'h1', slots: 2, policy: 'always' });
    await vi.advanceTimersByTimeAsync(2000);
    expect(host.socket().sentOfType('heartbeat')).toHaveLength(2);
  });

  it('stores a result before sending it and forgets it with its checkpoint on ack', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });
    expect(startsOf(host.workers[0]!.received[0]!)[0]).toMatchObject({ type: 'start', checkpointIntervalMs: 100 });

    host.workers[0]!.emit(taken('joba.0'));
    await settle();
    expect(host.store.data.get('ckpt:joba.0')).toEqual({ attempt: 1, checkpoint, stateBuffers: [] });
    expect(host.socket().sentOfType('checkpoint')).toEqual([{ type: 'checkpoint', tid: 'joba.0', attempt: 1, checkpoint }]);

    // while the write to IndexedDB has not finished, nothing is sent
    const write = host.store.write;
    let finishWrite = () => {};
    host.store.write = (puts, dels) => new Promise<void>((resolve) => (finishWrite = () => void write(puts, dels).then(resolve)));
    host.workers[0]!.emit({ type: 'done', tid: 'joba.0', ok: true, value: { pi: 3.14 } });
    await vi.advanceTimersByTimeAsync(10);
    expect(host.socket().sentOfType('results')).toEqual([]);
    finishWrite();
    host.store.write = write;
    await settle();
    // one record holds the batch the outcome was written in
    const records = [...host.store.data].filter(([key]) => key.startsWith('results:')).map(([, value]) => value);
    expect(records).toEqual([[{ tid: 'joba.0', attempt: 1, ok: true, value: { pi: 3.14 } }]]);
    expect(host.socket().sentOfType('results')).toEqual([
      { type: 'results', items: [{ tid: 'joba.0', attempt: 1, ok: true, value: { pi: 3.14 } }] },
    ]);
    expect(host.runtime.snapshot()).toMatchObject({ done: 1, failed: 0, pendingResults: 1, running: [] });

    host.socket().receive({ type: 'ack', tasks: [{ tid: 'joba.0', attempt: 1 }] });
    await settle();
    expect(host.runtime.snapshot().pendingResults).toBe(0);
    // with no write coming to take it along, the record goes within a second
    await vi.advanceTimersByTimeAsync(1000);
    expect([...host.store.data.keys()]).toEqual(['identity']);
  });

  it('coalesces outcomes that end together into one results frame', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0), assignment('joba', 1)] });
    host.workers[0]!.emit({ type: 'done', tid: 'joba.0', ok: true, value: 0 });
    host.workers[1]!.emit({ type: 'done', tid: 'joba.1', ok: false, error: { code: 'E_TASK_FAILED', message: 'boom' } });
    await settle();
    await vi.advanceTimersByTimeAsync(10);
    const frames = host.socket().sentOfType('results');
    expect(frames).toHaveLength(1);
    expect(frames[0]!.items.map((o) => [o.tid, o.ok])).toEqual([
      ['joba.0', true],
      ['joba.1', false],
    ]);
    expect(host.runtime.snapshot()).toMatchObject({ done: 1, failed: 1 });
  });

  it('keeps results through an outage and sends them after the next welcome', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0), assignment('joba', 1)] });
    host.socket().close();
    expect(host.runtime.snapshot().connection).toBe('offline');

    host.workers[1]!.emit(taken('joba.1'));
    host.workers[0]!.emit({ type: 'done', tid: 'joba.0', ok: true, value: 'kept' });
    await settle();
    await vi.advanceTimersByTimeAsync(10);
    expect(host.sockets[0]!.sentOfType('results')).toEqual([]);

    await vi.advanceTimersByTimeAsync(250);
    expect(host.sockets).toHaveLength(2);
    host.socket().open();
    expect(host.socket().sent[0]).toMatchObject({
      type: 'hello',
      identity: { hostId: 'h1', secret: 's1' },
      running: [{ tid: 'joba.1', attempt: 1 }],
    });
    host.socket().receive(welcome);
    await settle();
    expect(host.socket().sentOfType('results')).toEqual([
      { type: 'results', items: [{ tid: 'joba.0', attempt: 1, ok: true, value: 'kept' }] },
    ]);
    expect(host.socket().sentOfType('checkpoint')).toEqual([{ type: 'checkpoint', tid: 'joba.1', attempt: 1, checkpoint }]);
  });

  it('sends results left by an earlier visit of this page', async () => {
    const outcome = { tid: 'joba.4', attempt: 2, ok: true, value: 16 };
    const store = memoryStore({ identity: { hostId: 'h1', secret: 's1' }, 'result:joba.4:2': outcome, 'ckpt:joba.9': {} });
    const host = await startHost({ store });
    expect(store.data.has('ckpt:joba.9')).toBe(false);
    expect(host.runtime.snapshot()).toMatchObject({ hostId: 'h1', pendingResults: 1 });
    await host.connect();
    expect(host.socket().sentOfType('results')).toEqual([{ type: 'results', items: [outcome] }]);
  });

  it('reconnects with backoff doubling from 250 ms to 5 s', async () => {
    const host = await startHost();
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      const before = host.sockets.length;
      host.socket().close();
      let waited = 0;
      while (host.sockets.length === before) {
        await vi.advanceTimersByTimeAsync(50);
        waited += 50;
      }
      delays.push(waited);
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
  });

  it('batches progress and caps log lines per task', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });
    host.workers[0]!.emit({ type: 'progress', tid: 'joba.0', fraction: 0.25 });
    host.workers[0]!.emit({ type: 'progress', tid: 'joba.0', fraction: 0.5 });
    for (let i = 0; i < 30; i++) host.workers[0]!.emit({ type: 'log', tid: 'joba.0', line: `line ${i}` });
    await vi.advanceTimersByTimeAsync(500);
    expect(host.socket().sentOfType('progress')).toEqual([{ type: 'progress', items: [{ tid: 'joba.0', attempt: 1, fraction: 0.5 }] }]);
    expect(host.socket().sentOfType('log')).toHaveLength(20);
  });

  it('cancels without reporting and forgets the task', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });
    host.workers[0]!.emit(taken('joba.0'));
    await settle();
    host.socket().receive({ type: 'cancel', tasks: [{ tid: 'joba.0', attempt: 1 }], reason: 'job cancelled' });
    await settle();
    await vi.advanceTimersByTimeAsync(20);
    expect(host.workers[0]!.terminated).toBe(true);
    expect(host.store.data.has('ckpt:joba.0')).toBe(false);
    expect(host.socket().sentOfType('results')).toEqual([]);
    expect(host.runtime.snapshot()).toMatchObject({ running: [], done: 0, failed: 0 });
  });

  it('gives back the tasks asked for that have not started, and says which', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [0, 1, 2].map((i) => assignment('joba', i)) });
    await settle();
    host.socket().receive({ type: 'withdraw', tasks: [0, 2].map((i) => ({ tid: `joba.${i}`, attempt: 1 })) });
    await settle();
    expect(host.socket().sentOfType('withdrawn')).toEqual([{ type: 'withdrawn', tasks: [{ tid: 'joba.2', attempt: 1 }] }]);
    expect(host.runtime.snapshot()).toMatchObject({ running: [{ tid: 'joba.0' }, { tid: 'joba.1' }], queued: 0 });
  });

  it('turns a result that cannot travel as JSON into a failure', async () => {
    const host = await startHost();
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [assignment('joba', 0)] });
    host.workers[0]!.emit({ type: 'done', tid: 'joba.0', ok: true, value: 10n });
    await settle();
    await vi.advanceTimersByTimeAsync(10);
    expect(host.socket().sentOfType('results')[0]!.items[0]).toMatchObject({ ok: false, error: { code: 'E_TASK_FAILED' } });
  });

  it('ignores a coordinator frame it cannot parse', async () => {
    const host = await startHost();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    await host.connect();
    host.socket().receive({ type: 'assign', tasks: [{ tid: 'NOT A TID' }] });
    expect(warn).toHaveBeenCalledOnce();
    expect(host.workers).toEqual([]);
    expect(host.runtime.snapshot().connection).toBe('connected');
    warn.mockRestore();
  });
});
