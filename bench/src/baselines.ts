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

/** Runs the plan from page `a` over the raw channel opened by openRawChannel. */
export function measureRawChannel(a: Page, plan: StreamPlan): Promise<PathFigures> {
  return a.evaluate(
    async ({ plan, piece }) => {
      const { dc } = (globalThis as unknown as BenchGlobals).__bench;
      dc.bufferedAmountLowThreshold = 1024 * 1024;
      const next = () => new Promise<MessageEvent>((resolve) => (dc.onmessage = resolve));
      const ping = async () => {
        const t0 = performance.now();
        const reply = next();
        dc.send(new ArrayBuffer(8));
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
        const pieceSize = Math.min(size, piece);
        const pieces = count * Math.ceil(size / pieceSize);
        const payload = new Uint8Array(pieceSize);
        dc.send(String(pieces));
        const done = next();
        const t0 = performance.now();
        for (let i = 0; i < pieces; i++) {
          if (dc.bufferedAmount > 4 * 1024 * 1024) await new Promise((resolve) => (dc.onbufferedamountlow = resolve));
          dc.send(payload);
        }
        await done;
        streams.push({ size, count, seconds: (performance.now() - t0) / 1000 });
      }
      return { rtts, streams };
    },
    { plan, piece: CHANNEL_PIECE },
  );
}

/** Runs the plan from page `a` against a WebSocket echo server (see startEchoServer). */
export function measureRawWebSocket(a: Page, url: string, plan: StreamPlan): Promise<PathFigures> {
  return a.evaluate(
    async ({ url, plan }) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      await new Promise((resolve) => (ws.onopen = resolve));
      const next = () => new Promise<MessageEvent>((resolve) => (ws.onmessage = resolve));
      const ping = async () => {
        const t0 = performance.now();
        const reply = next();
        ws.send(new ArrayBuffer(8));
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
        const payload = new Uint8Array(size);
        ws.send(String(count));
        const done = next();
        const t0 = performance.now();
        for (let i = 0; i < count; i++) ws.send(payload);
        await done;
        streams.push({ size, count, seconds: (performance.now() - t0) / 1000 });
      }
      ws.close();
      return { rtts, streams };
    },
    { url, plan },
  );
}
