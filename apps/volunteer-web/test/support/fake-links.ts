import type { EnvelopeHeader } from '@webpvm/vm-protocol';
import type { FrameKind } from '../../src/host/messaging/channel-frames.ts';
import type { DataLink, DataLinks } from '../../src/host/messaging/data-link.ts';
import { headerOf } from './envelopes.ts';

/** An open data channel that records the frames sent on it, their envelopes decoded. */
export class FakeLink implements DataLink {
  sent: { kind: FrameKind; header: EnvelopeHeader }[] = [];
  constructor(readonly remotePeerId: string) {}
  send(kind: FrameKind, payload: Uint8Array): void {
    this.sent.push({ kind, header: headerOf(payload) });
  }
}

/** The page's data channels: none open until the test opens one; asks to connect are recorded. */
export class FakeLinks implements DataLinks {
  links = new Map<string, FakeLink>();
  connects: string[] = [];
  open(peerId: string): DataLink | null {
    return this.links.get(peerId) ?? null;
  }
  connect(peerId: string): void {
    this.connects.push(peerId);
  }
  /** The channel to that peer opens. */
  opened(peerId: string): FakeLink {
    const link = new FakeLink(peerId);
    this.links.set(peerId, link);
    return link;
  }
}
