// bihactl systemd-unit: the unit file that runs this node's controller under systemd.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BihaError } from '../controller/errors.js';
import { identityDir, readNodeConf } from '../controller/state/nodefiles.js';
import { osGroupById } from '../controller/osuser.js';
import { renderServiceUnit } from '../controller/pg/conf.js';
import { resolveBindir } from '../controller/pg/bindir.js';
import { lookupUid } from '../controller/pg/tools.js';
import { info, requireOpt } from './util.js';
import { CONTROLLER_NODE_FLAGS } from './controllerflags.js';

const UNIT_NAME = /^[A-Za-z0-9:_.@-]+$/;

export async function cmdSystemdUnit(o: { pgdata?: string; unitName?: string; output?: string }): Promise<void> {
  const pgdata = path.resolve(requireOpt('pgdata', o.pgdata));
  if (!fs.existsSync(path.join(identityDir(pgdata), 'biha.conf')))
    throw new BihaError('not_a_node', `${pgdata} is not a biha node (no pg_biha/biha.conf)`, { hint: 'create one with bihactl init or bihactl add' });
  const conf = await readNodeConf(pgdata);
  const unitName = (o.unitName ?? `biha-node${conf.nodeId}`).replace(/\.service$/, '');
  if (!UNIT_NAME.test(unitName))
    throw new BihaError('bad_args', `--unit-name "${unitName}" is not a valid systemd unit name`, { hint: 'use letters, digits and : _ . @ -' });
  if (!/^[A-Za-z0-9/_.,+:@-]+$/.test(pgdata + process.execPath))
    throw new BihaError('bad_args', `${pgdata} contains characters a unit file would need quoted (spaces, quotes, %)`, {
      hint: 'use a data directory path (or a symlink to it) made of letters, digits and / _ . , + : @ -',
    });
  const st = fs.statSync(pgdata);
  if (st.uid === 0) throw new BihaError('root_owner', `${pgdata} is owned by root`, { hint: 'chown it to the postgres OS user' });
  // The unit fixes the bin directory only when one was given (BIHA_PG_BINDIR or --pg-bindir);
  // otherwise the controller follows the data directory's PG_VERSION, also after an upgrade.
  // Either way, the programs must be there now.
  const explicit = process.env.BIHA_PG_BINDIR || undefined;
  const { bindir } = await resolveBindir(pgdata, { explicit });
  if (explicit !== undefined && !/^[A-Za-z0-9/_.,+:@-]+$/.test(bindir))
    throw new BihaError('bad_args', `${bindir} contains characters a unit file would need quoted (spaces, quotes, %)`, {
      hint: 'use a bin directory path (or a symlink to it) made of letters, digits and / _ . , + : @ -',
    });
  const here = path.dirname(fileURLToPath(import.meta.url));
  const script = path.resolve(here, '..', '..', 'bin', 'bihactl.js');
  const text = await renderServiceUnit({
    unitName,
    pgdata,
    user: (await lookupUid(st.uid))?.user ?? String(st.uid),
    group: osGroupById(st.gid),
    bindir: explicit !== undefined ? bindir : null,
    bihactl: [process.execPath, ...CONTROLLER_NODE_FLAGS, script].join(' '),
    vip: conf.proxy?.vip !== undefined,
  });
  if (!o.output) {
    process.stdout.write(text);
    return;
  }
  await fsp.writeFile(o.output, text, { mode: 0o644 });
  info(`wrote ${o.output}; then: systemctl daemon-reload && systemctl enable --now ${unitName}`);
}
