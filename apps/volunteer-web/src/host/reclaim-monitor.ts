import type { MigrationReason } from '@webpvm/vm-protocol';
import type { ReclaimPolicy } from './host-options.ts';

type Listen = Pick<EventTarget, 'addEventListener' | 'removeEventListener'>;

export interface ReclaimEnvironment {
  window: Listen;
  document: Listen & { readonly visibilityState: DocumentVisibilityState };
  now(): number;
}

export interface ReclaimEvents {
  /** The person is back (or the page is going): its tasks must leave; `urgent` leaves no time to freeze. */
  reclaim(reason: MigrationReason, urgent: boolean): void;
  /** The machine is free again: the host may offer its slots. */
  available(): void;
}

/** Pointer, key, wheel and touch input on a visible tab is use of it. */
const INPUT_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart'] as const;

/**
 * Watches the signals that say whether the person at this machine wants it back, by policy
 * (docs/architecture.md, "Hosts and reclaim"): `hidden` computes only while the tab is hidden;
 * `idle` also while it is visible and left alone for `idleMs`; `always` only stops when the page
 * goes. `pagehide`, `freeze` and `beforeunload` reclaim under every policy, urgently.
 */
export class ReclaimMonitor {
  #policy: ReclaimPolicy;
  #idleMs: number;
  #env: ReclaimEnvironment;
  #events: ReclaimEvents;
  #reclaimed = false;
  #reason: MigrationReason | null = null;
  #lastInput = -Infinity;
  #idleTimer: ReturnType<typeof setTimeout> | null = null;
  #machineActive = false;
  #batteryLow = false;
  #unlisten: (() => void)[] = [];

  constructor(policy: ReclaimPolicy, idleMs: number, env: ReclaimEnvironment, events: ReclaimEvents) {
    this.#policy = policy;
    this.#idleMs = idleMs;
    this.#env = env;
    this.#events = events;
  }

  /** Whether the host must not compute now, and why. */
  get reclaimed(): boolean {
    return this.#reclaimed;
  }

  get reason(): MigrationReason | null {
    return this.#reason;
  }

  /** Starts listening; a visible tab under `hidden` starts reclaimed. */
  start(): void {
    const { window, document } = this.#env;
    this.#listen(document, 'visibilitychange', () => this.#onVisibility());
    for (const type of INPUT_EVENTS) this.#listen(window, type, () => this.#onInput());
    this.#listen(window, 'pagehide', () => this.#reclaim('pagehide', true));
    this.#listen(window, 'beforeunload', () => this.#reclaim('beforeunload', true));
    this.#listen(document, 'freeze', () => this.#reclaim('freeze', true));
    this.#listen(window, 'pageshow', (event) => {
      if ((event as PageTransitionEvent).persisted) this.#reconsider();
    });
    this.#listen(document, 'resume', () => this.#reconsider());
    if (this.#policy === 'hidden' && this.#visible()) this.#reclaim('hidden', false);
  }

  stop(): void {
    for (const unlisten of this.#unlisten) unlisten();
    this.#unlisten = [];
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  /**
   * The Idle Detection API's view of the whole machine (where the person granted it): someone
   * active anywhere on it reclaims under `idle`, even with this tab hidden.
   */
  machineActivity(active: boolean): void {
    if (this.#policy !== 'idle') return;
    this.#machineActive = active;
    if (active) this.#reclaim('idle-detector', false);
    else this.#reconsider();
  }

  /**
   * The Battery Status API's view: a laptop running on a battery below `minLevel` (0 to 1) is
   * left to its person under every policy, until it charges or is above the level again.
   */
  battery(level: number, charging: boolean, minLevel: number): void {
    this.#batteryLow = !charging && level < minLevel;
    if (this.#batteryLow) this.#reclaim('battery', false);
    else this.#reconsider();
  }

  #listen(target: Listen, type: string, listener: (event: Event) => void): void {
    target.addEventListener(type, listener);
    this.#unlisten.push(() => target.removeEventListener(type, listener));
  }

  #visible(): boolean {
    return this.#env.document.visibilityState === 'visible';
  }

  #onVisibility(): void {
    if (this.#visible()) {
      if (this.#policy === 'hidden') this.#reclaim('hidden', false);
      return;
    }
    this.#reconsider();
  }

  #onInput(): void {
    if (this.#policy !== 'idle' || !this.#visible()) return;
    this.#lastInput = this.#env.now();
    this.#reclaim('input', false);
  }

  #reclaim(reason: MigrationReason, urgent: boolean): void {
    // Whatever the reason, the slots are offered again once the machine has been left alone for idleMs.
    this.#armIdleTimer();
    if (this.#reclaimed && !urgent) return;
    this.#reclaimed = true;
    this.#reason = reason;
    this.#events.reclaim(reason, urgent);
  }

  #armIdleTimer(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      this.#reconsider();
    }, this.#idleMs);
  }

  /** Offers the slots again if nothing holds the machine back any more. */
  #reconsider(): void {
    if (!this.#reclaimed || this.#busy()) return;
    this.#reclaimed = false;
    this.#reason = null;
    this.#events.available();
  }

  #busy(): boolean {
    if (this.#machineActive || this.#batteryLow) return true;
    if (!this.#visible()) return false;
    switch (this.#policy) {
      case 'hidden':
        return true;
      case 'idle': {
        const quiet = this.#env.now() - this.#lastInput;
        if (quiet >= this.#idleMs) return false;
        this.#idleTimer ??= setTimeout(() => {
          this.#idleTimer = null;
          this.#reconsider();
        }, this.#idleMs - quiet);
        return true;
      }
      case 'always':
        return false;
    }
  }
}
