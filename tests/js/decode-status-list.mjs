// Decode a Bitstring Status List with Digital Bazaar's implementation and print the set indices.
// Usage: node decode-status-list.mjs < encodedList
import {decodeList} from '@digitalbazaar/vc-bitstring-status-list';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const list = await decodeList({encodedList: input.trim()});
const set = [];
for (let i = 0; i < list.length; i++) {
  if (list.getStatus(i)) set.push(i);
}
process.stdout.write(JSON.stringify({length: list.length, set}));
