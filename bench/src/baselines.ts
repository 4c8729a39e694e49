import type { Tab } from './browser.ts';

/**
 * The baselines of the messaging benchmark, measured between the same two tabs in the same run:
 * a raw RTCDataChannel opened by hand, and a raw WebSocket to an echo server in Node. Both follow
 * the plan the webpvm benchmark program follows: 8-byte pings echoed, then a warm-up stream, then
 * one stream of each size. A channel stream is answered with one "done" by the other tab; a
 * WebSocket stream comes back through the echo server, so it crosses two WebSocket legs as
 * webpvm's relay does.
 */
export interface PathFigures {
  rtts: number[];
  streams: { size: number; count: number; seconds: number }[];
}

export interface StreamPlan {
  pings: number;
  warmupMs: number;
  /** Streamed untimed in 64 KiB messages before the timed streams: a fresh SCTP association or socket starts slow. */
  warmupBytes: number;
  sizes: number[];
  streamBytes: number;
}

/** Chromium's largest data-channel message: bigger sizes go as 64 KiB pieces, as webpvm chunks them. */
const CHANNEL_PIECE = 64 * 1024;

type BenchGlobals = { __bench: { pc: RTCPeerConnection; dc: RTCDataChannel } };

export async function openRawChannel(a: Tab, b: Tab): Promise<void> {
  // Each side gathers all its ICE candidates before its description is handed over: no trickle needed.
  const offer = await a.evaluate(async () => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    const dc = pc.createDataChannel('bench', { ordered: true });
    dc.binaryType = 'arraybuffer';
    (globalThis as unknown as BenchGlobals).__bench = { pc, dc };
    await pc.setLocalDescription(await pc.createOffer());
    while (pc.iceGatheringState !== 'complete') await new Promise((resolve) => setTimeout(resolve, 10));
    return pc.localDescription!.toJSON();
  });
  const answer = await b.evaluate(
    async (offer) => {
      const pc = new RTCPeerConnection({ iceServers: [] });
      const ready = new Promise<RTCDataChannel>((resolve) => (pc.ondatachannel = (e) => resolve(e.channel)));
      await pc.setRemoteDescription(offer);
      await pc.setLocalDescription(await pc.createAnswer());
      while (pc.iceGatheringState !== 'complete') await new Promise((resolve) => setTimeout(resolve, 10));
      void ready.then((dc) => {
        dc.binaryType = 'arraybuffer';
        (globalThis as unknown as BenchGlobals).__bench = { pc, dc };
      });
      return pc.localDescription!.toJSON();
    },
    offer,
  );
  await a.evaluate(async (answer) => {
    const { pc, dc } = (globalThis as unknown as BenchGlobals).__bench;
    await pc.setRemoteDescription(answer);
    if (dc.readyState !== 'open') await new Promise((resolve) => (dc.onopen = resolve));
  }, answer);
  await answerStreams(b, { kind: 'channel' });
}

/** The far side of a raw WebSocket relay, in tab `b`: the echo server hands it what tab `a` sends (see startEchoServer). */
export function openRawRelay(b: Tab, url: string): Promise<void> {
  return answerStreams(b, { kind: 'websocket', url: `${url}/relay?side=b` });
}

/**
 * The far side of a raw transport, in tab `b`: pings come back; a stream, announced by its
 * number of pieces, is answered with one "done".
 */
function answerStreams(b: Tab, transport: { kind: 'channel' } | { kind: 'websocket'; url: string }): Promise<void> {
  return b.evaluate(async (transport) => {
    let port: RTCDataChannel | WebSocket;
    if (transport.kind === 'channel') {
      // The answering tab gets its end of the channel a moment after the offering tab sees it open.
      while (!(globalThis as unknown as Partial<BenchGlobals>).__bench) await new Promise((resolve) => setTimeout(resolve, 10));
      port = (globalThis as unknown as BenchGlobals).__bench.dc;
    } else {
      const ws = new WebSocket(transport.url);
      ws.binaryType = 'arraybuffer';
      await new Promise((resolve) => (ws.onopen = resolve));
      port = ws;
    }
    let expecting = 0;
    port.onmessage = (e: MessageEvent) => {
      if (typeof e.data === 'string') {
        expecting = Number(e.data);
        return;
      }
      if (expecting > 0) {
        if (--expecting === 0) port.send('done');
        return;
      }
      port.send(e.data as ArrayBuffer);
    };
  }, transport);
}

