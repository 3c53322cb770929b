"""A flask-smorest Blueprint that answers bad or unknown parameters with 400, not 422."""

from __future__ import annotations

import flask_smorest
from marshmallow import RAISE
from webargs.flaskparser import FlaskParser


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
