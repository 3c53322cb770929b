"""Schemas of the errors API: error groups, their occurrences, their state."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from server.ingest.errors import STATES
from server.stats.filters import PERIODS

PERIOD = fields.String(
    load_default="30d",
    validate=validate.OneOf(list(PERIODS)),
    metadata={"description": "24h, 7d, 30d (default), 6m, 1y or all"},
)


class ErrorsQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    period = PERIOD
    state = fields.String(validate=validate.OneOf(STATES), metadata={"description": "Only these"})
    sort = fields.String(
        load_default="count",
        validate=validate.OneOf(["count", "users", "consumers", "last_seen"]),
    )


class GroupQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    period = PERIOD
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))


class StateSchema(Schema):
    class Meta:
        unknown = RAISE

    state = fields.String(
        required=True,
        validate=validate.OneOf(STATES),
        metadata={"description": "open, resolved (reopened as a regression if it occurs "
                  "again) or ignored"},
    )  # fmt: skip


class TrendPointSchema(Schema):
    t = fields.Integer(metadata={"description": "The bucket's start, epoch seconds"})
    n = fields.Integer()


class ErrorGroupSchema(Schema):
    id = fields.Integer()
    type = fields.String()
    message = fields.String(allow_none=True, metadata={"description": "Numbers and ids as {n}"})
    frame = fields.String(allow_none=True, metadata={"description": "Top in-app frame"})
    route = fields.String(allow_none=True)
    state = fields.String()
    first_seen = fields.AwareDateTime()
    last_seen = fields.AwareDateTime()
    regressed_at = fields.AwareDateTime(
        allow_none=True, metadata={"description": "When it last occurred again after resolved"}
    )
    regressions = fields.Integer(metadata={"description": "Times it occurred again after resolved"})
    resolved_at = fields.AwareDateTime(
        allow_none=True, metadata={"description": "When it was last marked resolved"}
    )
    count = fields.Integer(metadata={"description": "Occurrences in the period"})
    users = fields.Integer(metadata={"description": "Distinct users affected in the period"})
    consumers = fields.Integer(metadata={"description": "Distinct consumers affected"})
    statuses = fields.List(fields.Integer())
    versions = fields.List(fields.String())
    trend = fields.List(fields.Nested(TrendPointSchema))


class FrameSchema(Schema):
    file = fields.String()
    line = fields.Integer()
    function = fields.String()
    in_app = fields.Boolean()


class OccurrenceSchema(Schema):
    at = fields.AwareDateTime()
    method = fields.String()
    path = fields.String()
    status = fields.Integer()
    response_time = fields.Integer()
    consumer = fields.String(allow_none=True)
    user_id = fields.String(allow_none=True)
    version = fields.String(allow_none=True)
    hostname = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    stack = fields.List(fields.Nested(FrameSchema))
    request = fields.Dict(allow_none=True, metadata={"description": "Masked capture"})
    response = fields.Dict(allow_none=True, metadata={"description": "Masked capture"})


class ErrorGroupDetailSchema(ErrorGroupSchema):
    occurrences = fields.List(fields.Nested(OccurrenceSchema))
