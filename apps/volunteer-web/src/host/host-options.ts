import { LIMITS } from '@webpvm/vm-protocol';

export const POLICIES = ['idle', 'hidden', 'always'] as const;
export type ReclaimPolicy = (typeof POLICIES)[number];

export interface HostOptions {
  slots: number;
  policy: ReclaimPolicy;
  /** False with `?p2p=off`: no data channels, every message between hosts goes through the relay. */
  p2p: boolean;
  /** How long the person must leave the tab alone (`?idleMs=`) before it offers its slots again. */
  idleMs: number;
  /**
   * False with `?replayLog=off`, for measuring what migration support costs: no replay log is
   * kept, so a task whose worker must be terminated while moving loses the messages it received
   * since its last checkpoint.
   */
  replayLog: boolean;
  /**
   * False with `?senderLog=off`, for measuring what crash recovery costs: task workers keep no
   * sender log, so a task whose tab crashes cannot get again what was sent to it since its
   * checkpoint kept off the tab.
   */
  senderLog: boolean;
  /** `?battery=N`: below N % on a discharging battery the tab computes nothing; 0 (the default) ignores the battery. */
  minBattery: number;
}

const DEFAULT_IDLE_MS = 30_000;
const MAX_IDLE_MS = 24 * 3600_000;

/** Reads `?slots=N&policy=…&idleMs=N&battery=N&p2p=off&replayLog=off&senderLog=off` from the page URL; anything unreadable falls back to the default. */
export function parseHostOptions(search: string, hardwareConcurrency: number | undefined): HostOptions {
  const params = new URLSearchParams(search);
  const defaultSlots = clampSlots((hardwareConcurrency || 2) - 1);
  const requested = Number(params.get('slots'));
  const slots = params.has('slots') && Number.isInteger(requested) && requested >= 1 ? clampSlots(requested) : defaultSlots;
  const policyParam = params.get('policy');
  const policy = POLICIES.find((p) => p === policyParam) ?? 'idle';
  const idle = Number(params.get('idleMs'));
  const idleMs = params.has('idleMs') && Number.isInteger(idle) && idle >= 0 ? Math.min(idle, MAX_IDLE_MS) : DEFAULT_IDLE_MS;
  const battery = Number(params.get('battery'));
  const minBattery = params.has('battery') && battery >= 0 && battery <= 100 ? battery / 100 : 0;
  return { slots, policy, p2p: params.get('p2p') !== 'off', idleMs, replayLog: params.get('replayLog') !== 'off', senderLog: params.get('senderLog') !== 'off', minBattery };
}

function clampSlots(n: number): number {
  return Math.min(LIMITS.slotsPerHost, Math.max(1, n));
}
