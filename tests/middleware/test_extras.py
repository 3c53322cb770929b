"""The optional fields' pieces on their own, and a row without them as it was before.

Exceptions, validation errors, masking, consumers, sampling, and their settings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sysconfig
import weakref
from pathlib import Path

import pytest
from api_analytics.capture import Extra, Settings, Side, exception_info
from api_analytics.extras import consumer_value, side_json
from api_analytics.failures import frame_file, validation_errors
from api_analytics.fastapi import Config
from api_analytics.masking import mask_body, mask_headers, mask_query
from api_analytics.recorder import Adapter
from api_analytics.records import RowFormatter

BASE = {"hostname", "ip_address", "path", "user_agent", "method", "status", "response_time",
        "user_id", "created_at"}  # fmt: skip


def settings(**fields) -> Settings:
    return Settings(Config(**fields))


def row(extra: Extra | None) -> dict:
    [found] = RowFormatter().to_rows([(1.0, 1.002, "GET", "/", 200, b"h", None, None, None,
                                       extra)])  # fmt: skip
    return found


def test_a_row_without_extras_is_what_the_client_sent_before():
    assert set(row(None)) == BASE
    assert set(row(Extra(settings()))) == BASE  # an Extra with nothing in it adds nothing
    extra = Extra(settings())
    extra.consumer = "cus_1"
    assert row(extra)["consumer"] == "cus_1" and set(row(extra)) == BASE | {"consumer"}


def test_a_failing_extra_loses_only_its_own_fields(caplog):
    broken = Extra(settings())
    broken.exception = ("T", None, [None])  # a frame that cannot be read
    assert set(row(broken)) == BASE
    assert "formatting a row's extras failed" in caplog.text


# --------------------------------------------------------------------------- exceptions


class Canary:
    pass


def _fail(depth: int, canary: Canary) -> None:
    if depth:
        _fail(depth - 1, canary)
    raise KeyError("x" * 2000)


def test_an_exception_is_read_without_keeping_its_frames():
    def run() -> tuple[tuple, weakref.ref]:
        canary = Canary()
        try:
            _fail(80, canary)
        except KeyError as exc:
            return exception_info(exc), weakref.ref(canary)
        raise AssertionError("unreachable")

    (kind, message, frames), ref = run()
    assert ref() is None  # the frames (and the canary in their locals) are gone already
    assert kind == "KeyError" and len(message) == 1024  # builtins bare; cut to 1,024
    assert len(frames) == 50 and frames[-1][2] == "_fail"  # the last 50, raiser last
    assert all(type(part) in (str, int) for frame in frames for part in frame)


def test_a_qualified_type_name_and_an_empty_message():
    class Declined(Exception):
        pass

    kind, message, _ = exception_info(Declined())
    assert kind == f"{__name__}.test_a_qualified_type_name_and_an_empty_message.<locals>.Declined"
    assert message is None


def test_frames_are_the_apps_own_or_not():
    stdlib = os.path.join(sysconfig.get_paths()["stdlib"], "json", "decoder.py")
    assert frame_file(stdlib) == (stdlib, False)
    assert frame_file(json.__file__)[1] is False
    assert frame_file(pytest.__file__)[1] is False  # site-packages
    assert frame_file(__file__) == ("tests/middleware/test_extras.py", True)
    import api_analytics.asgi

    assert frame_file(api_analytics.asgi.__file__) == ("middleware/api_analytics/asgi.py", False)
    assert frame_file("<frozen importlib._bootstrap>") == ("<frozen importlib._bootstrap>", False)
    assert frame_file("handle_request") == ("handle_request", False)  # compiled, no file


# --------------------------------------------------------------------------- validation


class ErrorDetail(str):
    """What Django REST framework's messages are: strings with a code."""

    def __new__(cls, text: str, code: str):
        made = super().__new__(cls, text)
        made.code = code
        return made


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"detail": [{"loc": ["query", "limit"], "type": "missing", "msg": "m", "input": "v"}]},
         [("query.limit", "missing")]),
        ({"extra": [{"message": "Expected `int`, got `str`", "key": "items[0].price",
                     "source": "body"}]}, [("body.items.0.price", "type")]),
        ({"errors": {"json": {"items": {"0": {"price": ["Not a valid integer."]}}},
                     "query": {"page": ["Missing data for required field."]},
                     "headers": {"x-id": ["bad"]}, "cookies": {"sid": ["bad"]},
                     "path": {"id": ["bad"]}}},
         [("body.items.0.price", "invalid"), ("query.page", "missing"), ("header.x-id", "invalid"),
          ("cookie.sid", "invalid"), ("path.id", "invalid")]),
        ({"price": ["A valid integer is required."], "non_field_errors": ["no"],
          "items": [{"qty": ["This field is required."]}, {}]},
         [("body.price", "invalid"), ("body", "invalid"), ("body.items.0.qty", "missing")]),
        ({"title": "Request data failed validation",
          "description": "'price' is a required property"}, [("body.price", "missing")]),
        ({"title": "Request data failed validation", "description": "3 is not 'x'"},
         [("body", "invalid")]),
        ({"detail": "Not found."}, None),
        ({"error": "bad request"}, None),
    ],
)  # fmt: skip
def test_validation_errors_from_every_known_shape(answer, expected):
    found = validation_errors(json.dumps(answer).encode())
    assert (found and [(e["location"], e["type"]) for e in found]) == expected
    for entry in found or []:
        assert set(entry) == {"location", "type"}  # never the value sent


