// bihactl rotate-secret: a new random cluster secret, distributed through the configuration log.
import { writeSecretFile } from '../controller/security/secfiles.js';
import { nodeRequest } from './localnode.js';
import { info } from './util.js';
import { printJson } from './output.js';

export async function cmdRotateSecret(o: { pgdata?: string; magicFile?: string; json?: boolean }): Promise<void> {
  const magic = String(await nodeRequest(o.pgdata, 'rotate_secret', {}, 120_000));
  if (o.magicFile) await writeSecretFile(o.magicFile, magic + '\n');
  const message = 'the cluster secret is rotated on every node; magic strings made before no longer work (this one does)';
  if (o.json) printJson({ magic_string: magic, message });
  else {
    process.stdout.write(magic + '\n');
    info(message);
  }
}
