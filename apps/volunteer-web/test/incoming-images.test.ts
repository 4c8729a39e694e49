import { LIMITS, encodeImage, encodeValue, imageParts, sealMessage, type HostMessage, type TaskAssignment, type TaskOutcome } from '@webpvm/vm-protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IncomingImages } from '../src/host/incoming-images.ts';
import { assignment } from './support/assignments.ts';
import { partOf } from './support/envelopes.ts';

const bytes = encodeImage({
  tid: 'joba.0',
  log: [],
  checkpoint: { state: encodeValue({ step: 4 }), rng: [1, 2, 3, 4], sent: [], requests: 0 },
  delivered: new Map([['joba.5', 1]]),
  mailbox: [sealMessage({ from: 'joba.5', to: 'joba.0', tag: 1, seq: 1, data: 'unread' })],
  pending: [],
});
const task = assignment('joba', 0, { attempt: 2, imageBytes: bytes.byteLength });

function setup() {
  const sent: HostMessage[] = [];
  const ready: TaskAssignment[] = [];
  const failed: TaskOutcome[] = [];
  const incoming = new IncomingImages({
    send: (frame) => {
      if (!(frame instanceof Uint8Array)) sent.push(frame);
    },
    ready: (t) => ready.push(t),
    fail: (o) => failed.push(o),
  });
  const receive = (image: Uint8Array, tid = 'joba.0', attempt = 2, fromPeer: string | null = null) =>
    imageParts(tid, attempt, image).map((frame) => {
      const part = partOf(frame)!;
      return incoming.part(part.header, part.piece, fromPeer);
    });
  return { incoming, sent, ready, failed, receive };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('IncomingImages', () => {
  it('hands over an image whose parts came first, once, and the task says it runs again when it starts', () => {
    const t = setup();
    t.receive(bytes);
    expect(t.ready).toEqual([]);
    const image = t.incoming.take(task);
    expect(image).toMatchObject({ tid: 'joba.0', checkpoint: { rng: [1, 2, 3, 4] }, delivered: new Map([['joba.5', 1]]) });
    expect(image!.mailbox.map((m) => m.seq)).toEqual([1]);
    t.incoming.started({ tid: 'joba.0', attempt: 2 });
    t.incoming.started({ tid: 'joba.0', attempt: 2 });
    expect(t.sent).toEqual([{ type: 'resumed', tid: 'joba.0', attempt: 2 }]);
  });

  it('refuses an image that is another task’s: the task fails and restarts from its checkpoint elsewhere', () => {
    const t = setup();
    const others = encodeImage({ tid: 'joba.9', checkpoint: null, delivered: new Map(), mailbox: [], pending: [], log: [] });
    t.receive(others);
    const theirs = assignment('joba', 0, { attempt: 2, imageBytes: others.byteLength });
    expect(t.incoming.take(theirs)).toBeNull();
    expect(t.failed).toEqual([{ tid: 'joba.0', attempt: 2, ok: false, error: { code: 'E_HOST_FAULT', message: "its image is joba.9's" } }]);
  });

  it('takes pieces over a data channel only from the peer the coordinator announced for that attempt', () => {
    const t = setup();
    expect(t.receive(bytes, 'joba.0', 2, 'peer-x')).toEqual([false]);
    t.incoming.expect({ tid: 'joba.0', attempt: 2, peerId: 'peer-a' });
    expect(t.receive(bytes, 'joba.0', 2, 'peer-x')).toEqual([false]);
    expect(t.receive(bytes, 'joba.0', 3, 'peer-a')).toEqual([false]);
    expect(t.incoming.take(task)).toBeNull();
    expect(t.receive(bytes, 'joba.0', 2, 'peer-a')).toEqual([true]);
    expect(t.ready).toEqual([task]);
    expect(t.incoming.take(task)).toMatchObject({ tid: 'joba.0' });
    // the announcement is spent with the image: the same pieces again are dropped
    expect(t.receive(bytes, 'joba.0', 2, 'peer-a')).toEqual([false]);
  });

  it('waits 5 s for an image still on its way, asks for it through the coordinator, then gives up 5 s later', () => {
    const t = setup();
    expect(t.incoming.take(task)).toBeNull();
    expect(t.incoming.waitsFor('joba.0')).toBe(true);
    // the same assignment again (the image's last part re-assigns it) does not wait twice
    expect(t.incoming.take(task)).toBeNull();
    vi.advanceTimersByTime(4_999);
    expect(t.sent).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(t.sent).toEqual([{ type: 'image-missing', tid: 'joba.0', attempt: 2 }]);
    vi.advanceTimersByTime(4_999);
    expect(t.failed).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(t.failed).toEqual([{ tid: 'joba.0', attempt: 2, ok: false, error: { code: 'E_HOST_FAULT', message: 'its image did not arrive' } }]);
    expect(t.incoming.waitsFor('joba.0')).toBe(false);
    expect(t.sent).toHaveLength(1);
  });

  it('assigns a waiting task again when the last part of its image comes, and stops waiting once it takes it', () => {
    const t = setup();
    t.incoming.take(task);
    vi.advanceTimersByTime(5_000);
    t.receive(bytes);
    expect(t.ready).toEqual([task]);
    expect(t.incoming.take(task)?.tid).toBe('joba.0');
    expect(t.incoming.waitsFor('joba.0')).toBe(false);
    vi.advanceTimersByTime(60_000);
    expect(t.sent).toEqual([{ type: 'image-missing', tid: 'joba.0', attempt: 2 }]);
    expect(t.failed).toEqual([]);
  });

  it('fails a task whose image is not the size assigned, or does not decode', () => {
    const t = setup();
    t.receive(bytes);
    expect(t.incoming.take({ ...task, imageBytes: bytes.byteLength + 1 })).toBeNull();
    t.receive(new Uint8Array([1, 2, 3]), 'joba.1');
    expect(t.incoming.take(assignment('joba', 1, { attempt: 2, imageBytes: 3 }))).toBeNull();
    expect(t.failed).toEqual([
      { tid: 'joba.0', attempt: 2, ok: false, error: { code: 'E_HOST_FAULT', message: `its image is ${bytes.byteLength} bytes, not ${bytes.byteLength + 1}` } },
      { tid: 'joba.1', attempt: 2, ok: false, error: { code: 'E_HOST_FAULT', message: expect.stringMatching(/^task image: /) } },
    ]);
    t.incoming.started({ tid: 'joba.0', attempt: 2 });
    expect(t.sent).toEqual([]);
  });

  it('waits no more for a cancelled assignment, and a task forgotten before starting (left, cancelled) says nothing', () => {
    const t = setup();
    t.incoming.take(task);
    t.incoming.cancel([{ tid: 'joba.0', attempt: 2 }]);
    expect(t.incoming.waitsFor('joba.0')).toBe(false);
    vi.advanceTimersByTime(20_000);
    expect(t.sent).toEqual([]);
    expect(t.failed).toEqual([]);

    t.receive(bytes);
    t.incoming.take(task);
    t.incoming.forget('joba.0');
    // a later, fresh attempt of the tid is no migration's end
    t.incoming.started({ tid: 'joba.0', attempt: 3 });
    expect(t.sent).toEqual([]);
  });

  it('drops the parts of a task that is gone, and warns of a part that does not fit', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const t = setup();
    t.receive(bytes);
    t.incoming.forget('joba.0');
    expect(t.incoming.take(task)).toBeNull();
    const [first] = imageParts('joba.2', 2, new Uint8Array(LIMITS.imagePartBytes + 1));
    const part = partOf(first!)!;
    t.incoming.part(part.header, part.piece, null);
    t.incoming.part({ ...part.header, index: 1, count: 3 }, part.piece, null);
    expect(warn).toHaveBeenCalledOnce();
    warn.mockRestore();
  });
});
