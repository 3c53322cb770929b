"""A flask-smorest Blueprint that answers bad or unknown parameters with 400, not 422, and
documents an endpoint that takes the API key in one line."""

from __future__ import annotations

import flask_smorest
from flask_smorest.error_handler import ErrorSchema
from marshmallow import RAISE
from webargs.flaskparser import FlaskParser

UNAUTHORISED = "Missing, unknown or revoked key."


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400
    # An unknown query parameter is a typo the caller needs to hear about.
    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE,
        "querystring": RAISE,
    }


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()

    def keyed(self, unauthorised: str = UNAUTHORISED):
        """The endpoint takes the key in X-AUTH-TOKEN (server.auth.require_key): the
        document says so, with the 401 it answers without one."""

        def decorate(view):
            view = self.alt_response(401, schema=ErrorSchema, description=unauthorised)(view)
            return self.doc(security=[{"ApiKey": []}])(view)

        return decorate
