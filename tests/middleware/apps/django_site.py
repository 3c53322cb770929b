"""A one-module Django project: settings (as the published README shows them), urls, views.

POST /orders is a Django REST framework view when it is installed (else a 404).
"""

import time

from api_analytics.django import Config
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

from tests.middleware.apps import BINARY, SET_COOKIE, STREAM_PAUSE, api_key, configure, echo_body

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
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}
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


def echo(request):
    body = echo_body(request.body)
    return HttpResponse(body, content_type="application/json", headers={"Set-Cookie": SET_COOKIE})


def binary(request):
    return HttpResponse(BINARY, content_type="application/octet-stream")


urlpatterns = [
    path("items/<int:number>", item),
    path("stream", stream),
    path("boom", boom),
    path("echo", echo),
    path("binary", binary),
]

try:
    from rest_framework import serializers
    from rest_framework.response import Response
    from rest_framework.views import APIView
except ImportError:  # no Django REST framework: no /orders
    pass
else:

    class ItemSerializer(serializers.Serializer):
        price = serializers.IntegerField()

    class OrderSerializer(serializers.Serializer):
        items = ItemSerializer(many=True)

    class Orders(APIView):
        def post(self, request):
            OrderSerializer(data=request.data).is_valid(raise_exception=True)
            return Response({"ok": True})

    urlpatterns.append(path("orders", Orders.as_view()))
