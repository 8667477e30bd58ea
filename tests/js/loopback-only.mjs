// Preloaded (node --import) by the tests: any request to a host other than 127.0.0.1 / ::1 /
// localhost throws, so an independent verifier can never reach the network from a test.
import http from 'node:http';
import https from 'node:https';

const LOOPBACK = new Set(['127.0.0.1', '::1', '[::1]', 'localhost']);

function check(url) {
  const host = new URL(String(url)).hostname;
  if (!LOOPBACK.has(host)) throw new Error(`refused: a request to ${host} would leave loopback`);
}

const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  check(typeof input === 'string' || input instanceof URL ? input : input.url);
  return realFetch(input, init);
};
for (const module of [http, https]) {
  for (const name of ['request', 'get']) {
    const real = module[name];
    module[name] = function (url, ...rest) {
      const host = typeof url === 'string' || url instanceof URL ? new URL(String(url)).hostname : url.hostname ?? url.host;
      if (!LOOPBACK.has(String(host).split(':')[0]) && !LOOPBACK.has(String(host))) {
        throw new Error(`refused: a request to ${host} would leave loopback`);
      }
      return real.call(this, url, ...rest);
    };
  }
}
