import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ReclaimPolicy } from '../src/host/host-options.ts';
import { ReclaimMonitor } from '../src/host/reclaim-monitor.ts';

const IDLE_MS = 1_000;
const INPUTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart'] as const;
const POLICIES: ReclaimPolicy[] = ['idle', 'hidden', 'always'];
/** The page is going: where each signal comes from. */
const URGENT = [
  ['pagehide', 'window'],
  ['beforeunload', 'window'],
  ['freeze', 'document'],
] as const;

class FakeDocument extends EventTarget {
  visibilityState: DocumentVisibilityState = 'visible';
}

/** A monitor on a fake page whose clock is vitest's fake one; `events` lists what it reported. */
function setup(policy: ReclaimPolicy, { visible = true, start = true } = {}) {
  const window = new EventTarget();
  const document = new FakeDocument();
  document.visibilityState = visible ? 'visible' : 'hidden';
  const events: string[] = [];
  const monitor = new ReclaimMonitor(
    policy,
    IDLE_MS,
    { window, document, now: () => Date.now() },
    {
      reclaim: (reason, urgent) => events.push(`reclaim ${reason}${urgent ? ' urgent' : ''}`),
      available: () => events.push('available'),
    },
  );
  if (start) monitor.start();
  const setVisibility = (state: DocumentVisibilityState) => {
    document.visibilityState = state;
    document.dispatchEvent(new Event('visibilitychange'));
  };
  return {
    monitor,
    window,
    document,
    events,
    show: () => setVisibility('visible'),
    hide: () => setVisibility('hidden'),
    input: (type: string = 'pointerdown') => window.dispatchEvent(new Event(type)),
    urgent: (type: (typeof URGENT)[number][0]) => {
      const target = URGENT.find(([t]) => t === type)![1] === 'window' ? window : document;
      target.dispatchEvent(new Event(type));
    },
    /** Takes what was reported since the last call. */
    drain: () => events.splice(0),
  };
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(1_000_000);
});
afterEach(() => vi.useRealTimers());

describe('ReclaimMonitor, hidden policy', () => {
  it('starts reclaimed on a visible tab', () => {
    const t = setup('hidden');
    expect(t.events).toEqual(['reclaim hidden']);
    expect([t.monitor.reclaimed, t.monitor.reason]).toEqual([true, 'hidden']);
  });

  it('starts available on a hidden tab', () => {
    const t = setup('hidden', { visible: false });
    vi.advanceTimersByTime(10 * IDLE_MS);
    expect(t.events).toEqual([]);
    expect([t.monitor.reclaimed, t.monitor.reason]).toEqual([false, null]);
  });

  it('reclaims whenever the tab shows and is available again as soon as it hides', () => {
    const t = setup('hidden', { visible: false });
    t.show();
    expect(t.drain()).toEqual(['reclaim hidden']);
    t.hide();
    expect(t.drain()).toEqual(['available']);
    expect([t.monitor.reclaimed, t.monitor.reason]).toEqual([false, null]);
    t.show();
    expect(t.drain()).toEqual(['reclaim hidden']);
  });

  it('stays reclaimed on a visible tab however long it is left alone, and ignores input', () => {
    const t = setup('hidden');
    t.drain();
    vi.advanceTimersByTime(10 * IDLE_MS);
    for (const type of INPUTS) t.input(type);
    vi.advanceTimersByTime(10 * IDLE_MS);
    expect(t.events).toEqual([]);
    expect([t.monitor.reclaimed, t.monitor.reason]).toEqual([true, 'hidden']);
  });
});

