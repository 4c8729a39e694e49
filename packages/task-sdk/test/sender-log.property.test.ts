import { encodeMessage, unsealMessage } from '@webpvm/vm-protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SenderLog } from '../src/runtime/sender-log.ts';

/*
 * Sender-based message logging as webpvm does it, checked against any order of crashes, coordinator
 * restarts and migrations. A ring of tasks each sends its neighbour a value that depends on all it
 * received, then waits for one from the other neighbour, for a number of steps: a message lost,
 * repeated or taken out of order changes every value after it. The real SenderLog keeps what each
 * task sent; the model around it does what the pages and the coordinator do (docs/architecture.md,
 * "A crash"): checkpoint images with the state, the per-sender seq and the unread messages, kept
 * off the tab; `covered` once one is kept; a crashed task restarted from its image sending its log
 * again (`recovering`) and the others theirs for it (`restarted`); every log sent again when the
 * coordinator restarts (`boot`); receivers ordering by seq and dropping what they had.
 */

const TASKS = 4;
const STEPS = 12;
const tid = (i: number) => `ring.${i}`;
const next = (i: number) => (i + 1) % TASKS;
const mix = (acc: number, value: number) => (Math.imul(acc ^ value, 0x01000193) + 0x9e3779b9) >>> 0;

interface Image {
  step: number;
  sent: number;
  acc: number;
  delivered: number;
  unread: number[];
  log: Uint8Array[];
}

/** What lives on a task's tab and dies with it. */
interface Live extends Omit<Image, 'log' | 'unread'> {
  mailbox: number[];
  /** Messages that came ahead of a gap, by seq (the page's reorder buffer). */
  ahead: Map<number, number>;
  log: SenderLog;
}

const fresh = (): Image => ({ step: 0, sent: 0, acc: 1, delivered: 0, unread: [], log: [] });

class Ring {
  tasks: Live[];
  /** Kept off the tabs: each task's latest checkpoint image. */
  images: Image[] = Array.from({ length: TASKS }, fresh);
  /** Envelopes on their way, in any order. */
  wire: Uint8Array[] = [];

  constructor() {
    this.tasks = this.images.map((image) => this.#restore(image));
  }

  #restore(image: Image): Live {
    const log = new SenderLog(() => undefined, () => {
      throw new Error('the log never drops in this model');
    });
    log.restore(image.log);
    return { step: image.step, sent: image.sent, acc: image.acc, delivered: image.delivered, mailbox: [...image.unread], ahead: new Map(), log };
  }

  /** The task sends, or takes what it waits for; false when it can do neither now. */
  step(i: number): boolean {
    const t = this.tasks[i]!;
    if (t.step === STEPS) return false;
    if (t.sent === t.step) {
      t.sent++;
      const envelope = encodeMessage({ from: tid(i), to: tid(next(i)), tag: 1, seq: t.sent, data: t.acc }) as Uint8Array<ArrayBuffer>;
      t.log.add(tid(next(i)), t.sent, envelope);
      this.wire.push(envelope);
      return true;
    }
    const value = t.mailbox.shift();
    if (value === undefined) return false;
    t.acc = mix(t.acc, value);
    t.step++;
    return true;
  }

  deliver(at: number): void {
    const [envelope] = this.wire.splice(at % this.wire.length, 1);
    const m = unsealMessage(envelope!)!;
    const t = this.tasks[Number(m.to.split('.')[1])]!;
    if (m.seq <= t.delivered) return;
    t.ahead.set(m.seq, m.data as number);
    for (let value = t.ahead.get(t.delivered + 1); value !== undefined; value = t.ahead.get(t.delivered + 1)) {
      t.ahead.delete(++t.delivered);
      t.mailbox.push(value);
    }
  }

  /** A checkpoint kept off the tab; its sender hears what it covers. */
  checkpoint(i: number): void {
    const t = this.tasks[i]!;
    this.images[i] = { step: t.step, sent: t.sent, acc: t.acc, delivered: t.delivered, unread: [...t.mailbox], log: t.log.all() };
    const sender = (i + TASKS - 1) % TASKS;
    if (t.delivered > 0) this.tasks[sender]!.log.covered(tid(i), t.delivered);
  }

  /** A browser holding these tasks dies: what was on its way to them is lost too. */
  crash(lost: number[]): void {
    this.wire = this.wire.filter((e) => !lost.includes(Number(unsealMessage(e)!.to.split('.')[1])));
    for (const i of lost) this.tasks[i] = this.#restore(this.images[i]!);
    for (const i of lost) this.wire.push(...this.tasks[i]!.log.all());
    for (let i = 0; i < TASKS; i++) if (!lost.includes(i)) for (const j of lost) this.wire.push(...this.tasks[i]!.log.for(tid(j)));
  }

