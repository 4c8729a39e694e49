import type { HostMessage } from '@webpvm/vm-protocol';
import type { SocketLike } from '../../src/host/coordinator-link.ts';

export class FakeSocket implements SocketLike {
  binaryType: BinaryType = 'blob';
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  sent: HostMessage[] = [];
  /** Binary frames: envelopes for the relay. */
  binary: Uint8Array[] = [];
  closed = false;

  send(data: string | Uint8Array): void {
    if (this.closed) throw new Error('socket closed');
    if (typeof data === 'string') this.sent.push(JSON.parse(data) as HostMessage);
    else this.binary.push(data.slice());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.({} as CloseEvent);
  }

  open(): void {
    this.onopen?.({} as Event);
  }

  receive(message: unknown): void {
    this.onmessage?.({ data: JSON.stringify(message) } as MessageEvent);
  }

  /** A binary frame from the coordinator, as a socket with binaryType 'arraybuffer' hands it over. */
  receiveBinary(bytes: Uint8Array): void {
    if (this.binaryType !== 'arraybuffer') throw new Error('binaryType must be arraybuffer');
    this.onmessage?.({ data: bytes.slice().buffer } as MessageEvent);
  }

  sentOfType<T extends HostMessage['type']>(type: T): Extract<HostMessage, { type: T }>[] {
    return this.sent.filter((m): m is Extract<HostMessage, { type: T }> => m.type === type);
  }
}