def test_validation_errors_keep_the_codes_of_rest_frameworks_data_and_at_most_100():
    data = {"price": [ErrorDetail("A valid integer is required.", "invalid")],
            "name": [ErrorDetail("This field may not be blank.", "blank")]}  # fmt: skip
    assert validation_errors(data) == [
        {"location": "body.price", "type": "invalid"},
        {"location": "body.name", "type": "blank"},
    ]
    many = {"detail": [{"loc": ["body", f"f{n}"], "type": "missing"} for n in range(150)]}
    assert len(validation_errors(json.dumps(many).encode())) == 100
    assert validation_errors(b"<html>400</html>") is None
    assert validation_errors(b'{"detail": [') is None  # cut off at the size limit


# --------------------------------------------------------------------------- masking


def test_headers_are_masked_by_name_and_by_the_owners_patterns():
    own = settings(mask_headers=["^x-session"])
    pairs = [(b"Authorization", b"Bearer a"), ("X-API-Key", "k"), ("X-Refresh-Token", "t"),
             ("X-Session-Id", "s"), ("Accept", "*/*"), ("Cookie", "c=1")]  # fmt: skip
    assert json.loads(mask_headers(pairs, own)) == [
        ["authorization", "[masked]"], ["x-api-key", "[masked]"],
        ["x-refresh-token", "[masked]"], ["x-session-id", "[masked]"], ["accept", "*/*"],
        ["cookie", "[masked]"],
    ]  # fmt: skip


def test_query_strings_keep_every_byte_but_the_secrets():
    own = settings(mask_query_params=["^sig$"]).query_masks
    assert mask_query("page=2&token=abc&sig=x&signal=1&flag", own) == (
        "page=2&token=[masked]&sig=[masked]&signal=1&flag"
    )
    assert mask_query("pass%77ord=x&a=b", ()) == "pass%77ord=[masked]&a=b"  # decoded names


def test_bodies_are_masked_at_any_depth_as_json_form_or_text():
    own = settings(mask_body_fields=["^pin$"])
    body = {"user": {"password": "p", "profile": {"cardNumber": "4242"}, "pin": "1"},
            "list": [{"api_key": "k"}, {"ok": 1}], "password_hint": None}  # fmt: skip
    masked = json.loads(mask_body(json.dumps(body), "application/json", own))
    assert masked["user"] == {
        "password": "[masked]", "profile": {"cardNumber": "[masked]"}, "pin": "[masked]"
    }  # fmt: skip
    assert masked["list"] == [{"api_key": "[masked]"}, {"ok": 1}]
    assert masked["password_hint"] is None  # nothing there to hide
    plain = '{"a":  1, "b": [1, 2]}'
    assert mask_body(plain, "application/json", settings()) == plain  # nothing: as sent
    escaped = '{"pass\\u0077ord": "x"}'  # an escape hides the name from a plain search
    assert json.loads(mask_body(escaped, None, settings())) == {"password": "[masked]"}
    form = "user=a&password=b&next=%2F"
    assert mask_body(form, "application/x-www-form-urlencoded", own) == (
        "user=a&password=[masked]&next=%2F"
    )
    cut = '{"email": "a@b.c", "password": "hunter'  # JSON cut at body_max_bytes
    assert "hunter" not in mask_body(cut, "application/json", own)
    assert mask_body("token=abc; user=x", "text/plain", own) == "token=[masked]; user=x"


# --------------------------------------------------------------------------- consumers


def test_consumers_are_an_id_or_an_object_cut_to_the_servers_limits(caplog):
    own = settings()
    assert consumer_value("cus_1", own) == "cus_1"
    assert consumer_value(42, own) == "42"
    assert consumer_value({"id": "c", "name": "n" * 300, "group": "g" * 200}, own) == {
        "id": "c", "name": "n" * 255, "group": "g" * 100,
    }  # fmt: skip
    assert consumer_value({"name": "no id"}, own) is None
    assert consumer_value("x" * 256, own) is None
    assert caplog.text.count("get_consumer returned no id") == 1  # logged once


# --------------------------------------------------------------------------- bodies


def _side(kind: str, data: bytes, own: Settings, content_type: str = "application/json"):
    side = Side()
    side.body = True
    side.whole_body(own, True, content_type, data)
    return json.loads(side_json(side, kind, own))


