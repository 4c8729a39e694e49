import type { IceConfig, LinkSignal } from '@webpvm/vm-protocol';
import type { LinkEvents, LinkFrames } from '../../src/host/messaging/lane-links.ts';

export interface FakeLink {
  id: number;
  jobId: string;
  offer: boolean;
  ice: IceConfig;
  events: LinkEvents;
  /** Signals the page passed to the frame. */
  signals: LinkSignal[];
  closed: boolean;
}

/** Job frames that record the links asked of them; `jobs` are those this page has a frame of. */
export function fakeLinkFrames(jobs: (jobId: string) => boolean = () => true): LinkFrames & { links: FakeLink[] } {
  const links: FakeLink[] = [];
  return {
    links,
    open: (jobId, offer, ice, events) => {
      if (!jobs(jobId)) return null;
      links.push({ id: links.length, jobId, offer, ice, events, signals: [], closed: false });
      return links.length - 1;
    },
    signal: (link, signal) => links[link]?.signals.push(signal),
    close: (link) => {
      if (links[link]) links[link].closed = true;
    },
  };
}
