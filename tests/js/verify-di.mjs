// Verify a credential's embedded Data Integrity proof with an independent implementation.
// Usage: node --import ./loopback-only.mjs verify-di.mjs < {"credential": {...},
//          "contexts": {"<url>": <document>}, "library": "digitalbazaar" | "verifier-core",
//          "registries": [DCC issuer registries, for verifier-core's registered_issuer step],
//          "statusLists": [status list URLs digitalbazaar may fetch, to check the status too]}
// did:web documents are fetched over HTTPS (NODE_EXTRA_CA_CERTS names the test CA).
// Prints {"verified": bool, ...what the library reported}; for verifier-core, `verified` is its
// whole verdict (it returns a log of steps and errors, no single flag).
// Libraries that log to stdout would mix with the result: their logs go to stderr.
console.log = (...args) => console.error(...args);

let input = '';
for await (const chunk of process.stdin) input += chunk;
const request = JSON.parse(input);

async function didWeb(did) {
  const [host, ...path] = did.slice('did:web:'.length).split(':').map(decodeURIComponent);
  const url = `https://${host}/${path.length ? path.join('/') + '/did.json' : '.well-known/did.json'}`;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function documentLoader(url) {
  if (request.contexts[url]) {
    return {contextUrl: null, documentUrl: url, document: request.contexts[url]};
  }
  if (url.startsWith('did:web:')) {
    const [did] = url.split('#');
    const document = await didWeb(did);
    if (url === did) return {contextUrl: null, documentUrl: url, document};
    const method = document.verificationMethod.find(m => m.id === url);
    if (!method) throw new Error(`${did} has no verification method ${url}`);
    return {
      contextUrl: null,
      documentUrl: url,
      document: {'@context': 'https://w3id.org/security/multikey/v1', ...method},
    };
  }
  if ((request.statusLists ?? []).includes(url)) {
    // A status list the test named (on loopback), fetched as a JSON-LD client asks for it.
    const response = await fetch(url, {headers: {Accept: 'application/ld+json'}});
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return {contextUrl: null, documentUrl: url, document: await response.json()};
  }
  throw new Error(`refused to load ${url}: not a context given to this script`);
}

if (request.library === 'digitalbazaar') {
  const vc = await import('@digitalbazaar/vc');
  const {DataIntegrityProof} = await import('@digitalbazaar/data-integrity');
  const {cryptosuite} = await import('@digitalbazaar/eddsa-rdfc-2022-cryptosuite');
  const suite = new DataIntegrityProof({cryptosuite});
  // With `statusLists`, the status too, by Digital Bazaar's Bitstring Status List library (it
  // loads each list through the document loader and verifies its proof with the same suite);
  // without, only the proof is checked.
  const checkStatus = request.statusLists
    ? (await import('@digitalbazaar/vc-bitstring-status-list')).checkStatus
    : async () => ({verified: true});
  const result = await vc.verifyCredential({
    credential: request.credential, suite, documentLoader, checkStatus,
  });
  const proof = result.results?.[0];
  process.stdout.write(JSON.stringify({
    verified: result.verified,
    proofVerified: proof?.verified ?? false,
    method: proof?.verificationMethod?.id ?? null,
    // The list was read and verified (its proof, its issuer the credential's) ...
    statusVerified: result.statusResult?.verified ?? null,
    // ... and the bit of each entry (true: set, i.e. revoked for a revocation entry).
    statuses: result.statusResult?.results?.map(r => r.status) ?? null,
    error: result.error ? String(result.error.errors ?? result.error) : null,
  }));
} else {
  const {verifyCredential} = await import('@digitalcredentials/verifier-core');
  const registries = request.registries ?? [];
  const result = await verifyCredential({credential: request.credential, knownDIDRegistries: registries});
  const log = result.log ?? [];
  const errors = result.errors ?? [];
  // The wallet's verdict: no error, and every step it ran valid. `registered_issuer` (is the
  // issuer in one of the DCC registries given?) counts only when a registry was given.
  const steps = log.filter(e => registries.length || e.id !== 'registered_issuer');
  process.stdout.write(JSON.stringify({
    verified: errors.length === 0 && steps.length > 0 && steps.every(e => e.valid === true && !e.error),
    log,
    errors: errors.map(e => ({name: e.name, message: e.message, stack: String(e.stackTrace ?? '')})),
  }));
}
