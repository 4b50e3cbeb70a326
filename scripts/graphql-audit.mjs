// The graphql-http audit (GraphQL over HTTP spec conformance) against a running server.
// Usage: AUDIT_URL=http://127.0.0.1:8000/graphql AUDIT_TOKEN=... node scripts/graphql-audit.mjs
// Prints every result that is not "ok"; exits 1 on any error or warning.
import { auditServer } from 'graphql-http';

const url = process.env.AUDIT_URL;
const token = process.env.AUDIT_TOKEN;
if (!url || !token) {
  console.error('set AUDIT_URL and AUDIT_TOKEN');
  process.exit(2);
}

const fetchWithToken = (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn: fetchWithToken });
let failed = 0;
for (const result of results) {
  if (result.status === 'ok') continue;
  if (result.status !== 'notice') failed += 1;
  const reason = result.reason || '';
  console.log(`${result.status.toUpperCase()} ${result.id} ${result.name}: ${reason}`);
}
const ok = results.filter((r) => r.status === 'ok').length;
console.log(`audit: ${ok} ok, ${failed} failed or warned, ${results.length} checks`);
process.exit(failed ? 1 : 0);
