import { Reassembler, frameAt, frameCount, type Frame, type FrameKind } from './channel-frames.ts';
import type { DataLink } from './data-link.ts';
import type { LaneCarrier } from './lanes.ts';
import { type Clock, type Timer, systemClock } from '../clock.ts';

/** The part of an RTCDataChannel a channel writes to. */
export interface DataChannelLike {
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  send(data: Uint8Array<ArrayBuffer>): void;
  addEventListener(type: 'bufferedamountlow' | 'close', listener: () => void): void;
}

export interface ConnectionEvents {
  open(): void;
  close(): void;
  data(data: unknown): void;
  iceState(state: string): void;
}

/** What a channel needs of one PeerJS DataConnection (peerjs-peer.ts adapts the real one). */
export interface ConnectionLike {
  readonly remotePeerId: string;
  readonly serialization: string;
  /** The RTCDataChannel under the connection; there once the connection opened. */
  dataChannel(): DataChannelLike | null;
  listen(events: ConnectionEvents): void;
  close(): void;
}

export interface ChannelEvents {
  open(channel: PeerChannel): void;
  frame(channel: PeerChannel, frame: Frame): void;
  /** Closed from either side, failed, or never opened: called once. */
  broken(channel: PeerChannel): void;
}

/** Writing pauses while this much is buffered in the channel, and resumes when it drains to LOW_WATER. */
const HIGH_WATER = 4 * 1024 * 1024;
const LOW_WATER = 1024 * 1024;
export const OPEN_TIMEOUT_MS = 3000;
const BROKEN_ICE_STATES = new Set(['failed', 'disconnected', 'closed']);

interface Outgoing {
  kind: FrameKind;
  payload: Uint8Array;
  stream: number;
  count: number;
  next: number;
}

/**
 * One data channel to another host. It frames and chunks payloads (channel-frames.ts) and paces
 * them itself on `bufferedAmount`, writing to the RTCDataChannel directly: PeerJS's own queue
 * retries on a 50 ms timer that a hidden tab slows to a second. It reports a break however it
 * shows — PeerJS `close` often never fires when the other tab just goes away.
 */
export class PeerChannel implements LaneCarrier {
  readonly remotePeerId: string;
  /** Opened by this page (rather than accepted), to settle two connections opened at once. */
  readonly outgoing: boolean;
  lastUsed: number;
  #conn: ConnectionLike;
  #events: ChannelEvents;
  #state: 'opening' | 'open' | 'closed' = 'opening';
  #channel: DataChannelLike | null = null;
  #queue: Outgoing[] = [];
  #nextStream = 0;
  #reassembler = new Reassembler();
  #openTimer: Timer | null;
  #clock: Clock;

  constructor(conn: ConnectionLike, outgoing: boolean, events: ChannelEvents, now: number, openTimeoutMs = OPEN_TIMEOUT_MS, clock: Clock = systemClock) {
    this.#clock = clock;
    this.remotePeerId = conn.remotePeerId;
    this.outgoing = outgoing;
    this.lastUsed = now;
    this.#conn = conn;
    this.#events = events;
    this.#openTimer = this.#clock.setTimeout(() => this.close(), openTimeoutMs);
    conn.listen({
      open: () => this.#onOpen(),
      close: () => this.close(),
      data: (data) => this.#onData(data),
      iceState: (state) => {
        if (BROKEN_ICE_STATES.has(state)) this.close();
      },
    });
  }

  get isOpen(): boolean {
    return this.#state === 'open';
  }

  /** Whether it ever opened: a channel that never did counts as a failed attempt. */
  get everOpened(): boolean {
    return this.#channel !== null;
  }

  send(kind: FrameKind, payload: Uint8Array): void {
    if (this.#state === 'closed') return;
    this.#queue.push({ kind, payload, stream: this.#nextStream++ >>> 0, count: frameCount(payload.byteLength), next: 0 });
    this.#pump();
  }

  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    if (this.#openTimer) this.#clock.clear(this.#openTimer);
    this.#queue = [];
    this.#conn.close();
    this.#events.broken(this);
  }

  #onOpen(): void {
    const channel = this.#conn.dataChannel();
    if (this.#state !== 'opening' || !channel) {
      this.close();
      return;
    }
    if (this.#openTimer) this.#clock.clear(this.#openTimer);
    this.#openTimer = null;
    this.#channel = channel;
    channel.bufferedAmountLowThreshold = LOW_WATER;
    channel.addEventListener('bufferedamountlow', () => this.#pump());
    channel.addEventListener('close', () => this.close());
    this.#state = 'open';
    this.#events.open(this);
    this.#pump();
  }

  #pump(): void {
    const channel = this.#channel;
    if (this.#state !== 'open' || !channel) return;
    while (this.#queue.length > 0 && channel.bufferedAmount <= HIGH_WATER) {
      const head = this.#queue[0]!;
      try {
        channel.send(frameAt(head.kind, head.payload, head.stream, head.next));
      } catch {
        this.close();
        return;
      }
      head.next += 1;
      if (head.next === head.count) this.#queue.shift();
    }
  }

  #onData(data: unknown): void {
    if (this.#state === 'closed') return;
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
    let frame: Frame | null;
    try {
      if (!bytes) throw new Error('a data-channel message that is not binary');
      frame = this.#reassembler.accept(bytes);
    } catch (error) {
      console.warn(`webpvm: closing the channel to ${this.remotePeerId}: ${String(error)}`);
      this.close();
      return;
    }
    if (frame) this.#events.frame(this, frame);
  }
}
