// What verifying DBSC proofs in Wasm (RustCrypto's p256 and rsa) would cost, against the
// runtime's WebCrypto, which the worker uses (src/store/proof.rs): the module's size as the
// worker's build would ship it (wasm-opt -Os, gzip -9), and CPU per verification in V8, the
// engine workerd runs. `node bench/verify/run.mjs` from the repository root; it builds the
// module (about a minute the first time) into target/verify.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const TARGET = join(ROOT, 'target/verify');
execFileSync('cargo', ['build', '--release', '--target', 'wasm32-unknown-unknown',
  '--manifest-path', join(ROOT, 'bench/verify/Cargo.toml')], { env: { ...process.env, CARGO_TARGET_DIR: TARGET }, stdio: 'inherit' });
const built = join(TARGET, 'wasm32-unknown-unknown/release/verify_in_wasm.wasm');
const optimized = join(TARGET, 'verify.opt.wasm');
execFileSync(join(ROOT, 'node_modules/.bin/wasm-opt'), ['-Os', '--strip-debug', built, '-o', optimized]);
const bytes = readFileSync(optimized);
console.log(`module: ${(bytes.length / 1024).toFixed(1)} KiB, ${(gzipSync(bytes, { level: 9 }).length / 1024).toFixed(1)} KiB gzip -9`);

const { subtle } = webcrypto;
const { instance } = await WebAssembly.instantiate(bytes, {});
const memory = instance.exports.memory;
// Pages grown here lie below whatever the module's allocator grows later: it never writes them.
const base = memory.grow(4) * 65536;
const signed = Buffer.from('eyJ0eXAiOiJkYnNjK2p3dCIsImFsZyI6IkVTMjU2In0.eyJqdGkiOiJBQUFCbXRyZ19fX19fX19fX19fX19fX19fX19fIn0');
const PARAMS = {
  ES256: [{ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' }],
  RS256: [{ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5' }],
};
const N = 300;
const cpuPer = async (run) => {
  const start = process.cpuUsage();
  for (let i = 0; i < N; i += 1) await run();
  const { user, system } = process.cpuUsage(start);
  return (user + system) / N;
};

const rounds = { ES256: { wasm: [], webcrypto: [] }, RS256: { wasm: [], webcrypto: [] } };
for (let round = 0; round < 5; round += 1) {
  for (const alg of ['ES256', 'RS256']) {
    const [generate, sign] = PARAMS[alg];
    const keys = await subtle.generateKey(generate, true, ['sign', 'verify']);
    const signature = new Uint8Array(await subtle.sign(sign, keys.privateKey, signed));
    const jwk = JSON.stringify(await subtle.exportKey('jwk', keys.publicKey));
    const key = alg === 'ES256'
      ? new Uint8Array(await subtle.exportKey('raw', keys.publicKey))
      : Buffer.from(JSON.parse(jwk).n, 'base64url');
    const input = Buffer.concat([key, signature, signed]);
    new Uint8Array(memory.buffer, base, input.length).set(input);
    const verify = alg === 'ES256' ? instance.exports.verify_es256 : instance.exports.verify_rs256;
    if (verify(base, input.length) !== 1) throw new Error(`${alg}: the module did not verify`);
    rounds[alg].wasm.push(await cpuPer(() => verify(base, input.length)));
    // What the worker does per proof: import the JWK, then verify (src/store/proof.rs).
    rounds[alg].webcrypto.push(await cpuPer(async () => {
      const imported = await subtle.importKey('jwk', JSON.parse(jwk), generate, false, ['verify']);
      if (!(await subtle.verify(sign, imported, signature, signed))) throw new Error('WebCrypto did not verify');
    }));
  }
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
for (const alg of ['ES256', 'RS256']) {
  const { wasm, webcrypto: native } = rounds[alg];
  console.log(`${alg}: CPU per verification, median of 5 rounds of ${N}: Wasm ${median(wasm).toFixed(0)} µs, WebCrypto ${median(native).toFixed(0)} µs`);
}
