// `npm install <path to client>` and `npm install <git url>` run this before the package is used:
// it builds dist/ (ESM and .d.ts). A folder installed from a fresh clone has no node_modules of
// its own, so TypeScript is installed first when missing, with scripts off (that install would
// otherwise run this script again).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
if (!existsSync(tsc)) {
  execFileSync(npm, ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}
execFileSync(process.execPath, [tsc, '--project', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