def test_mask_body_may_rewrite_drop_or_fail_and_is_logged_once(caplog):
    def callback(kind: str, body: str) -> str | None:
        if "fail" in body:
            raise RuntimeError("a secret in the message")
        return None if "drop" in body else f"{kind}:{body}"

    own = settings(mask_body=callback)
    assert _side("request", b'{"a": 1}', own)["body"] == 'request:{"a": 1}'
    assert _side("response", b"drop", own)["body_omitted"] == "dropped"
    for _ in range(2):
        failed = _side("request", b"fail", own)
        assert (failed["body"], failed["body_omitted"], failed["body_size"]) == (None, "dropped", 4)
    assert caplog.text.count("mask_body raised RuntimeError") == 1
    assert "a secret in the message" not in caplog.text


def test_bodies_over_the_limit_are_cut_and_binary_ones_left_out():
    own = settings(body_max_bytes=10)
    cut = _side("request", b'{"text": "' + b"a" * 100 + b'"}', own)
    assert (cut["body"], cut["body_truncated"], cut["body_size"]) == ('{"text": "', True, 112)
    binary = _side("response", b"\x00" * 30, own, "image/png")
    assert (binary["body"], binary["body_omitted"], binary["body_size"]) == (None, "binary", 30)
    assert binary["body_type"] == "image/png"


# --------------------------------------------------------------------------- settings


def test_sampling_decides_the_same_way_for_the_same_request():
    half = settings(body_sample_rate=0.5)
    decisions = [half.sampled("GET", "/a", b"q=1", 100.0 + n / 1000) for n in range(1000)]
    assert decisions == [half.sampled("GET", "/a", b"q=1", 100.0 + n / 1000) for n in range(1000)]
    assert 400 < sum(decisions) < 600
    assert not settings(body_sample_rate=0).sampled("GET", "/", "", 1.0)
    assert settings().sampled("GET", "/", "", 1.0)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("body_max_bytes", 0, "body_max_bytes must be between 1 and 65536"),
        ("body_max_bytes", 70_000, "body_max_bytes must be between 1 and 65536"),
        ("body_sample_rate", 1.5, "body_sample_rate must be a number from 0 to 1"),
        ("mask_headers", ["("], "mask_headers: '(' is not a regular expression"),
        ("mask_body_fields", "password", "mask_body_fields must be a list"),
        ("mask_body", "no", "mask_body must be a function"),
        ("log_request_body", 1, "log_request_body must be True or False"),
        ("get_consumer", "no", "get_consumer must be a function of the request"),
    ],
)
def test_wrong_capture_settings_disable_the_middleware_with_one_error(caplog, field, value, error):
    config = Config()
    setattr(config, field, value)
    with caplog.at_level(logging.ERROR):
        assert Adapter("Test", Config).recorder("key", config) is None
    assert error in caplog.text


def test_capture_off_costs_the_recorder_nothing_to_decide():
    recorder = Adapter("Test", Config).recorder("key", Config())
    assert recorder.capture is None and recorder.settings.exceptions
    on = Adapter("Test", Config).recorder("key", Config(log_response_headers=True))
    assert on.capture is on.settings


@pytest.mark.parametrize("capture", [True, False])
def test_capture_exceptions_false_leaves_the_exception_out(collector, capture):
    from api_analytics.fastapi import Analytics

    from .support import fast_config

    async def app(scope, receive, send):
        raise LookupError("gone")

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    config = fast_config(collector.url, capture_exceptions=capture)
    middleware = Analytics(app, api_key="k", config=config)
    scope = {"type": "http", "method": "GET", "path": "/gone", "headers": [],
             "client": ("192.0.2.1", 5000), "server": ("api.test", 80)}  # fmt: skip
    with pytest.raises(LookupError):
        asyncio.run(middleware(scope, receive, send))
    [found] = collector.wait_for_rows(1)
    assert found["status"] == 500
    if capture:
        assert (found["exception"]["type"], found["exception"]["message"]) == (
            "LookupError",
            "gone",
        )
        assert found["exception"]["stack"][-1]["function"] == "app"
    else:
        assert set(found) == BASE


def test_the_readme_examples_of_the_capture_section_run_and_configure_a_recorder():
    from .conftest import MIDDLEWARE_DIR

    readme = (Path(MIDDLEWARE_DIR) / "README.md").read_text()
    section = readme.split("## Errors, payloads and consumers", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```python\n")[1:]
    assert len(blocks) == 2
    for block in blocks:
        scope: dict = {}
        exec(block.split("```", 1)[0], scope)  # noqa: S102 - our own README's code
        assert Adapter("Test", Config).recorder("key", scope["config"]) is not None
    own = Settings(scope["config"])
    assert own.mask_body("response", '{"statement": 1}') is None
    assert own.mask_body("request", "card 4242424242424242") == "card [card]"
