"""A PostgreSQL 18 client logging in with OAUTHBEARER: psycopg, on the libpq 18 its binary
wheel bundles, with an auth-data hook (PQsetAuthDataHook, PQAUTHDATA_OAUTH_BEARER_TOKEN)
set through ctypes, since Debian ships no libpq 18 headers. The hook gets its token from
the OpenID provider over HTTPS (client_credentials, as the client named on the command
line), and records what libpq asked it for.

Usage: python oauthbearer.py <conninfo> <token-url> <client-id> <client-secret> <ca-file>
                             <resource> <scope>
Prints one JSON object: {"ok", "user", "error", "sqlstate", "hook_calls"}.
A token URL of `-` takes the client secret for the token itself (a host that cannot reach
the provider).
"""
import base64
import ctypes
import glob
import json
import os
import ssl
import sys
import urllib.parse
import urllib.request

import psycopg
import psycopg_binary

conninfo, token_url, client_id, client_secret, ca_file, resource, scope = sys.argv[1:8]

# The libpq psycopg already loaded: opening the same file gives the same library, so the
# hook set here is the one psycopg's connections run.
libs = os.path.join(os.path.dirname(os.path.dirname(psycopg_binary.__file__)), "psycopg_binary.libs")
libpq_path = glob.glob(os.path.join(libs, "libpq-*.so*"))[0]
libpq = ctypes.CDLL(libpq_path)
if psycopg.pq.version() < 180000:
    sys.exit(f"libpq {psycopg.pq.version()} has no OAUTHBEARER; psycopg-binary >= 3.3 bundles libpq 18")

PQAUTHDATA_OAUTH_BEARER_TOKEN = 1


class BearerRequest(ctypes.Structure):
    # libpq-fe.h (PostgreSQL 18): PGoauthBearerRequest.
    _fields_ = [
        ("openid_configuration", ctypes.c_char_p),
        ("scope", ctypes.c_char_p),
        ("async_", ctypes.c_void_p),
        ("cleanup", ctypes.c_void_p),
        ("token", ctypes.c_void_p),
        ("user", ctypes.c_void_p),
    ]


HOOK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
libpq.PQdefaultAuthDataHook.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
libpq.PQdefaultAuthDataHook.restype = ctypes.c_int
libpq.PQsetAuthDataHook.argtypes = [HOOK]
libpq.PQsetAuthDataHook.restype = None

calls = []
cached = {}
keep = []  # token buffers stay alive for libpq


def fetch_token():
    context = ssl.create_default_context(cafile=ca_file)
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "resource": resource, "scope": scope}
    ).encode()
    request = urllib.request.Request(token_url, data=form, method="POST")
    basic = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(client_secret)}"
    request.add_header("Authorization", "Basic " + base64.b64encode(basic.encode()).decode())
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        return json.load(answer)["access_token"]


def hook(kind, conn, data):
    if kind != PQAUTHDATA_OAUTH_BEARER_TOKEN:
        return libpq.PQdefaultAuthDataHook(kind, conn, data)
    request = ctypes.cast(data, ctypes.POINTER(BearerRequest)).contents
    calls.append(
        {
            "openid_configuration": (request.openid_configuration or b"").decode(),
            "scope": (request.scope or b"").decode(),
        }
    )
    if "token" not in cached:
        cached["token"] = client_secret if token_url == "-" else fetch_token()
    buffer = ctypes.create_string_buffer(cached["token"].encode())
    keep.append(buffer)
    request.token = ctypes.cast(buffer, ctypes.c_void_p).value
    return 1


hook_function = HOOK(hook)
libpq.PQsetAuthDataHook(hook_function)

result = {"ok": False, "user": None, "error": None, "sqlstate": None}
try:
    with psycopg.connect(conninfo, connect_timeout=10) as conn:
        result["user"] = conn.execute("SELECT current_user").fetchone()[0]
        result["ok"] = True
except psycopg.Error as e:
    result["error"] = str(e).strip()
    result["sqlstate"] = getattr(e, "sqlstate", None)
result["hook_calls"] = calls[:3]
print(json.dumps(result))
