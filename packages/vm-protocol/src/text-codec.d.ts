// The UTF-8 codecs every runtime of ours has (browsers, workers, Node), without pulling in DOM or Node types.
declare class TextEncoder {
  encode(input?: string): Uint8Array;
  encodeInto(source: string, destination: Uint8Array): { read: number; written: number };
}
declare class TextDecoder {
  decode(input?: Uint8Array): string;
}
