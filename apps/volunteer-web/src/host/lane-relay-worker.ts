import { LanePortFrame, type LanePortControl } from '@webpvm/vm-protocol';
import type { RelayRequest } from './lane-relay.ts';

// The page's lane relay (lane-relay.ts): the lanes' RTCDataChannels, each piped to its task's worker in a sandbox frame.
const scope = self as unknown as { postMessage(message: number): void; onmessage: ((event: { data: RelayRequest }) => void) | null };
const lanes = new Map<number, { channel: RTCDataChannel; port: MessagePort }>();

/**
 * Below this much in a channel's buffer its worker is told what has left it: the worker's own
 * low mark (task-sdk task-messaging.ts LANE_LOW_WATER), where a sender that backed off writes again.
 */
const REPORT_BELOW = 256 * 1024;

scope.onmessage = ({ data }) => {
  if (data.type === 'carry') carry(data.id, data.channel, data.port);
  else for (const id of data.ids) close(id);
};

function close(id: number): void {
  const lane = lanes.get(id);
  if (!lane) return;
  lanes.delete(id);
  lane.channel.close();
  lane.port.postMessage({ op: 'close' } satisfies LanePortControl);
  lane.port.close();
  scope.postMessage(id);
}

function carry(id: number, channel: RTCDataChannel, port: MessagePort): void {
  lanes.set(id, { channel, port });
  channel.binaryType = 'arraybuffer';
  channel.bufferedAmountLowThreshold = REPORT_BELOW;
  /** Envelopes the worker wrote before the channel opened. */
  const waiting: ArrayBuffer[] = [];
  let written = 0;
  let reporting = false;
  const report = (): void => {
    reporting = false;
    if (lanes.has(id)) port.postMessage({ op: 'sent', bytes: written - channel.bufferedAmount } satisfies LanePortControl);
  };
  const send = (envelope: ArrayBuffer): void => {
    channel.send(envelope);
    written += envelope.byteLength;
  };
  channel.onopen = () => {
    for (const envelope of waiting.splice(0)) send(envelope);
    report();
  };
  channel.onbufferedamountlow = report;
  channel.onmessage = ({ data }) => {
    if (data instanceof ArrayBuffer) port.postMessage(data, [data]);
  };
  channel.onclose = () => close(id);
  port.onmessage = ({ data }) => {
    const frame = LanePortFrame.safeParse(data);
    // A worker that writes anything but envelopes and controls loses its lane.
    if (!frame.success) return close(id);
    if (!(frame.data instanceof ArrayBuffer)) {
      if (frame.data.op === 'close') close(id);
      return;
    }
    if (channel.readyState === 'connecting') {
      waiting.push(frame.data);
      return;
    }
    if (channel.readyState !== 'open') return close(id);
    send(frame.data);
    // One report for what a turn of the worker's writes leaves in the buffer, not one per envelope.
    if (!reporting) {
      reporting = true;
      setTimeout(report, 0);
    }
  };
}
