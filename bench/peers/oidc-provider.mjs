// The peer of bench scenario l: Node's `oidc-provider` (an OpenID-certified
// provider), configured like the portal for the scenario: one confidential
// client, RS256 id tokens, scopes openid/email/profile, an in-memory store.
// It is installed from npm outside this tree (BENCHMARKS.md says how); this
// file only configures it:
//
//   OIDC_PROVIDER=/tmp/oidc-peer/node_modules/oidc-provider/lib/index.js \
//     node bench/peers/oidc-provider.mjs PORT
//
// The harness needs codes made without a browser: GET /bench/codes?n=N
// makes N through the provider's own models (a grant, then codes for it),
// as its authorization endpoint would after a log-in and consent.
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';

const port = Number(process.argv[2] ?? 4000);
const { default: Provider } = await import(process.env.OIDC_PROVIDER ?? 'oidc-provider');
const issuer = `http://127.0.0.1:${port}`;
const redirect = 'https://app.example.test/cb';
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench', alg: 'RS256', use: 'sig' };

// An unbounded in-memory store: the provider's own development store keeps
// at most 1,000 entries, fewer than one run's codes and tokens.
const stores = new Map();
class MemoryStore {
  constructor(model) {
    this.model = model;
    if (!stores.has(model)) stores.set(model, new Map());
    this.rows = stores.get(model);
  }
  async upsert(id, payload) { this.rows.set(id, payload); }
  async find(id) { return this.rows.get(id); }
  async findByUserCode() { return undefined; }
  async findByUid(uid) { for (const p of this.rows.values()) if (p.uid === uid) return p; return undefined; }
  async consume(id) { const p = this.rows.get(id); if (p) p.consumed = Math.floor(Date.now() / 1000); }
  async destroy(id) { this.rows.delete(id); }
  async revokeByGrantId(grantId) { for (const [id, p] of this.rows) if (p.grantId === grantId) this.rows.delete(id); }
}

const provider = new Provider(issuer, {
  adapter: MemoryStore,
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-bench-secret-bench-secret',
    redirect_uris: [redirect],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [jwk] },
  pkce: { required: () => false },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, email: 'bench@example.com', email_verified: true, name: 'Bench' }),
  }),
  features: { devInteractions: { enabled: false } },
});

const client = await provider.Client.find('bench');

async function codes(n) {
  const grant = new provider.Grant({ accountId: 'bench-user', clientId: 'bench' });
  grant.addOIDCScope('openid email profile');
  const grantId = await grant.save();
  const out = [];
  for (let i = 0; i < n; i++) {
    const code = new provider.AuthorizationCode({
      accountId: 'bench-user',
      client,
      grantId,
      redirectUri: redirect,
      scope: 'openid email profile',
      authTime: Math.floor(Date.now() / 1000),
      acr: 'mfa',
      amr: ['pwd', 'otp'],
    });
    out.push(await code.save());
  }
  return out;
}

const callback = provider.callback();
createServer(async (req, res) => {
  if (req.url?.startsWith('/bench/codes')) {
    const n = Number(new URL(req.url, issuer).searchParams.get('n') ?? 1);
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify(await codes(n)));
  }
  return callback(req, res);
}).listen(port, '127.0.0.1', () => console.log(`oidc-provider ${issuer}`));
