// Sealing as session-state seals (record format s2), through WebCrypto: the floors of
// `npm run bench` (bench/baseline.js for KV mode, bench/strong-floor.js for strong mode) share it.
// Each session is stored under SHA-256 of the id (with its label), its data sealed with
// AES-256-GCM under a fresh data key on every write, that key wrapped under a key of its slot's
// own (HMAC-SHA-256 keyed by HMAC-SHA-256(id, label), over a label and a random salt), the
// lifecycle in the record's header, bound with the storage key as associated data.
export const TTL = 1800;
const subtle = crypto.subtle;
const encoder = new TextEncoder();
const SLOT_KEY_LABEL = encoder.encode('session-state/v2/slot-key\0');
const SLOT_LABEL = encoder.encode('session-state/v2/slot\0');
const DATA_LABEL = encoder.encode('session-state/v2/data\0');
const LIFECYCLE = 73;

export function lifecycle(previous) {
  const now = Date.now();
  return {
    createdAt: previous?.createdAt ?? now, updatedAt: now, expiresAt: now + TTL * 1000,
    version: (previous?.version ?? 0) + 1,
  };
}

/** The lifecycle as the record's header holds it: five u64, big-endian, then no subject. */
function lifecycleBytes(meta) {
  const out = new Uint8Array(LIFECYCLE);
  const view = new DataView(out.buffer);
  [meta.createdAt, meta.updatedAt, meta.expiresAt, meta.version, 0]
    .forEach((n, i) => view.setBigUint64(i * 8, BigInt(n)));
  return out;
}

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const part of parts) { out.set(new Uint8Array(part), at); at += part.byteLength; }
  return out;
};
export const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
const gcm = (iv, additionalData) => ({ name: 'AES-GCM', iv, additionalData });
const HMAC = { name: 'HMAC', hash: 'SHA-256' };

/** The storage key of `id`: SHA-256 of the id with its label. */
export const storageKey = (id) => subtle.digest('SHA-256', encoder.encode(`session-state/v1/key\0${id}`));

/** The storage key (as bytes and as the KV key) and the wrap key of `id`, as an HMAC key. */
export async function keys(id) {
  const key = await storageKey(id);
  const hmac = await subtle.importKey('raw', encoder.encode(id), HMAC, false, ['sign']);
  const wrapRaw = await subtle.sign('HMAC', hmac, encoder.encode('session-state/v1/wrap'));
  const wrap = await subtle.importKey('raw', wrapRaw, HMAC, false, ['sign']);
  return { key: new Uint8Array(key), name: `s1:${hex(key)}`, wrap };
}

/** The key of the slot with `salt`: used for that slot only. */
async function slotKey(wrap, salt, usage) {
  const raw = await subtle.sign('HMAC', wrap, concat(SLOT_KEY_LABEL, salt));
  return subtle.importKey('raw', raw, 'AES-GCM', false, [usage]);
}

export async function seal({ key, wrap }, meta, data) {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const salt = crypto.getRandomValues(new Uint8Array(32));
  const own = await slotKey(wrap, salt, 'encrypt');
  const wrapped = await subtle.encrypt(gcm(salt.subarray(0, 12), concat(SLOT_LABEL, key)), own, raw);
  const header = concat(encoder.encode('s2'), lifecycleBytes(meta), new Uint8Array([1]), salt, wrapped);
  const dataKey = await subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt']);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await subtle.encrypt(gcm(iv, concat(DATA_LABEL, key, header)), dataKey, data);
  return concat(header, iv, sealed);
}

export async function open({ key, wrap }, bytes) {
  const head = 2 + LIFECYCLE + 1;
  const salt = bytes.subarray(head, head + 32);
  const own = await slotKey(wrap, salt, 'decrypt');
  const raw = await subtle.decrypt(gcm(salt.subarray(0, 12), concat(SLOT_LABEL, key)), own, bytes.subarray(head + 32, head + 80));
  const dataKey = await subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']);
  const header = bytes.subarray(0, head + 80);
  const iv = bytes.subarray(head + 80, head + 92);
  return subtle.decrypt(gcm(iv, concat(DATA_LABEL, key, header)), dataKey, bytes.subarray(head + 92));
}

