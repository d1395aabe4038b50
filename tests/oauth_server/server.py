"""A real OAuth 2.0 server for the password-grant tests: django-oauth-toolkit with one
confidential client `gateway` (password and refresh_token grants, rotating refresh
tokens) and one user. Usage: python server.py <port> <data-dir> <client-secret> <user> <password>
"""
import os
import sys

port, data_dir, client_secret, username, password = sys.argv[1:6]

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

from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.core.wsgi import get_wsgi_application


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", int(port), get_wsgi_application(), handler_class=Quiet)
print(f"oauth server listening on http://127.0.0.1:{port}", flush=True)
server.serve_forever()
