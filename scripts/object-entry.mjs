// Rewrites the default export of worker-build's bundle (build/index.js) from a class entrypoint
// to an object, keeping its panic recovery. worker-build exports
// `new Proxy(class extends WorkerEntrypoint {...}, hooks)`: the runtime then constructs an
// instance per request, through the Proxy's traps, and every property read on it makes another
// Proxy. An object's `fetch` is one call. Measured with `npm run bench` (see the README,
// "Performance"). The recovery stays: before each request the shim's check re-creates the Wasm
// instance after a trap, and a trap during a request marks it for that.
//
// The bundle is minified, so the three pieces are found by their shape; if worker-build's output
// changes and one is not found, the build fails here rather than ship something else.
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.argv[2];
let code = readFileSync(file, 'utf8');
const find = (what, pattern) => {
  const match = pattern.exec(code);
  if (!match) throw new Error(`object-entry: no ${what} in ${file}; worker-build's output changed`);
  return match;
};
const [, , fetch] = find('fetch method', /\.prototype\.fetch=function\((\w+)\)\{return ([\w$]+)\.call\(this,\1,this\.env,this\.ctx\)\}/);
const [, check] = find('reinitialize check', /function ([\w$]+)\(\)\{[\w$]+\.criticalError&&\(console\.log\("Reinitializing Wasm application"\)/);
const [, mark] = find('critical error handler', /function ([\w$]+)\((\w)\)\{\2 instanceof WebAssembly\.RuntimeError/);
const [exported, entry] = find('default export', /([\w$]+) as default([,}])/);
// Parameter names that no minified name can be.
const handler = `var __objectEntry={fetch(__request,__env,__ctx){${check}();try{const __answer=${fetch}(__request,__env,__ctx);return __answer instanceof Promise?__answer.catch(__err=>{throw ${mark}(__err),__err}):__answer}catch(__err){throw ${mark}(__err),__err}}};`;
code = code.replace(exported, `__objectEntry as default${exported.at(-1)}`);
const at = code.lastIndexOf('export{');
if (at < 0) throw new Error(`object-entry: no export statement in ${file}`);
code = code.slice(0, at) + handler + code.slice(at);
writeFileSync(file, code);
console.log(`object-entry: default export is an object calling ${fetch} (was ${entry})`);