/** A raw transport from page `a`: the channel opened by openRawChannel, a WebSocket to the echo server, or through it to tab `b` (openRawRelay). */
export type RawTransport = { kind: 'channel' } | { kind: 'websocket'; url: string } | { kind: 'websocket-relay'; url: string };

/**
 * Runs the plan from page `a` over a raw transport. Channel messages above 64 KiB go as pieces,
 * with the same backpressure webpvm uses; a WebSocket takes whole messages.
 */
export function measureRaw(a: Tab, transport: RawTransport, plan: StreamPlan): Promise<PathFigures> {
  return a.evaluate(
    async ({ transport, plan, piece }) => {
      let send: (data: ArrayBuffer | Uint8Array | string) => void;
      let setOnMessage: (handler: (e: MessageEvent) => void) => void;
      let drained: () => Promise<void>;
      /** Resolves when the far side has all `pieces` of the stream about to be sent. */
      let streamed: (pieces: number) => Promise<unknown>;
      let finish = () => {};
      let maxMessage: number;
      const next = () => new Promise<MessageEvent>((resolve) => setOnMessage(resolve));
      /** A far side that answers a stream with "done" (answerStreams) is told its length first. */
      const announced = (pieces: number) => {
        send(String(pieces));
        return next();
      };
      if (transport.kind === 'channel') {
        const { dc } = (globalThis as unknown as BenchGlobals).__bench;
        dc.bufferedAmountLowThreshold = 1024 * 1024;
        send = (data) => dc.send(data as ArrayBuffer);
        setOnMessage = (handler) => (dc.onmessage = handler);
        drained = async () => {
          if (dc.bufferedAmount > 4 * 1024 * 1024) await new Promise((resolve) => (dc.onbufferedamountlow = resolve));
        };
        streamed = announced;
        maxMessage = piece;
      } else {
        const ws = new WebSocket(transport.kind === 'websocket' ? transport.url : `${transport.url}/relay?side=a`);
        ws.binaryType = 'arraybuffer';
        await new Promise((resolve) => (ws.onopen = resolve));
        send = (data) => ws.send(data);
        setOnMessage = (handler) => (ws.onmessage = handler);
        drained = async () => {};
        streamed =
          transport.kind === 'websocket'
            ? (pieces) =>
                new Promise((resolve) => {
                  let echoed = 0;
                  setOnMessage(() => {
                    if (++echoed === pieces) resolve(null);
                  });
                })
            : announced;
        finish = () => ws.close();
        maxMessage = Infinity;
      }
      const ping = async () => {
        const t0 = performance.now();
        const reply = next();
        send(new ArrayBuffer(8));
        await reply;
        return performance.now() - t0;
      };
      const stream = async (size: number, count: number) => {
        const pieceSize = Math.min(size, maxMessage);
        const pieces = count * Math.ceil(size / pieceSize);
        const payload = new Uint8Array(pieceSize);
        const done = streamed(pieces);
        const t0 = performance.now();
        for (let i = 0; i < pieces; i++) {
          await drained();
          send(payload);
        }
        await done;
        return (performance.now() - t0) / 1000;
      };
      const warmUntil = performance.now() + plan.warmupMs;
      while (performance.now() < warmUntil) await ping();
      const rtts: number[] = [];
      for (let i = 0; i < plan.pings; i++) rtts.push(await ping());
      if (plan.warmupBytes > 0) await stream(64 * 1024, Math.ceil(plan.warmupBytes / (64 * 1024)));
      const streams = [];
      for (const size of plan.sizes) {
        const count = Math.max(4, Math.round(plan.streamBytes / size));
        streams.push({ size, count, seconds: await stream(size, count) });
      }
      finish();
      return { rtts, streams };
    },
    { transport, plan, piece: CHANNEL_PIECE },
  );
}
