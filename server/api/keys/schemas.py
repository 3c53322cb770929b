"""Schemas for API keys."""

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from server.keys.api_keys import NAME_MAX, clean_name
from server.keys.invites import DEFAULT_DAYS, LABEL_MAX, MAX_DAYS


class NewKeySchema(Schema):
    api_key = fields.String(
        required=True, metadata={"description": "Shown once; only its hash is stored."}
    )


class RotationSchema(Schema):
    previous_key_valid_until = fields.AwareDateTime(
        allow_none=True,
        metadata={
            "description": "Until when the previous key is still accepted, for ingest only "
            "(null: no previous key in its grace period)"
        },
    )


class KeySchema(Schema):
    """The key as its owner sees it: never the key itself or its hash."""

    name = fields.String(allow_none=True, metadata={"description": "What you call the API"})
    created_at = fields.AwareDateTime()
    last_used_at = fields.AwareDateTime(
        metadata={"description": "Last ingest or dashboard sign-in (updated hourly at most)"}
    )
    rotation = fields.Nested(RotationSchema)


class KeyUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(
        required=True,
        metadata={"description": f"1 to {NAME_MAX} characters", "example": "Shop API"},
    )

    @validates("name")
    def _name(self, value: str, **_kwargs) -> None:
        try:
            clean_name(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class RotatedKeySchema(NewKeySchema, RotationSchema):
    pass


class NewKeyRequestSchema(Schema):
    """What POST /api/keys may carry (nothing at all when sign-up is open)."""

    class Meta:
        unknown = RAISE

    invite = fields.String(
        metadata={
            "description": "An operator's invitation (SIGNUP=invite): the code after "
            "the # of the invite link"
        }  # fmt: skip
    )
    name = fields.String(metadata={"description": f"What you call the API, 1 to {NAME_MAX} "
                                   "characters"})  # fmt: skip

    @validates("name")
    def _name(self, value: str, **_kwargs) -> None:
        try:
            clean_name(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class SessionSchema(Schema):
    """A signed-in dashboard browser of the key: never its token."""

    id = fields.Integer()
    created_at = fields.AwareDateTime()
    last_seen_at = fields.AwareDateTime(metadata={"description": "Updated once a minute at most"})
    user_agent = fields.String(allow_none=True)
    expires_at = fields.AwareDateTime(
        metadata={
            "description": "When it ends unless used again (SESSION_IDLE_DAYS), at the "
            "latest SESSION_MAX_DAYS after its sign-in"
        }  # fmt: skip
    )


class EndedSchema(Schema):
    ended = fields.Integer(metadata={"description": "How many sessions ended"})


# --- the operators' API (ADMIN_TOKEN) ----------------------------------------------------


class AdminKeyRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(metadata={"description": f"1 to {NAME_MAX} characters"})

    @validates("name")
    def _name(self, value: str, **_kwargs) -> None:
        try:
            clean_name(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class AdminNewKeySchema(NewKeySchema):
    id = fields.Integer()
    name = fields.String(allow_none=True)


class AdminKeySchema(Schema):
    id = fields.Integer()
    name = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    last_used_at = fields.AwareDateTime()
    is_demo = fields.Boolean()
    sessions = fields.Integer(metadata={"description": "Open dashboard sessions"})


class InviteRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    label = fields.String(
        validate=validate.Length(max=LABEL_MAX),
        metadata={"description": "Who it is for; the key it makes is named so"},
    )
    days = fields.Integer(
        load_default=DEFAULT_DAYS,
        validate=validate.Range(min=1, max=MAX_DAYS),
        metadata={"description": f"How long it can be used (default {DEFAULT_DAYS})"},
    )


class InviteSchema(Schema):
    id = fields.Integer()
    label = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime()
    used_at = fields.AwareDateTime(allow_none=True)
    key_id = fields.Integer(allow_none=True)
    state = fields.String(metadata={"description": "pending, used, expired or revoked"})


class NewInviteSchema(InviteSchema):
    token = fields.String(metadata={"description": "Shown once; only its hash is stored"})
    path = fields.String(
        metadata={
            "description": "The invite link's path: prefix it with the server's address. "
            "The token rides after the #, which browsers never send to a server"
        }  # fmt: skip
    )
