let lastMs = 0;
let sequence = 0;

/**
 * UUID v7 (RFC 9562): 48 bits of milliseconds, a 12-bit sequence, then random bits. Opaque and
 * unguessable, and ids made later in the same isolate sort later even within one millisecond
 * (the sequence, RFC 9562 method 1), so "newest first" can break timestamp ties by id.
 */
export function newId(): string {
  let ms = Date.now();
  if (ms <= lastMs) {
    sequence++;
    if (sequence > 0xfff) {
      lastMs++;
      sequence = 0;
    }
    ms = lastMs;
  } else {
    lastMs = ms;
    sequence = 0;
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = Math.floor(ms / 2 ** 40) & 0xff;
  bytes[1] = Math.floor(ms / 2 ** 32) & 0xff;
  bytes[2] = (ms >>> 24) & 0xff;
  bytes[3] = (ms >>> 16) & 0xff;
  bytes[4] = (ms >>> 8) & 0xff;
  bytes[5] = ms & 0xff;
  bytes[7] = sequence & 0xff;
  return formatUuid(bytes, 7, sequence >>> 8);
}

export const toHex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

export const toBase64Url = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

export const fromBase64Url = (text: string) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

export const sha256Hex = async (text: string) => toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))));

/** 16 bytes as a UUID string of `version`, with the RFC 9562 variant; `high` is the 4 bits after the version. */
export function formatUuid(bytes: Uint8Array, version: number, high = bytes[6]! & 0x0f): string {
  bytes[6] = (version << 4) | high;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = toHex(bytes);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export const nowIso = () => new Date().toISOString();
