import type { FromSandbox, ToSandbox } from '@webpvm/vm-protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../src/host/clock.ts';
import { SandboxFrames } from '../src/host/sandbox-frames.ts';
import type { TaskWorkerHandle, TaskWorkerListener } from '../src/host/task-worker-handle.ts';

/** The frame's window as the page sees it: what the page posted to it. */
class FrameWindow {
  received: ToSandbox[] = [];
  postMessage(message: ToSandbox): void {
    this.received.push(message);
  }
}

class FakeIframe {
  sandbox = { value: '' };
  allow = '';
  className = '';
  title = '';
  src = '';
  contentWindow = new FrameWindow();
  removed = false;
  remove(): void {
    this.removed = true;
  }
}

const job = (jobId: string) => ({ jobId, programUrl: `/programs/${jobId}.js` });
const types = (frame: FakeIframe) => frame.contentWindow.received.map((m) => m.type);

function setup(program: () => Promise<string> = () => Promise.resolve('export default (ctx, x) => x')) {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
  const iframes: FakeIframe[] = [];
  let onMessage: (event: { source: unknown; data: unknown }) => void = () => {};
  vi.stubGlobal('document', {
    createElement: () => {
      const iframe = new FakeIframe();
      iframes.push(iframe);
      return iframe;
    },
    body: { append: () => undefined },
  });
  vi.stubGlobal('window', { addEventListener: (_type: string, listener: typeof onMessage) => (onMessage = listener) });
  vi.stubGlobal('crossOriginIsolated', true);
  const frames = new SandboxFrames({ clock: systemClock, fetchProgram: program });
  const handles: TaskWorkerHandle[] = [];
  const errors: [string, string][] = [];
  const spawn = (jobId: string) => {
    const listener: TaskWorkerListener = { message: () => undefined, error: (code, message) => errors.push([code, message]), stopped: (at) => errors.push(['stopped', String(at)]) };
    const handle = frames.spawn(job(jobId), listener);
    handles.push(handle);
    return handle;
  };
  const fromFrame = (iframe: FakeIframe, data: FromSandbox) => onMessage({ source: iframe.contentWindow, data });
  /** Time passes with every frame answering its pings. */
  const alive = async (ms: number) => {
    for (let passed = 0; passed < ms; passed += 1000) {
      await vi.advanceTimersByTimeAsync(1000);
      for (const iframe of iframes) fromFrame(iframe, { type: 'pong' });
    }
  };
  /** The program arrives, and the frames at `indices` say they run. */
  const run = async (indices = [0], isolated = true) => {
    await vi.advanceTimersByTimeAsync(0);
    for (const i of indices) fromFrame(iframes[i]!, { type: 'ready', isolated });
  };
  return { frames, iframes, spawn, handles, errors, fromFrame, alive, run };
}

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe('SandboxFrames', () => {
  it('starts one sandboxed frame per job, and sends it the program before anything else once it runs', async () => {
    const t = setup();
    t.spawn('joba');
    t.spawn('joba');
    t.spawn('jobb');
    expect(t.iframes).toHaveLength(2);
    expect(t.iframes[0]).toMatchObject({ sandbox: { value: 'allow-scripts' }, allow: 'cross-origin-isolated', className: 'task-sandbox', src: '/sandbox.html' });
    await vi.advanceTimersByTimeAsync(0);
    // nothing reaches a frame before it says it runs
    expect(types(t.iframes[0]!)).toEqual([]);
    t.fromFrame(t.iframes[0]!, { type: 'ready', isolated: true });
    expect(t.iframes[0]!.contentWindow.received[0]).toEqual({ type: 'program', url: '/programs/joba.js', source: 'export default (ctx, x) => x' });
    expect(t.iframes[0]!.contentWindow.received.slice(1).map((m) => m.type === 'spawn' && m.id)).toEqual([0, 1]);
    // flags go to the frame, for the worker's cell: those of one turn in one message, in order
    t.handles[0]!.cells!.store(3, 2);
    t.handles[1]!.cells!.or(3, 1);
    await Promise.resolve();
    expect(t.iframes[0]!.contentWindow.received.at(-1)).toEqual({
      type: 'flags',
      items: [
        { id: 0, op: 'store', cell: 3, bits: 2 },
        { id: 1, op: 'or', cell: 3, bits: 1 },
      ],
    });
    t.handles[0]!.cells!.or(4, 1);
    await Promise.resolve();
    expect(t.iframes[0]!.contentWindow.received.at(-1)).toEqual({ type: 'flags', items: [{ id: 0, op: 'or', cell: 4, bits: 1 }] });
  });

  it('hands a worker error or stop to that worker alone, and ignores what does not come from a frame of its own', async () => {
    const t = setup();
    t.spawn('joba');
    t.spawn('joba');
    await t.run();
    t.fromFrame(t.iframes[0]!, { type: 'worker-error', id: 1, message: 'boom' });
    t.fromFrame(new FakeIframe(), { type: 'worker-error', id: 0, message: 'forged' });
    t.fromFrame(t.iframes[0]!, { type: 'worker-error', id: 0, extra: 'x' } as unknown as FromSandbox);
    // when the frame ended a worker, in this page's clock (never later than now)
    t.fromFrame(t.iframes[0]!, { type: 'worker-stopped', id: 0, at: performance.timeOrigin + performance.now() + 60_000 });
    expect(t.errors).toEqual([
      ['E_TASK_FAILED', 'boom'],
      ['stopped', String(performance.now())],
    ]);
  });

  it('fails every worker of a frame silent for 10 s (its process died), and pings those that answer', async () => {
    const t = setup();
    t.spawn('joba');
    t.spawn('jobb');
    await t.run([0, 1]);
    for (let s = 0; s < 12; s++) {
      await vi.advanceTimersByTimeAsync(1000);
      t.fromFrame(t.iframes[1]!, { type: 'pong' });
    }
    expect(types(t.iframes[1]!).filter((type) => type === 'ping').length).toBeGreaterThanOrEqual(11);
    expect(t.errors).toEqual([['E_TASK_FAILED', "the job's task sandbox stopped answering for 10 s: its process crashed (out of memory?)"]]);
    expect([t.iframes[0]!.removed, t.iframes[1]!.removed]).toEqual([true, false]);
    // the job's next worker gets a frame of its own
    t.spawn('joba');
    expect(t.iframes).toHaveLength(3);
  });

  it('fails its workers as the host’s fault when the frame never runs, or the program cannot be fetched', async () => {
    const t = setup(() => Promise.reject(new Error('offline')));
    t.spawn('joba');
    await t.run();
    expect(t.errors).toEqual([['E_HOST_FAULT', 'the program cannot be fetched: Error: offline']]);
    expect(t.iframes[0]!.removed).toBe(true);

    const late = setup();
    late.spawn('joba');
    await vi.advanceTimersByTimeAsync(20_000);
    expect(late.errors).toEqual([['E_HOST_FAULT', 'the task sandbox did not start within 20 s']]);
    expect(late.iframes[0]!.removed).toBe(true);
  });

  it('keeps a frame 30 s after its last worker ends, for the job’s next tasks, then removes it', async () => {
    const t = setup();
    const first = t.spawn('joba');
    await t.run();
    first.terminate();
    expect(t.iframes[0]!.contentWindow.received.at(-1)).toEqual({ type: 'terminate', id: 0 });
    await t.alive(20_000);
    const second = t.spawn('joba');
    expect(t.iframes).toHaveLength(1);
    second.terminate();
    await t.alive(29_000);
    expect(t.iframes[0]!.removed).toBe(false);
    await t.alive(1_000);
    expect(t.iframes[0]!.removed).toBe(true);
    expect(t.errors).toEqual([]);
  });

  it('shares no cells once the frame says it is not cross-origin isolated: freezes then go by message', async () => {
    const t = setup();
    const handle = t.spawn('joba');
    expect(handle.cells).not.toBeNull();
    await t.run([0], false);
    expect(handle.cells).toBeNull();
  });

  it('makes links in the frame of their job, passes their signals both ways, and has lanes made there for the worker', async () => {
    const t = setup();
    const handle = t.spawn('joba');
    await t.run();
    const ice = { iceServers: [], iceTransportPolicy: 'all' as const };
    const heard: unknown[] = [];
    const events = { signal: (signal: unknown) => heard.push(signal), unlinked: () => heard.push('unlinked') };
    expect(t.frames.links.open('jobz', true, ice, events)).toBeNull();
    const link = t.frames.links.open('joba', true, ice, events)!;
    const offer = { description: { type: 'offer' as const, sdp: 'v=0' } };
    t.fromFrame(t.iframes[0]!, { type: 'signal', link, signal: offer });
    // a frame speaks only for its own links
    t.fromFrame(t.iframes[0]!, { type: 'signal', link: link + 1, signal: offer });
    expect(heard).toEqual([offer]);
    const answer = { description: { type: 'answer' as const, sdp: 'v=0' } };
    t.frames.links.signal(link, answer);

    const made: boolean[] = [];
    handle.lane(link, 2, { type: 'lane-out', tid: 'joba.0', to: 'joba.1' }, (ok) => made.push(ok));
    expect(t.iframes[0]!.contentWindow.received.slice(-3)).toEqual([
      { type: 'link', link, offer: true, ice },
      { type: 'signal', link, signal: answer },
      { type: 'lane', link, stream: 2, id: 0, gift: { type: 'lane-out', tid: 'joba.0', to: 'joba.1' } },
    ]);
    t.fromFrame(t.iframes[0]!, { type: 'lane-made', link, stream: 2, made: true });
    expect(made).toEqual([true]);

    // a worker of another job's frame cannot have this link's lanes
    const other = t.spawn('jobb');
    other.lane(link, 4, { type: 'lane-in', tid: 'jobb.0', from: 'jobb.1' }, (ok) => made.push(ok));
    expect(made).toEqual([true, false]);

    t.fromFrame(t.iframes[0]!, { type: 'unlinked', link });
    expect(heard).toEqual([offer, 'unlinked']);
    handle.lane(link, 6, { type: 'lane-out', tid: 'joba.0', to: 'joba.2' }, (ok) => made.push(ok));
    expect(made).toEqual([true, false, false]);
  });

  it('closes the links of a frame that goes, and fails the lanes it was still making', async () => {
    const t = setup();
    const handle = t.spawn('joba');
    await t.run();
    const heard: string[] = [];
    const link = t.frames.links.open('joba', false, { iceServers: [], iceTransportPolicy: 'relay' }, { signal: () => undefined, unlinked: () => heard.push('unlinked') })!;
    const made: boolean[] = [];
    handle.lane(link, 3, { type: 'lane-in', tid: 'joba.0', from: 'joba.1' }, (ok) => made.push(ok));
    handle.terminate();
    await t.alive(30_000);
    expect(t.iframes[0]!.removed).toBe(true);
    expect(heard).toEqual(['unlinked']);
    expect(made).toEqual([false]);
    // closing a link the page no longer has is nothing
    t.frames.links.close(link);
  });
});
