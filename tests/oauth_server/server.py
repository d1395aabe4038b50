"""A real OAuth 2.0 server for the password-grant tests: django-oauth-toolkit with one
confidential client `gateway` (password and refresh_token grants, rotating refresh
tokens) and one user, served over HTTPS with a certificate from the harness's run CA.
Usage: python server.py <port> <data-dir> <client-secret> <user> <password> <cert> <key>
"""
import os
import sys

port, data_dir, client_secret, username, password, cert_file, key_file = sys.argv[1:8]

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only-" + client_secret,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "oauth2_provider",
    ],
    MIDDLEWARE=[],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(data_dir, "db.sqlite3")}},
    OAUTH2_PROVIDER={
        "ACCESS_TOKEN_EXPIRE_SECONDS": 300,
        "ROTATE_REFRESH_TOKEN": True,
        "PKCE_REQUIRED": False,
    },
    USE_TZ=True,
)
django.setup()

from django.urls import include, path

urlpatterns = [path("o/", include("oauth2_provider.urls", namespace="oauth2_provider"))]

from django.core.management import call_command

call_command("migrate", verbosity=0, interactive=False)

from django.contrib.auth.models import User
from oauth2_provider.models import Application

if not User.objects.filter(username=username).exists():
    User.objects.create_user(username=username, password=password)
if not Application.objects.filter(client_id="gateway").exists():
    Application.objects.create(
        name="gateway",
        client_id="gateway",
        client_secret=client_secret,
        hash_client_secret=False,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_PASSWORD,
    )

import socketserver
import ssl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.wsgi import get_wsgi_application


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Tls(Quiet):
    # The handshake runs in the request's own thread, so a client that never completes
    # one holds only its own thread.
    def setup(self):
        self.request.settimeout(10)
        self.request = context.wrap_socket(self.request, server_side=True)
        super().setup()


def with_length(app):
    # Python's TLS sockets close without close_notify, so a body that ends at the close
    # is indistinguishable from a truncated one (rustls rightly refuses it): say its
    # length instead.
    def wrapped(environ, start_response):
        seen = {}

        def capture(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, headers

        body = b"".join(app(environ, capture))
        headers = [(k, v) for k, v in seen["headers"] if k.lower() != "content-length"]
        start_response(seen["status"], headers + [("Content-Length", str(len(body)))])
        return [body]

    return wrapped


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert_file, key_file)
server = make_server("127.0.0.1", int(port), with_length(get_wsgi_application()), server_class=Server, handler_class=Tls)
print(f"oauth server listening on https://127.0.0.1:{port}", flush=True)
server.serve_forever()