describe('ReclaimMonitor, idle policy', () => {
  it('computes on a visible tab nobody touches', () => {
    const t = setup('idle');
    vi.advanceTimersByTime(10 * IDLE_MS);
    expect(t.events).toEqual([]);
    expect(t.monitor.reclaimed).toBe(false);
  });

  it.each(INPUTS)('reclaims on %s on a visible tab', (type) => {
    const t = setup('idle');
    t.input(type);
    expect(t.events).toEqual(['reclaim input']);
    expect([t.monitor.reclaimed, t.monitor.reason]).toEqual([true, 'input']);
  });

  it('ignores input on a hidden tab', () => {
    const t = setup('idle', { visible: false });
    for (const type of INPUTS) t.input(type);
    expect(t.events).toEqual([]);
    expect(t.monitor.reclaimed).toBe(false);
  });

  it('is available again only once the tab was left alone for idleMs', () => {
    const t = setup('idle');
    t.input();
    t.drain();
    vi.advanceTimersByTime(IDLE_MS - 1);
    expect(t.events).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(t.drain()).toEqual(['available']);
    expect([t.monitor.reclaimed, t.monitor.reason]).toEqual([false, null]);
  });

  it('waits idleMs from the latest input, reporting the reclaim once', () => {
    const t = setup('idle');
    t.input('keydown');
    vi.advanceTimersByTime(600);
    t.input('wheel');
    vi.advanceTimersByTime(600);
    t.input('pointermove');
    vi.advanceTimersByTime(IDLE_MS - 1);
    expect(t.events).toEqual(['reclaim input']);
    vi.advanceTimersByTime(1);
    expect(t.events).toEqual(['reclaim input', 'available']);
  });

  it('is available at once when the tab hides, and only once', () => {
    const t = setup('idle');
    t.input();
    vi.advanceTimersByTime(100);
    t.hide();
    expect(t.events).toEqual(['reclaim input', 'available']);
    vi.advanceTimersByTime(10 * IDLE_MS);
    expect(t.events).toEqual(['reclaim input', 'available']);
  });

  it('reclaims while Idle Detection reports the machine in use, even on a hidden tab', () => {
    const t = setup('idle', { visible: false });
    t.monitor.machineActivity(true);
    expect(t.drain()).toEqual(['reclaim idle-detector']);
    expect([t.monitor.reclaimed, t.monitor.reason]).toEqual([true, 'idle-detector']);
    // the machine stays in use past idleMs: no offer in between
    vi.advanceTimersByTime(10 * IDLE_MS);
    t.hide();
    expect(t.events).toEqual([]);
    t.monitor.machineActivity(false);
    expect(t.drain()).toEqual(['available']);
  });

  it('after Idle Detection releases, still waits idleMs from the latest input on a visible tab', () => {
    const t = setup('idle');
    t.input();
    vi.advanceTimersByTime(200);
    t.monitor.machineActivity(true);
    t.monitor.machineActivity(false);
    expect(t.events).toEqual(['reclaim input']);
    vi.advanceTimersByTime(10 * IDLE_MS);
    expect(t.events).toEqual(['reclaim input', 'available']);
  });
});

describe('ReclaimMonitor, always policy', () => {
  it('computes whatever the visibility, input or machine activity', () => {
    const t = setup('always');
    for (const type of INPUTS) t.input(type);
    t.hide();
    t.show();
    t.monitor.machineActivity(true);
    vi.advanceTimersByTime(10 * IDLE_MS);
    expect(t.events).toEqual([]);
    expect(t.monitor.reclaimed).toBe(false);
  });
});

describe('ReclaimMonitor, Idle Detection under other policies', () => {
  it.each(['hidden', 'always'] as const)('ignores machine activity under %s', (policy) => {
    const t = setup(policy, { visible: false });
    t.monitor.machineActivity(true);
    expect(t.events).toEqual([]);
    expect(t.monitor.reclaimed).toBe(false);
  });
});

