import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LANE_IDS, encodeEnvelope, encodeMessage, imageParts } from '@webpvm/vm-protocol';
import { readProgram } from '../support/api.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';
import { RawHost } from '../support/raw-host.ts';
import { totalCounters } from '../support/snapshots.ts';

const PEERJS_BUNDLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../node_modules/peerjs/dist/peerjs.min.js');
/** token-ring.ts's tag for the token. */
const TOKEN = 2;

/** What the forging tab sends one victim: channel frames, and envelopes for a lane it asks for, each packed (`pack`). */
interface Volley {
  peerId: string;
  jobId: string;
  frames: string;
  count: number;
  laneId: number;
  laneEnvelopes: string;
}

/** A whole frame of the page channel (channel-frames.ts): [0][kind][payload]. */
const whole = (kind: number, payload: Uint8Array) => Buffer.concat([Buffer.from([0, kind]), payload]);

/** Byte strings as one base64 string, each after its u32 length: a page is handed them without a copy per number. */
const pack = (items: Uint8Array[]) => Buffer.concat(items.flatMap((item) => [Buffer.from(new Uint32Array([item.byteLength]).buffer), item])).toString('base64');

/**
 * The forger is a host the coordinator welcomed (a raw socket, so it runs nothing), whose PeerJS
 * id a tab in a browser of its own takes up. It knows where the ring's two tasks run and speaks
 * the page protocol: messages from each task to the other with every seq the ring will use and a
 * token far off, a lane asked for in the sender's name, an acknowledgement of everything, and a
 * piece of an image nobody asked for. Then it makes a link with the victim's sandbox frame of the
 * job, as a host of the job would (vm-protocol lane.ts), and writes the same messages on the
 * lane's stream of it. Without the check (sender-check.ts) the ring ends with the forger's token,
 * 1000000001.
 */
