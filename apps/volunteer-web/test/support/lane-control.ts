import { expect } from 'vitest';
import { FrameKind } from '../../src/host/messaging/channel-frames.ts';
import type { LaneCarrier } from '../../src/host/messaging/lanes.ts';

/** A lane control's payload (vm-protocol lane.ts) as pages send it on their channel: JSON text. */
export const laneControlBytes = (control: unknown) => new TextEncoder().encode(JSON.stringify(control));

export const readLaneControl = (payload: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(payload));

/** A page channel lanes and links are negotiated on: it records the lane frames sent. */
export class FakeCarrier implements LaneCarrier {
  isOpen = true;
  sent: unknown[] = [];
  constructor(
    readonly remotePeerId: string,
    readonly outgoing: boolean,
  ) {}
  send(kind: FrameKind, payload: Uint8Array): void {
    expect(kind).toBe(FrameKind.lane);
    this.sent.push(readLaneControl(payload));
  }
}