describe('ReclaimMonitor, the page going', () => {
  for (const policy of POLICIES) {
    for (const visible of [true, false]) {
      it.each(URGENT.map(([type]) => type))(`reclaims urgently on %s under ${policy} (${visible ? 'visible' : 'hidden'})`, (type) => {
        const t = setup(policy, { visible });
        t.drain();
        t.urgent(type);
        expect(t.events).toEqual([`reclaim ${type} urgent`]);
        expect([t.monitor.reclaimed, t.monitor.reason]).toEqual([true, type]);
      });
    }
  }

  it('reports an urgent reclaim even when already reclaimed', () => {
    const t = setup('idle');
    t.input();
    t.urgent('freeze');
    t.urgent('pagehide');
    expect(t.events).toEqual(['reclaim input', 'reclaim freeze urgent', 'reclaim pagehide urgent']);
    expect(t.monitor.reason).toBe('pagehide');

    const hidden = setup('hidden');
    hidden.urgent('beforeunload');
    expect(hidden.events).toEqual(['reclaim hidden', 'reclaim beforeunload urgent']);
  });

  it('offers the slots again when the page comes back from the back/forward cache or resumes', () => {
    const t = setup('always');
    t.urgent('pagehide');
    t.window.dispatchEvent(Object.assign(new Event('pageshow'), { persisted: false }));
    expect(t.drain()).toEqual(['reclaim pagehide urgent']);
    t.window.dispatchEvent(Object.assign(new Event('pageshow'), { persisted: true }));
    expect(t.drain()).toEqual(['available']);
    t.urgent('freeze');
    t.document.dispatchEvent(new Event('resume'));
    expect(t.drain()).toEqual(['reclaim freeze urgent', 'available']);
  });

  it('does not offer the slots of a visible tab under hidden when the page comes back', () => {
    const t = setup('hidden');
    t.urgent('pagehide');
    t.window.dispatchEvent(Object.assign(new Event('pageshow'), { persisted: true }));
    vi.advanceTimersByTime(10 * IDLE_MS);
    expect(t.events).toEqual(['reclaim hidden', 'reclaim pagehide urgent']);
    expect(t.monitor.reclaimed).toBe(true);
  });
});

describe('ReclaimMonitor.stop', () => {
  it('removes every listener it added and reports nothing more', () => {
    const t = setup('idle', { start: false });
    const targets = [t.window, t.document];
    const added = targets.map((target) => vi.spyOn(target, 'addEventListener'));
    const removed = targets.map((target) => vi.spyOn(target, 'removeEventListener'));
    t.monitor.start();
    t.input();
    t.monitor.stop();
    targets.forEach((_, i) => {
      expect(added[i]!.mock.calls.length).toBeGreaterThan(0);
      const pairs = (calls: unknown[][]) => calls.map(([type, listener]) => [type, listener]);
      expect(pairs(removed[i]!.mock.calls)).toEqual(expect.arrayContaining(pairs(added[i]!.mock.calls)));
      expect(removed[i]!.mock.calls).toHaveLength(added[i]!.mock.calls.length);
    });
    t.drain();
    // nothing reaches it any more, not even the idle timer armed by the input above
    vi.advanceTimersByTime(10 * IDLE_MS);
    for (const type of INPUTS) t.input(type);
    t.hide();
    t.show();
    for (const [type] of URGENT) t.urgent(type);
    t.window.dispatchEvent(Object.assign(new Event('pageshow'), { persisted: true }));
    t.document.dispatchEvent(new Event('resume'));
    vi.advanceTimersByTime(10 * IDLE_MS);
    expect(t.events).toEqual([]);
  });
});

describe('ReclaimMonitor on a battery', () => {
  it.each(POLICIES)('under %s, gives the machine back on a discharging battery below the level, and takes it again once charging', (policy) => {
    const t = setup(policy, { visible: false });
    t.drain();
    t.monitor.battery(0.5, false, 0.2);
    expect(t.drain()).toEqual([]);
    t.monitor.battery(0.19, false, 0.2);
    expect(t.drain()).toEqual(['reclaim battery']);
    // hidden and left alone, but still on a low battery: nothing to offer
    vi.advanceTimersByTime(IDLE_MS * 3);
    t.hide();
    expect(t.drain()).toEqual([]);
    t.monitor.battery(0.19, true, 0.2);
    expect(t.drain()).toEqual(['available']);
  });
});