  /** The coordinator dies with what it was relaying; every task sends its log again. */
  coordinatorRestart(kept: number): void {
    this.wire = this.wire.slice(0, kept % (this.wire.length + 1));
    for (const t of this.tasks) this.wire.push(...t.log.all());
  }

  /** A move loses nothing: the image carries the whole live state, replay log included. */
  migrate(i: number): void {
    const t = this.tasks[i]!;
    const log = new SenderLog(() => undefined, () => undefined);
    log.restore(t.log.all());
    this.tasks[i] = { ...t, mailbox: [...t.mailbox], ahead: new Map(t.ahead), log };
  }

  /** Runs to the end with no more faults; false when it hangs. */
  finish(): boolean {
    for (let rounds = 0; rounds < 100_000; rounds++) {
      let moved = false;
      for (let i = 0; i < TASKS; i++) while (this.step(i)) moved = true;
      if (this.wire.length) {
        this.deliver(0);
        moved = true;
      }
      if (this.tasks.every((t) => t.step === STEPS)) return true;
      if (!moved) return false;
    }
    return false;
  }
}

type Event =
  | { kind: 'step'; task: number }
  | { kind: 'deliver'; at: number }
  | { kind: 'checkpoint'; task: number }
  | { kind: 'crash'; tasks: number[] }
  | { kind: 'coordinator'; kept: number }
  | { kind: 'migrate'; task: number };

const task = fc.integer({ min: 0, max: TASKS - 1 });
const event: fc.Arbitrary<Event> = fc.oneof(
  { weight: 6, arbitrary: task.map((t) => ({ kind: 'step' as const, task: t })) },
  { weight: 6, arbitrary: fc.nat().map((at) => ({ kind: 'deliver' as const, at })) },
  { weight: 2, arbitrary: task.map((t) => ({ kind: 'checkpoint' as const, task: t })) },
  { weight: 1, arbitrary: fc.uniqueArray(task, { minLength: 1, maxLength: TASKS }).map((tasks) => ({ kind: 'crash' as const, tasks })) },
  { weight: 1, arbitrary: fc.nat().map((kept) => ({ kind: 'coordinator' as const, kept })) },
  { weight: 1, arbitrary: task.map((t) => ({ kind: 'migrate' as const, task: t })) },
);

function play(events: Event[]): Ring {
  const ring = new Ring();
  for (const e of events) {
    if (e.kind === 'step') ring.step(e.task);
    else if (e.kind === 'deliver') {
      if (ring.wire.length) ring.deliver(e.at);
    } else if (e.kind === 'checkpoint') ring.checkpoint(e.task);
    else if (e.kind === 'crash') ring.crash(e.tasks);
    else if (e.kind === 'coordinator') ring.coordinatorRestart(e.kept);
    else ring.migrate(e.task);
  }
  return ring;
}

describe('sender-based message logging', () => {
  const undisturbed = new Ring();
  undisturbed.finish();
  const expected = undisturbed.tasks.map((t) => t.acc);

  it('ends every task with the values of a run without faults, whatever crashes, restarts and moves come in between', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 300 }), (events) => {
        const ring = play(events);
        expect(ring.finish()).toBe(true);
        expect(ring.tasks.map((t) => t.acc)).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps in the logs, once each receiver checkpoints again, only what its kept checkpoint does not cover', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 300 }), (events) => {
        const ring = play(events);
        // A task restarted from a checkpoint logs again what it sends again while it replays: the
        // receiver's next kept checkpoint says what of it is covered.
        for (let i = 0; i < TASKS; i++) ring.checkpoint(i);
        ring.tasks.forEach((t, i) => {
          const receiver = next(i);
          const kept = t.log.for(tid(receiver)).map((e) => unsealMessage(e)!.seq);
          expect(kept.every((seq) => seq > ring.images[receiver]!.delivered)).toBe(true);
        });
      }),
      { numRuns: 500 },
    );
  });

  it('hangs when a log forgets what no kept checkpoint covers: the model sees a lost message', () => {
    const ring = new Ring();
    for (let i = 0; i < TASKS; i++) ring.step(i);
    while (ring.wire.length) ring.deliver(0);
    // `covered` ahead of the image it speaks for (recovery.ts waits for the image to be stored)
    ring.tasks[TASKS - 1]!.log.covered(tid(0), 1);
    ring.crash([0]);
    expect(ring.finish()).toBe(false);
  });
});
