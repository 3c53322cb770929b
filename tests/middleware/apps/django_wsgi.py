"""The Django project's WSGI application, for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.middleware.apps.django_site")
application = get_wsgi_application()
