"""A one-module Django project: settings (as the published README shows them), urls, views."""

import time

from api_analytics.django import Config
from django.http import JsonResponse, StreamingHttpResponse
from django.urls import path

from tests.middleware.apps import STREAM_PAUSE, api_key, configure

config = configure(Config())
ANALYTICS_API_KEY = api_key()
ANALYTICS_CONFIG = config

SECRET_KEY = "test-only"  # noqa: S105
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
USE_TZ = True
INSTALLED_APPS: list = []
DATABASES: dict = {}
MIDDLEWARE = [
    "api_analytics.django.Analytics",  # Add middleware
    "django.middleware.common.CommonMiddleware",
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["console"], "level": "ERROR"}},
}


def item(request, number):
    return JsonResponse({"item": number})


def stream(request):
    def chunks():
        yield b"first\n"
        time.sleep(STREAM_PAUSE)
        yield b"second\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def boom(request):
    raise RuntimeError("boom")


urlpatterns = [
    path("items/<int:number>", item),
    path("stream", stream),
    path("boom", boom),
]
