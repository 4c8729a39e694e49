import { type IceConfig, type LaneControl, type LaneGift, type LinkSignal, parseTid } from '@webpvm/vm-protocol';
import { FrameKind } from './channel-frames.ts';
import type { LaneCarrier } from './lanes.ts';

export type LinkControl = Extract<LaneControl, { op: 'link' | 'signal' | 'unlink' }>;

export interface LinkEvents {
  /** A signal of the link for the other host's frame. */
  signal(signal: LinkSignal): void;
  /** The frame's end of the link failed, or the frame went. */
  unlinked(): void;
}

/** The frames that own links: one per job (sandbox-frames.ts). */
export interface LinkFrames {
  /** A new link in the frame of `jobId`, or null when this page has no frame of that job. */
  open(jobId: string, offer: boolean, ice: IceConfig, events: LinkEvents): number | null;
  signal(link: number, signal: LinkSignal): void;
  close(link: number): void;
}

export interface LaneLinksOptions {
  frames: LinkFrames;
  /** The ICE servers and policy of this page's data channels, which links use too. */
  ice(): IceConfig;
  /** Asks the frame of `link` to make stream `stream` and hand it to the task `gift.tid`; false when that task does not run here. */
  give(link: number, stream: number, gift: LaneGift, made: (ok: boolean) => void): boolean;
}

interface Link {
  id: number;
  jobId: string;
}

const utf8 = new TextEncoder();
const send = (carrier: LaneCarrier, control: LinkControl) => carrier.send(FrameKind.lane, utf8.encode(JSON.stringify(control)));

/**
 * The links lanes ride on (vm-protocol lane.ts): per page channel, one link per job between the
 * two pages' frames of that job, made the first time a lane of the job needs it. The page that
 * opened the page channel offers; the other asks it to. A link lives as long as its page channel
 * and both frames; when it goes, its lanes close in the workers, and what they carried
 * unacknowledged goes another way, as when a page channel breaks.
 */
export class LaneLinks {
  #options: LaneLinksOptions;
  #links = new Map<LaneCarrier, Map<string, Link>>();

  constructor(options: LaneLinksOptions) {
    this.#options = options;
  }

  /** Makes the end of a lane on stream `stream` of the link to `carrier`'s host, for the task `gift.tid`. */
  make(carrier: LaneCarrier, stream: number, gift: LaneGift, made: (ok: boolean) => void): void {
    const link = this.#linkOf(carrier, parseTid(gift.tid).jobId, true);
    if (!link || !this.#options.give(link.id, stream, gift, made)) made(false);
  }

  /** A link frame from the host at the other end of `carrier`. */
  control(carrier: LaneCarrier, control: LinkControl): void {
    if (control.op === 'unlink') {
      const link = this.#links.get(carrier)?.get(control.job);
      if (link) this.#forget(carrier, control.job, link);
      return;
    }
    if (control.op === 'link') {
      // Only the offering side makes a link when asked; a page with no frame of the job says so.
      if (carrier.outgoing && !this.#linkOf(carrier, control.job, true)) send(carrier, { op: 'unlink', job: control.job });
      return;
    }
    const { signal } = control;
    const opening = !carrier.outgoing && 'description' in signal && signal.description.type === 'offer';
    const link = this.#linkOf(carrier, control.job, opening, false);
    if (link) this.#options.frames.signal(link.id, signal);
    else if (opening) send(carrier, { op: 'unlink', job: control.job });
  }

  /** The page channel closed: its links close with it. */
  carrierBroken(carrier: LaneCarrier): void {
    const links = this.#links.get(carrier);
    this.#links.delete(carrier);
    for (const link of links?.values() ?? []) this.#options.frames.close(link.id);
  }

  #linkOf(carrier: LaneCarrier, jobId: string, create: boolean, ask = true): Link | null {
    const known = this.#links.get(carrier)?.get(jobId);
    if (known || !create || !carrier.isOpen) return known ?? null;
    const offer = carrier.outgoing;
    const id = this.#options.frames.open(jobId, offer, this.#options.ice(), {
      signal: (signal) => send(carrier, { op: 'signal', job: jobId, signal }),
      unlinked: () => {
        if (this.#links.get(carrier)?.get(jobId) !== link) return;
        this.#forget(carrier, jobId, link);
        if (carrier.isOpen) send(carrier, { op: 'unlink', job: jobId });
      },
    });
    if (id === null) return null;
    const link: Link = { id, jobId };
    const links = this.#links.get(carrier) ?? new Map<string, Link>();
    links.set(jobId, link);
    this.#links.set(carrier, links);
    if (!offer && ask) send(carrier, { op: 'link', job: jobId });
    return link;
  }

  #forget(carrier: LaneCarrier, jobId: string, link: Link): void {
    this.#links.get(carrier)?.delete(jobId);
    this.#options.frames.close(link.id);
  }
}
