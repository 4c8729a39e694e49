import { LanePortControl, type LaneChannel } from '@webpvm/vm-protocol';

/**
 * A lane's end in a sandboxed worker: a MessagePort to the page's lane relay (lane-relay-worker.ts),
 * which holds the RTCDataChannel, made to look like that channel. `bufferedAmount` is what this
 * end wrote that the relay has not yet seen leave the channel's buffer, so a sender backs off as
 * it would on the channel itself.
 */
export function portLane(port: MessagePort): LaneChannel {
  const messageListeners: ((event: { data?: unknown }) => void)[] = [];
  const lowListeners: (() => void)[] = [];
  const closeListeners: (() => void)[] = [];
  let open = true;
  let written = 0;
  let sent = 0;

  const closed = (): void => {
    if (!open) return;
    open = false;
    port.close();
    for (const listener of closeListeners) listener();
  };

  port.onmessage = ({ data }) => {
    if (data instanceof ArrayBuffer) {
      for (const listener of messageListeners) listener({ data });
      return;
    }
    const control = LanePortControl.safeParse(data);
    if (!control.success) return;
    if (control.data.op === 'close') {
      closed();
      return;
    }
    const before = written - sent;
    sent = Math.min(written, Math.max(sent, control.data.bytes));
    if (before > lane.bufferedAmountLowThreshold && written - sent <= lane.bufferedAmountLowThreshold) for (const listener of lowListeners) listener();
  };

  const lane: LaneChannel = {
    get readyState() {
      return open ? 'open' : 'closed';
    },
    get bufferedAmount() {
      return written - sent;
    },
    bufferedAmountLowThreshold: 0,
    // Envelopes arrive as ArrayBuffers, which is what lanes ask for.
    binaryType: 'arraybuffer',
    send(data) {
      if (!open) throw new DOMException('the lane is closed', 'InvalidStateError');
      written += data.byteLength;
      port.postMessage(data.buffer.byteLength === data.byteLength ? data.buffer : data.slice().buffer);
    },
    close() {
      if (!open) return;
      port.postMessage({ op: 'close' } satisfies LanePortControl);
      closed();
    },
    addEventListener(type, listener) {
      if (type === 'message') messageListeners.push(listener);
      else if (type === 'bufferedamountlow') lowListeners.push(() => listener({}));
      else closeListeners.push(() => listener({}));
    },
  };
  return lane;
}
