"""The JSON API: one flask-smorest Api, one blueprint per resource."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint
from flask_smorest import Api as SmorestApi

from server.api.schemas import IngestPayloadSchema

API_SETTINGS = {
    "API_TITLE": "API Analytics",
    "API_VERSION": "1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/docs",
    # Swagger UI's files come from the flask-swagger-ui package, served by us: a
    # self-hosted service calls no CDN, and the page works without internet. Relative,
    # so that it works behind a path prefix too.
    "OPENAPI_SWAGGER_UI_URL": "docs/assets/",
    # No validator badge: it would send the document's URL to validator.swagger.io.
    "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None},
    "API_SPEC_OPTIONS": {
        "info": {
            "description": "Self-hosted analytics and uptime monitoring for web APIs. "
            "Send the API key in the X-AUTH-TOKEN header (never in a URL)."
        },
        "components": {
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-AUTH-TOKEN"}
            }
        },
    },
}


def _describe(errors: dict) -> str:
    """Turn webargs' nested errors into one sentence that names the parameter."""
    parts = []
    for location, fields in errors.items():
        if not isinstance(fields, dict):
            parts.append(f"{location}: {fields}")
            continue
        for name, problems in fields.items():
            text = "; ".join(problems) if isinstance(problems, list) else str(problems)
            noun = "parameter" if location == "query" else "field"
            if text == "Unknown field.":
                parts.append(f"Unknown {noun} '{name}'.")
            else:
                parts.append(f"Invalid {noun} '{name}': {text}")
    return " ".join(parts) or "Invalid request."


class Api(SmorestApi):
    """flask-smorest's Api with a human `message` on every error."""

    def handle_http_exception(self, error):
        payload, code, headers = super().handle_http_exception(error)
        if "message" not in payload:
            errors = payload.get("errors")
            payload["message"] = _describe(errors) if errors else error.description
        return payload, code, headers


def swagger_ui_assets() -> Blueprint:
    """Swagger UI's scripts and styles at /api/docs/assets/, from the installed package."""
    import flask_swagger_ui

    dist = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
    return Blueprint(
        "swagger_ui_assets", __name__, static_folder=str(dist), static_url_path="/api/docs/assets"
    )


def _untyped_no_content(response):
    """A 204 has no body, so no type either (flask-smorest labels every answer JSON)."""
    if response.status_code == 204:
        response.headers.pop("Content-Type", None)
    return response


def init_api(app) -> Api:
    from server.api.alerts.routes import blp as alerts_blp
    from server.api.consumers.routes import blp as consumers_blp
    from server.api.data.routes import blp as data_blp
    from server.api.deploys.routes import blp as deploys_blp
    from server.api.errors.routes import blp as errors_blp
    from server.api.health.routes import blp as health_blp
    from server.api.ingest.routes import blp as ingest_blp
    from server.api.ingest_health.routes import blp as ingest_health_blp
    from server.api.keys.routes import blp as keys_blp
    from server.api.masks.routes import blp as masks_blp
    from server.api.monitors.routes import blp as monitors_blp
    from server.api.otlp.routes import blp as otlp_blp
    from server.api.shares.routes import blp as shares_blp
    from server.api.slos.routes import blp as slos_blp
    from server.api.usage.routes import blp as usage_blp

    for name, value in API_SETTINGS.items():
        app.config.setdefault(name, value)
    api = Api(app)
    api.spec.components.schema("IngestPayload", schema=IngestPayloadSchema)
    blueprints = (keys_blp, ingest_blp, data_blp, errors_blp, consumers_blp, masks_blp,
                  monitors_blp, alerts_blp, shares_blp, health_blp)  # fmt: skip
    blueprints += (slos_blp, deploys_blp, usage_blp, ingest_health_blp)
    for blp in blueprints:
        api.register_blueprint(blp, url_prefix="/api")
    # OTLP/HTTP's own path, so OTEL_EXPORTER_OTLP_ENDPOINT=http://host:port works as is.
    api.register_blueprint(otlp_blp)
    app.register_blueprint(swagger_ui_assets())
    app.after_request(_untyped_no_content)
    app.extensions["smorest_api"] = api
    return api
