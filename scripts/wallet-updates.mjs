// Live wallet updates with the standard JavaScript client, graphql-ws (over ws in Node),
// as a partner's wallet app would subscribe. Prints one JSON line per event:
// {"event":"connected"}, then {"event":"next","data":...} for the first update, and
// exits 0; {"event":"error",...} (exit 1) or {"event":"timeout"} (exit 3) otherwise.
// Usage: WS_URL=ws://127.0.0.1:8000/graphql MEMBER_TOKEN=... node scripts/wallet-updates.mjs
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.env.WS_URL;
const token = process.env.MEMBER_TOKEN;
const timeoutMs = Number(process.env.TIMEOUT_MS || 10000);
if (!url || !token) {
  console.error('set WS_URL and MEMBER_TOKEN');
  process.exit(2);
}

const say = (event) => console.log(JSON.stringify(event));
const describe = (error) => {
  if (error instanceof Error) return error.message;
  if (error && typeof error.code === 'number') return `closed ${error.code} ${error.reason}`;
  return JSON.stringify(error);
};

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  lazy: false,
  retryAttempts: 0,
  on: { connected: () => say({ event: 'connected' }) },
});
const timer = setTimeout(() => {
  say({ event: 'timeout' });
  process.exit(3);
}, timeoutMs);
const finish = async (code) => {
  clearTimeout(timer);
  await client.dispose();
  process.exit(code);
};

client.subscribe(
  { query: 'subscription { walletUpdated { balance available held } }' },
  {
    next: (result) => {
      say({ event: 'next', data: result.data ?? null, errors: result.errors ?? null });
      finish(0);
    },
    error: (error) => {
      say({ event: 'error', error: describe(error) });
      finish(1);
    },
    complete: () => {
      say({ event: 'error', error: 'the subscription completed without an update' });
      finish(1);
    },
  },
);
