// Bundles the dashboard page (src/dashboard) with esbuild into dist/dashboard (or the directory
// given as the first argument): index.html, app-<hash>.js and app-<hash>.css, the chart library
// included. The controller serves these files at /dashboard; nothing is fetched from elsewhere.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'src', 'dashboard');
const out = path.resolve(process.argv[2] ?? path.join(root, 'dist', 'dashboard'));

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

const result = await esbuild.build({
  entryPoints: { app: path.join(src, 'main.ts'), style: path.join(src, 'style.css') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  outdir: out,
  entryNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  absWorkingDir: root,
});

/** The output file of one entry point, by its name in entryPoints. */
function outputOf(entry, ext) {
  const name = Object.keys(result.metafile.outputs)
    .map((f) => path.basename(f))
    .find((f) => f.startsWith(`${entry}-`) && f.endsWith(ext));
  if (!name) throw new Error(`esbuild wrote no ${entry}*${ext}`);
  return name;
}

const html = fs
  .readFileSync(path.join(src, 'index.html'), 'utf8')
  .replace('%SCRIPT%', outputOf('app', '.js'))
  .replace('%STYLE%', outputOf('style', '.css'));
fs.writeFileSync(path.join(out, 'index.html'), html);
console.log(`dashboard: ${path.relative(root, out) || out}: ${fs.readdirSync(out).sort().join(', ')}`);
