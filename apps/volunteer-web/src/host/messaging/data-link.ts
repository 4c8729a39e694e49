import type { FrameKind } from './channel-frames.ts';

/** One open data channel to another host, as the router sees it. */
export interface DataLink {
  readonly remotePeerId: string;
  /** Queues a payload; the link frames, chunks and paces it. */
  send(kind: FrameKind, payload: Uint8Array): void;
}

/** The data channels of this page (peer-network.ts); tests hand the router a fake. */
export interface DataLinks {
  /** The open channel to that peer, or null. */
  open(peerId: string): DataLink | null;
  /** Starts opening a channel to that peer unless one is open or opening, or opening one failed lately. */
  connect(peerId: string): void;
}
