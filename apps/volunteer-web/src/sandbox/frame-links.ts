import { MAX_LINK_CANDIDATES, usableIceServers, type FromSandbox, type IceConfig, type LaneGift, type LinkSignal } from '@webpvm/vm-protocol';

/** The offering frame's first stream: it puts a data channel in the offer, and carries nothing. */
const LINK_STREAM = 0;

interface Link {
  pc: RTCPeerConnection;
  offer: boolean;
  /** Whether the other frame's description is in: before, candidates and lanes wait. */
  described: boolean;
  candidates: RTCIceCandidateInit[];
  candidatesTaken: number;
  lanes: (() => void)[];
}

/**
 * The links of a job's frame (vm-protocol lane.ts): an RTCPeerConnection to another host's frame
 * of the same job per host its tasks talk to, whose signals go through the two pages. Each lane
 * is a negotiated channel of a link, made here and transferred at once to its task's worker: task
 * code never sees a connection, only the channel of its own pair, and no page's process is on it.
 */
export class FrameLinks {
  #links = new Map<number, Link>();
  #toPage: (message: FromSandbox) => void;

  constructor(toPage: (message: FromSandbox) => void) {
    this.#toPage = toPage;
  }

  open(id: number, offer: boolean, ice: IceConfig): void {
    if (this.#links.has(id)) return;
    let pc: RTCPeerConnection;
    try {
      pc = new RTCPeerConnection({ iceServers: usableIceServers(ice.iceServers) as unknown as RTCIceServer[], iceTransportPolicy: ice.iceTransportPolicy });
    } catch {
      this.#toPage({ type: 'unlinked', link: id });
      return;
    }
    const link: Link = { pc, offer, described: false, candidates: [], candidatesTaken: 0, lanes: [] };
    this.#links.set(id, link);
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate) return;
      const { sdpMid, sdpMLineIndex, usernameFragment } = candidate;
      this.#toPage({ type: 'signal', link: id, signal: { candidate: { candidate: candidate.candidate, sdpMid, sdpMLineIndex, usernameFragment } } });
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed') this.#drop(id);
    };
    if (!offer) return;
    pc.createDataChannel('link', { negotiated: true, id: LINK_STREAM });
    void this.#describe(id, pc.createOffer());
  }

  signal(id: number, signal: LinkSignal): void {
    const link = this.#links.get(id);
    if (!link) return;
    if ('candidate' in signal) {
      if (++link.candidatesTaken > MAX_LINK_CANDIDATES) return this.#drop(id);
      if (link.described) link.pc.addIceCandidate(signal.candidate).catch(() => undefined);
      else link.candidates.push(signal.candidate);
      return;
    }
    // Each side takes one description, of the kind its role expects.
    if (link.described || signal.description.type !== (link.offer ? 'answer' : 'offer')) return this.#drop(id);
    link.described = true;
    const described = link.pc.setRemoteDescription(signal.description).then(() => {
      for (const candidate of link.candidates.splice(0)) link.pc.addIceCandidate(candidate).catch(() => undefined);
      for (const make of link.lanes.splice(0)) make();
    });
    if (link.offer) described.catch(() => this.#drop(id));
    else void this.#describe(id, described.then(() => link.pc.createAnswer()));
  }

  /** Makes stream `stream` of the link and transfers it to `worker` (undefined: gone) with `gift`, once the link is described. */
  lane(id: number, stream: number, worker: Worker | undefined, gift: LaneGift): void {
    const link = this.#links.get(id);
    const made = (ok: boolean) => this.#toPage({ type: 'lane-made', link: id, stream, made: ok });
    if (!link || !worker) return made(false);
    const make = (): void => {
      if (this.#links.get(id) !== link) return made(false);
      let channel: RTCDataChannel;
      try {
        channel = link.pc.createDataChannel('lane', { negotiated: true, id: stream, ordered: true });
      } catch {
        return made(false);
      }
      // A data channel can be transferred only in the turn it is made in.
      worker.postMessage({ ...gift, channel }, [channel as unknown as Transferable]);
      made(true);
    };
    // An offering frame's lanes can be made at once; an answering frame's once the offer is in.
    if (link.offer || link.described) make();
    else link.lanes.push(make);
  }

  close(id: number): void {
    const link = this.#links.get(id);
    if (!link) return;
    this.#links.delete(id);
    link.pc.close();
    for (const make of link.lanes.splice(0)) make();
  }

  async #describe(id: number, description: Promise<RTCSessionDescriptionInit>): Promise<void> {
    const link = this.#links.get(id);
    try {
      const { type, sdp } = await description;
      if (!link || this.#links.get(id) !== link || (type !== 'offer' && type !== 'answer') || sdp === undefined) return;
      await link.pc.setLocalDescription({ type, sdp });
      this.#toPage({ type: 'signal', link: id, signal: { description: { type, sdp } } });
    } catch {
      this.#drop(id);
    }
  }

  /** The link failed, or its peer sent what it should not: it closes, and the page hears of it. */
  #drop(id: number): void {
    if (!this.#links.has(id)) return;
    this.close(id);
    this.#toPage({ type: 'unlinked', link: id });
  }
}
