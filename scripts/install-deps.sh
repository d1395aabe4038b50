#!/usr/bin/env bash
# Installs, on a fresh Debian machine as root, every system package the test suite needs.
# Idempotent: when everything is present it returns in well under a second without apt.
set -euo pipefail

packages=(
  # Kerberos: a throwaway MIT KDC realm (krb5kdc, kdb5_util, kadmin.local) and clients.
  krb5-kdc krb5-admin-server krb5-user libkrb5-dev
  # Build-time needs of libgssapi (bindgen) and other -sys crates.
  libclang-dev pkg-config
  # Real peers started by the test harness.
  postgresql postgresql-client redis-server
  # redis-cli: joins the harness's Redis Clusters (redis-server depends on it today;
  # named so the harness does not rest on that).
  redis-tools
  # The PostgreSQL JDBC driver (Maven Central is not reachable here).
  libpostgresql-jdbc-java
  # Python clients (psycopg) live in a venv.
  python3-venv python3-pip
  # curl with GSS-API, for the SPNEGO test.
  curl
  # HTTP load generator for the auth-axum benchmark.
  wrk
  # Test hosts in network namespaces (ip netns, veth), for clients that are not loopback.
  iproute2
  # A real reverse proxy in front of the gateway (PROXY protocol v1/v2, TLS termination,
  # X-Forwarded-For), for the proxied-clients tests and the proxy benchmark.
  haproxy
  # Rotates the gateway's audit log in the rotation test, as deployments do.
  logrotate
  # A real Prometheus scrapes a running gateway's /metrics in the metrics test.
  prometheus
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# psycopg 3 (client tests), django-oauth-toolkit (the password-grant server), grpcio
# with reflection (the gRPC client tests) and matplotlib (the operator's picture,
# scripts/operator-picture.py) live in their own venv (PyPI), created once.
venv="${AUTH_TEST_VENV:-/opt/auth-tests/venv}"
install_venv() {
  # psycopg-binary 3.3 bundles libpq 18, the first that speaks OAUTHBEARER.
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import psycopg, oauth2_provider, grpc, grpc_reflection, matplotlib; assert psycopg.pq.version() >= 180000' 2>/dev/null; then
    return 0
  fi
  echo "install-deps: creating $venv with psycopg, django-oauth-toolkit and grpcio"
  mkdir -p "$(dirname "$venv")"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'psycopg>=3.3' 'psycopg-binary>=3.3' \
    'django>=5,<6' 'django-oauth-toolkit>=3' \
    'grpcio>=1.60' 'grpcio-reflection>=1.60' 'protobuf>=4.25' \
    'matplotlib>=3.8'
}

# node oidc-provider, the real OpenID provider of the OAuth tests.
node_dir="${AUTH_TEST_NODE:-/opt/auth-tests/node}"
install_node() {
  if [ -f "$node_dir/node_modules/oidc-provider/package.json" ]; then
    return 0
  fi
  echo "install-deps: installing oidc-provider into $node_dir"
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --silent --no-audit --no-fund 'oidc-provider@9' >/dev/null
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} system packages present"
  install_venv
  install_node
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run this script as root" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages start system-wide daemons; tests run their own on private ports instead.
for svc in redis-server postgresql krb5-kdc krb5-admin-server haproxy prometheus prometheus-node-exporter; do
  if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
install_venv
install_node
echo "install-deps: done"
