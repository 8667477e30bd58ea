// Verify a JWT with panva's `jose` against a given JWKS only, as a verifier elsewhere would.
// Usage: node verify-jwt.mjs < {"jwt": "...", "jwks": {"keys": [...]}, "algorithms": [...],
//                               "currentDate": "2026-01-01T00:00:00Z" (optional: a skewed clock)}
// Prints {"ok": true, "payload": {...}, "kid": "..."} or {"ok": false, "code": "ERR_...", "message": "..."}.
import {createLocalJWKSet, jwtVerify} from 'jose';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const request = JSON.parse(input);
const options = {algorithms: request.algorithms};
if (request.currentDate) options.currentDate = new Date(request.currentDate);
try {
  const {payload, protectedHeader} = await jwtVerify(
    request.jwt, createLocalJWKSet(request.jwks), options,
  );
  process.stdout.write(JSON.stringify({ok: true, payload, kid: protectedHeader.kid}));
} catch (error) {
  process.stdout.write(JSON.stringify({ok: false, code: error.code ?? null, message: String(error)}));
}
