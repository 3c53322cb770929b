"""Schemas for API keys."""

from marshmallow import RAISE, Schema, ValidationError, fields, validates

NAME_MAX = 100


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
        if not value.strip():
            raise ValidationError("The name is empty: give 1 to 100 characters.")
        if len(value.strip()) > NAME_MAX:
            raise ValidationError(
                f"The name is {len(value.strip())} characters long: at most {NAME_MAX}."
            )


class RotatedKeySchema(NewKeySchema, RotationSchema):
    pass
