// Expand documents with Digital Bazaar's jsonld.js over the contexts given, offline, and report
// what the 1EdTech validator would flag and what jsonld.js safe mode refuses.
// Usage: node expand-validator.mjs < {"<run>": {"contexts": {url: document}, "documents": [...]}}
// Prints {"<run>": [{"undefined": [IRIs in urn:UNDEFINEDTERM], "error": message or null,
// "safe": message or null}, one per document]}. `undefined`/`error`: expanded with
// expandContext {"@vocab": "urn:UNDEFINEDTERM"}, as the validator does; `safe`: expanded with
// `safe: true` and no fallback vocabulary.
import jsonld from 'jsonld';

const UNDEFINED = 'urn:UNDEFINEDTERM';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const runs = JSON.parse(input);

// Every key and every string in an array (`@type` values) starting with the marker, as the
// validator's Validation.findUndefinedTerms walks the expanded document.
const undefinedIn = (value, found) => {
  if (Array.isArray(value)) {
    for (const item of value) {
      if (typeof item === 'string' && item.startsWith(UNDEFINED)) found.push(item);
      else undefinedIn(item, found);
    }
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key.startsWith(UNDEFINED)) found.push(key);
      undefinedIn(item, found);
    }
  }
  return found;
};

const message = error => `${error.name}: ${error.message}${error.details?.event ? ` (${JSON.stringify(error.details.event.details ?? error.details.event.code)})` : ''}`;

const expandAll = async ({contexts, documents}) => {
  const documentLoader = async url => {
    if (!Object.hasOwn(contexts, url)) throw new Error(`not available offline: ${url}`);
    return {contextUrl: null, documentUrl: url, document: structuredClone(contexts[url])};
  };
  const results = [];
  for (const document of documents) {
    const result = {undefined: [], error: null, safe: null};
    try {
      const expanded = await jsonld.expand(document, {
        documentLoader,
        expandContext: {'@vocab': UNDEFINED},
      });
      result.undefined = undefinedIn(expanded, []);
    } catch (error) {
      result.error = message(error);
    }
    try {
      await jsonld.expand(document, {documentLoader, safe: true});
    } catch (error) {
      result.safe = message(error);
    }
    results.push(result);
  }
  return results;
};

const output = {};
for (const [name, run] of Object.entries(runs)) output[name] = await expandAll(run);
process.stdout.write(JSON.stringify(output));
