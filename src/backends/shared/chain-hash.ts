import * as crypto from 'node:crypto';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/**
 * First 16 characters of base32(SHA-256(input)): kube-proxy's chain-name hash. 16 base32 characters are
 * exactly the first 10 bytes of the digest, so only those are encoded.
 */
export function chainHash(input: string): string {
  const digest = sha256(input);
  let out = '';
  for (let block = 0; block < 10; block += 5) {
    // Five bytes are 40 bits: eight base32 characters. Split into two 20-bit halves to stay in int32 math.
    const hi = ((digest[block]! << 12) | (digest[block + 1]! << 4) | (digest[block + 2]! >> 4)) >>> 0;
    const lo = (((digest[block + 2]! & 0x0f) << 16) | (digest[block + 3]! << 8) | digest[block + 4]!) >>> 0;
    out +=
      BASE32[(hi >> 15) & 31]! +
      BASE32[(hi >> 10) & 31]! +
      BASE32[(hi >> 5) & 31]! +
      BASE32[hi & 31]! +
      BASE32[(lo >> 15) & 31]! +
      BASE32[(lo >> 10) & 31]! +
      BASE32[(lo >> 5) & 31]! +
      BASE32[lo & 31]!;
  }
  return out;
}

// crypto.hash (one-shot, Node >= 20.12) is markedly faster than createHash for 110,000 short inputs.
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'buffer') => Buffer }).hash;
const sha256 = (input: string): Buffer =>
  oneShot ? oneShot('sha256', input, 'buffer') : crypto.createHash('sha256').update(input).digest();
