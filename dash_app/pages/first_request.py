"""What a key's overview shows until its first request arrives: how to send one, with this
server's address filled in (never the key: it was shown once, and belongs in no page)."""

from __future__ import annotations

from dash import dcc, get_relative_path, html
from flask import request

PLACEHOLDER = "<YOUR-API-KEY>"


def server_url() -> str:
    """This server as the browser reached it (behind a proxy: with TRUST_PROXY set)."""
    return request.host_url.rstrip("/")


def fastapi_snippet(url: str) -> str:
    return (
        "from fastapi import FastAPI\n"
        "from api_analytics.fastapi import Analytics, Config\n\n"
        "config = Config()\n"
        f'config.server_url = "{url}"\n'
        "app = FastAPI()\n"
        f'app.add_middleware(Analytics, api_key="{PLACEHOLDER}", config=config)\n'
    )


def curl_command(url: str) -> str:
    return (
        f"curl -X POST {url}/api/log-request -H 'Content-Type: application/json' -d '{{\n"
        f'  "api_key": "{PLACEHOLDER}", "framework": "FastAPI", "privacy_level": 0,\n'
        '  "requests": [{"hostname": "api.example.com", "ip_address": "8.8.8.8",\n'
        '    "path": "/v1/hello", "user_agent": "curl/8.5", "method": "GET", "status": 200,\n'
        '    "response_time": 12, "user_id": null,\n'
        '    "created_at": "\'"$(date -u +%Y-%m-%dT%H:%M:%S+00:00)"\'"}]}\''
    )


def first_request_note() -> html.Div:
    url = server_url()
    return html.Div(
        [
            html.H3("No requests yet: send the first one"),
            html.P(
                [
                    "Add the middleware to your FastAPI app (",
                    html.Code("pip install ./middleware"),
                    " from this server's checkout, or the published ",
                    html.Code("fastapi-analytics"),
                    "; every other framework is in middleware/README.md), with the key you "
                    f"were shown when it was made in place of {PLACEHOLDER}:",
                ]
            ),
            html.Pre(html.Code(fastapi_snippet(url)), id="first-snippet"),
            html.P("Or send one by hand, and refresh this page a second later:"),
            html.Pre(html.Code(curl_command(url)), id="first-curl"),
            html.P(
                [
                    "Lost the key? ",
                    dcc.Link("Settings", href=get_relative_path("/settings")),
                    " rotates it and shows the new one once.",
                ],
                className="muted",
            ),
        ],
        className="notice first-request",
        id="ov-first-request",
    )
