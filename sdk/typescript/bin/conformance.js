#!/usr/bin/env node
// The TypeScript SDK's conformance runner: node sdk/typescript/bin/conformance.js FILE
// prints one JSON line per case, {"name": "…", "verdict": …}, and exits 0
// (2 when the file cannot be read). It runs the built package (dist/),
// building it first when it is missing.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'conformance.js');
if (!existsSync(entry)) {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0 || !existsSync(entry)) {
    process.stderr.write('conformance: dist/ is missing and the build failed: run `npm install && npm run build` in sdk/typescript\n');
    process.exit(2);
  }
}
const file = process.argv[2];
if (!file || process.argv.length !== 3) {
  process.stderr.write('usage: conformance.js FILE\n');
  process.exit(2);
}
const { runFile } = await import(pathToFileURL(entry).href);
let results;
try {
  results = await runFile(file);
} catch (e) {
  process.stderr.write(`conformance: ${file}: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
}
for (const r of results) process.stdout.write(JSON.stringify(r) + '\n');