test('forged data-channel frames from a third tab are dropped and counted; the ring keeps its exact token', async ({ browser, api }) => {
  test.setTimeout(120_000);
  const tabs = await openHosts(browser, api.baseUrl, 2, 1);
  const rounds = 20_000;
  const id = await api.submit({ name: 'forged ring', program: readProgram('examples/token-ring.ts'), main: { tasks: 2, rounds } });

  // the ring's two tasks run on the two tabs, one each
  const running = async () => {
    const { tasks } = (await (await api.request('GET', `/api/jobs/${id}/tasks`)).json()) as { tasks: { tid: string; state: string; hostId: string | null }[] };
    return tasks.filter((t): t is { tid: string; state: string; hostId: string } => t.state === 'running' && t.hostId !== null);
  };
  await expect.poll(async () => new Set((await running()).map((t) => t.hostId)).size, { timeout: 30_000 }).toBe(2);
  const tasks = await running();
  const peerOf = new Map<string, string>();
  for (const tab of tabs) {
    const { hostId, peerId } = await tab.snapshot();
    if (hostId && peerId) peerOf.set(hostId, peerId);
  }
  const [a, b] = tasks as [(typeof tasks)[0], (typeof tasks)[0]];

  const forger = await RawHost.connect(api.baseUrl, 'hoard');
  try {
    const welcome = forger.welcome!;
    const volleys: Volley[] = [
      [a, b],
      [b, a],
    ].map(([from, to]) => {
      const forged = Array.from({ length: rounds + 1 }, (_, i) => encodeMessage({ from: from!.tid, to: to!.tid, tag: TOKEN, seq: i + 1, data: 1_000_000_000 }));
      const ack = encodeEnvelope({ type: 'ack', of: to!.tid, by: from!.tid, seq: Number.MAX_SAFE_INTEGER });
      const [part] = imageParts(to!.tid, 2, new Uint8Array(1000));
      const frames = [...forged.map((e) => whole(0, e)), whole(2, Buffer.from(JSON.stringify({ op: 'open', id: LANE_IDS.first, from: from!.tid, to: to!.tid }))), whole(0, ack), whole(0, part!)];
      return { peerId: peerOf.get(to!.hostId)!, jobId: id, frames: pack(frames), count: frames.length, laneId: LANE_IDS.first, laneEnvelopes: pack(forged) };
    });
    expect(volleys.every((v) => v.peerId)).toBe(true);

    const forging = await (await browser.newContext()).newPage();
    await forging.addScriptTag({ path: PEERJS_BUNDLE });
    const sent = await forging.evaluate(
      async ({ port, peerId, token, volleys }) => {
        const { Peer } = (globalThis as unknown as { peerjs: { Peer: new (id: string, options: object) => any } }).peerjs;
        const peer = new Peer(peerId, { host: '127.0.0.1', port, path: '/peerjs', token, debug: 0 });
        await new Promise((resolve, reject) => {
          peer.on('open', resolve);
          peer.on('error', reject);
        });
        // Resolves false if the channel closes first: a victim under load can close a channel it
        // took too long to open (peer-channel.ts), and a closed channel never drains.
        const drained = (channel: RTCDataChannel) =>
          new Promise((r) => {
            channel.addEventListener('bufferedamountlow', r, { once: true });
            channel.addEventListener('close', r, { once: true });
          });
        const sendAll = async (channel: RTCDataChannel, packed: string) => {
          const bytes = Uint8Array.from(atob(packed), (c) => c.charCodeAt(0));
          const view = new DataView(bytes.buffer);
          channel.bufferedAmountLowThreshold = 256 * 1024;
          for (let at = 0; at < bytes.byteLength; ) {
            const length = view.getUint32(at, true);
            if (channel.bufferedAmount > 1024 * 1024) await drained(channel);
            if (channel.readyState !== 'open') return false;
            channel.send(bytes.subarray(at + 4, at + 4 + length));
            at += 4 + length;
          }
          // sent whole only once the channel has handed every byte on while open
          channel.bufferedAmountLowThreshold = 0;
          if (channel.bufferedAmount > 0) await drained(channel);
          return channel.readyState === 'open';
        };
        const laneFrame = (control: object) => {
          const json = new TextEncoder().encode(JSON.stringify(control));
          const frame = new Uint8Array(2 + json.byteLength);
          frame.set([0, 2]);
          frame.set(json, 2);
          return frame;
        };
        /** Frames of volleys sent whole on a channel that stayed open, and frames handed to a channel at all. */
        let whole = 0;
        let handed = 0;
        let linked = 0;
        for (const volley of volleys) {
          const connect = async () => {
            const conn = peer.connect(volley.peerId, { serialization: 'raw', reliable: true });
            await new Promise((resolve, reject) => {
              conn.on('open', resolve);
              conn.on('error', reject);
              setTimeout(() => reject(new Error(`no channel to ${volley.peerId}`)), 10_000);
            });
            return conn;
          };
          let conn = await connect();
          // A volley cut by a closed channel is sent again, whole, on a new one: a forger insists.
          for (let tries = 1; ; tries += 1) {
            handed += volley.count;
            if (await sendAll(conn.dataChannel, volley.frames)) break;
            if (tries === 3) throw new Error(`the channel to ${volley.peerId} closed under each of ${tries} volleys`);
            conn = await connect();
          }
          whole += volley.count;
          // This tab opened the page channel, so it offers the job's link; the victim's frame answers.
          const link = new RTCPeerConnection();
          link.createDataChannel('link', { negotiated: true, id: 0 });
          const signal = (s: object) => conn.dataChannel.send(laneFrame({ op: 'signal', job: volley.jobId, signal: s }));
          link.onicecandidate = ({ candidate }) => {
            if (!candidate) return;
            const { sdpMid, sdpMLineIndex, usernameFragment } = candidate;
            signal({ candidate: { candidate: candidate.candidate, sdpMid, sdpMLineIndex, usernameFragment } });
          };
          conn.on('data', (data: ArrayBuffer) => {
            const bytes = new Uint8Array(data);
            if (bytes[0] !== 0 || bytes[1] !== 2) return;
            const control = JSON.parse(new TextDecoder().decode(bytes.subarray(2)));
            if (control.op !== 'signal') return;
            if (control.signal.description) void link.setRemoteDescription(control.signal.description);
            else void link.addIceCandidate(control.signal.candidate).catch(() => undefined);
          });
          const offer = await link.createOffer();
          await link.setLocalDescription(offer);
          signal({ description: { type: 'offer', sdp: offer.sdp } });
          const lane = link.createDataChannel('forged-lane', { negotiated: true, id: volley.laneId, ordered: true });
          await new Promise((resolve) => {
            lane.onopen = resolve;
            setTimeout(resolve, 10_000);
          });
          if (lane.readyState !== 'open') continue;
          linked += 1;
          await sendAll(lane, volley.laneEnvelopes);
        }
        return { whole, handed, linked };
      },
      { port: Number(new URL(api.baseUrl).port), peerId: welcome.peerId, token: welcome.peerToken, volleys },
    );
    expect(sent.whole).toBe(volleys.reduce((n, v) => n + v.count, 0));
    // both victims' frames took the forger's link, and carried nothing of what came on it to their tasks
    expect(sent.linked).toBe(2);

    const job = await api.waitForState(id, 'done', 90_000);
    expect(job.tasks).toMatchObject({ total: 2, done: 2, failed: 0 });
    expect(await api.results(id)).toEqual([{ tasks: 2, rounds, token: 2 * rounds }]);
    // every forged frame was dropped, and counted as such by the tab it reached: all of them, and
    // those of a volley cut short by a closed channel as far as they reached it
    if (sent.handed === sent.whole) await expect.poll(async () => (await totalCounters(tabs)).forged, { timeout: 30_000 }).toBe(sent.whole);
    else {
      await expect.poll(async () => (await totalCounters(tabs)).forged, { timeout: 30_000 }).toBeGreaterThanOrEqual(sent.whole);
      expect((await totalCounters(tabs)).forged).toBeLessThanOrEqual(sent.handed);
    }
    await forging.context().close();
  } finally {
    forger.close();
  }
});
