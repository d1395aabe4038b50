// A real OpenID provider (node oidc-provider) for the tests: client_credentials tokens,
// RFC 9068 JWT access tokens for resource urn:api, opaque tokens for urn:opaque,
// introspection and revocation. Usage: node provider.mjs <port> <client-secret>
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, secret] = process.argv.slice(2);
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'ES256', use: 'sig' };
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [{
    client_id: 'svc',
    client_secret: secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:api',
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => resource === 'urn:opaque'
        ? { scope: 'kms:encrypt read', audience: 'urn:opaque', accessTokenFormat: 'opaque' }
        : { scope: 'kms:encrypt read', audience: 'urn:api', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
    },
  },
  scopes: ['kms:encrypt', 'read'],
});
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer} kid=${jwk.kid}`);
});
