import type { Page } from 'playwright-core';

/**
 * The baselines of the messaging benchmark, measured between the same two tabs in the same run:
 * a raw RTCDataChannel opened by hand, and a raw WebSocket to an echo server in Node. Both use the
 * protocol the webpvm benchmark program uses: 8-byte pings echoed, then `count` messages of a size
 * streamed and answered with one "done".
 */
export interface PathFigures {
  rtts: number[];
  streams: { size: number; count: number; seconds: number }[];
}

export interface StreamPlan {
  pings: number;
  warmupMs: number;
  sizes: number[];
  streamBytes: number;
}

/** Chromium's largest data-channel message: bigger sizes go as 64 KiB pieces, as webpvm chunks them. */
const CHANNEL_PIECE = 64 * 1024;

type BenchGlobals = { __bench: { pc: RTCPeerConnection; dc: RTCDataChannel } };

export async function openRawChannel(a: Page, b: Page): Promise<void> {
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
        let expecting = 0;
        dc.onmessage = (e) => {
          if (typeof e.data === 'string') {
            expecting = Number(e.data);
            return;
          }
          if (expecting > 0) {
            if (--expecting === 0) dc.send('done');
            return;
          }
          dc.send(e.data as ArrayBuffer);
        };
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
}

/**
 * Runs the plan from page `a` over a raw transport: the channel opened by openRawChannel, or a
 * WebSocket to the echo server (see startEchoServer). Channel messages above 64 KiB go as pieces,
 * with the same backpressure webpvm uses; a WebSocket takes whole messages.
 */
export function measureRaw(a: Page, transport: { kind: 'channel' } | { kind: 'websocket'; url: string }, plan: StreamPlan): Promise<PathFigures> {
  return a.evaluate(
    async ({ transport, plan, piece }) => {
      let send: (data: ArrayBuffer | Uint8Array | string) => void;
      let setOnMessage: (handler: (e: MessageEvent) => void) => void;
      let drained: () => Promise<void>;
      let finish = () => {};
      let maxMessage: number;
      if (transport.kind === 'channel') {
        const { dc } = (globalThis as unknown as BenchGlobals).__bench;
        dc.bufferedAmountLowThreshold = 1024 * 1024;
        send = (data) => dc.send(data as ArrayBuffer);
        setOnMessage = (handler) => (dc.onmessage = handler);
        drained = async () => {
          if (dc.bufferedAmount > 4 * 1024 * 1024) await new Promise((resolve) => (dc.onbufferedamountlow = resolve));
        };
        maxMessage = piece;
      } else {
        const ws = new WebSocket(transport.url);
        ws.binaryType = 'arraybuffer';
        await new Promise((resolve) => (ws.onopen = resolve));
        send = (data) => ws.send(data);
        setOnMessage = (handler) => (ws.onmessage = handler);
        drained = async () => {};
        finish = () => ws.close();
        maxMessage = Infinity;
      }
      const next = () => new Promise<MessageEvent>((resolve) => setOnMessage(resolve));
      const ping = async () => {
        const t0 = performance.now();
        const reply = next();
        send(new ArrayBuffer(8));
        await reply;
        return performance.now() - t0;
      };
      const warmUntil = performance.now() + plan.warmupMs;
      while (performance.now() < warmUntil) await ping();
      const rtts: number[] = [];
      for (let i = 0; i < plan.pings; i++) rtts.push(await ping());
      const streams = [];
      for (const size of plan.sizes) {
        const count = Math.max(4, Math.round(plan.streamBytes / size));
        const pieceSize = Math.min(size, maxMessage);
        const pieces = count * Math.ceil(size / pieceSize);
        const payload = new Uint8Array(pieceSize);
        send(String(pieces));
        const done = next();
        const t0 = performance.now();
        for (let i = 0; i < pieces; i++) {
          await drained();
          send(payload);
        }
        await done;
        streams.push({ size, count, seconds: (performance.now() - t0) / 1000 });
      }
      finish();
      return { rtts, streams };
    },
    { transport, plan, piece: CHANNEL_PIECE },
  );
}
