// The worker thread that runs the proxies (proxyhost.ts, ThreadProxies): its own event loop, so that
// piped client traffic never waits behind the controller's work.
import { parentPort, workerData } from 'node:worker_threads';
import { InlineProxies } from './proxyhost.js';
import type { FromWorker, ToWorker } from './proxyhost.js';

const port = parentPort;
if (port) {
  const send = (m: FromWorker): void => port.postMessage(m);
  const proxies = new InlineProxies((workerData as { host: string }).host, {
    accepted: (endpoint) => send({ t: 'accepted', endpoint }),
    open: (endpoint, n) => send({ t: 'open', endpoint, n }),
    dropped: (endpoint, why) => send({ t: 'dropped', endpoint, why }),
    log: (level, msg) => send({ t: 'log', level, msg }),
  });
  port.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'open':
        void proxies.open(m.endpoint, m.port).then((error) => send({ t: 'opened', endpoint: m.endpoint, error }));
        return;
      case 'routes':
        proxies.routes(m.routes);
        return;
      case 'closeExcept':
        proxies.closeExcept(m.id);
        return;
      case 'stop':
        void proxies.close().then(() => send({ t: 'stopped' }));
        return;
    }
  });
}
