// A real OpenID provider (node oidc-provider) for the tests, served over HTTPS with a
// certificate from the harness's run CA: client_credentials tokens, RFC 9068 JWT access
// tokens for resource urn:api, opaque tokens for urn:opaque, introspection and revocation.
// Clients: `svc` (client_secret_basic), `svc-post` (client_secret_post), `svc-hs`
// (client_secret_jwt) with the given secret, and `svc-key` (private_key_jwt) with the
// given public key. Clients `alice` and `bob` (client_secret_basic) get tokens whose `sub`
// is their name, for database logins; `expired` gets tokens that expired an hour ago.
// Resource urn:other issues JWTs for another audience.
// Usage: node provider.mjs <port> <client-secret> <cert.pem> <key.pem> <assertion-public.pem>
import { createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import Provider from 'oidc-provider';

const [port, secret, certFile, keyFile, assertionKeyFile] = process.argv.slice(2);
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'ES256', use: 'sig' };
const assertionJwk = { ...createPublicKey(readFileSync(assertionKeyFile)).export({ format: 'jwk' }), kid: 'svc-key-1', alg: 'ES256', use: 'sig' };
const issuer = `https://127.0.0.1:${port}`;

const client = (client_id, method, extra) => ({
  client_id,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: method,
  id_token_signed_response_alg: 'ES256',
  ...extra,
});

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [
    client('svc', 'client_secret_basic', { client_secret: secret }),
    client('svc-post', 'client_secret_post', { client_secret: secret }),
    client('svc-hs', 'client_secret_jwt', { client_secret: secret, token_endpoint_auth_signing_alg: 'HS256' }),
    client('svc-key', 'private_key_jwt', { jwks: { keys: [assertionJwk] }, token_endpoint_auth_signing_alg: 'ES256' }),
    client('alice', 'client_secret_basic', { client_secret: secret }),
    client('bob', 'client_secret_basic', { client_secret: secret }),
    client('expired', 'client_secret_basic', { client_secret: secret }),
  ],
  formats: {
    customizers: {
      // Signed by the provider like any other token, but expired an hour ago.
      jwt: (ctx, token, jwt) => {
        if (token.clientId === 'expired') {
          const now = Math.floor(Date.now() / 1000);
          jwt.payload.iat = now - 7200;
          jwt.payload.exp = now - 3600;
        }
      },
    },
  },
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
        : { scope: 'kms:encrypt read', audience: resource === 'urn:other' ? 'urn:other' : 'urn:api', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
    },
  },
  scopes: ['kms:encrypt', 'read'],
});
const server = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, provider.callback());
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer} kid=${jwk.kid}`);
});
