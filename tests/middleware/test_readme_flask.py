"""middleware/README.md's Flask snippet, as pasted: its mappers take the client's address
from a proxy's X-Forwarded-For and from a direct request alike (indexing the header raised
KeyError on every direct request, and those rows lost their IP and country)."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def flask_snippet() -> str:
    text = (ROOT / "middleware" / "README.md").read_text()
    section = text.split("### Flask", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_flask_snippet_maps_direct_and_proxied_requests():
    namespace: dict = {"__name__": "readme_flask_app"}
    exec(compile(flask_snippet(), "middleware/README.md", "exec"), namespace)  # noqa: S102
    app, config = namespace["app"], namespace["config"]
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "203.0.113.7"}) as direct:
        assert config.get_ip_address(direct.request) == "203.0.113.7"
        assert config.get_user_agent(direct.request) == ""
    proxied = {"X-Forwarded-For": "198.51.100.1, 10.0.0.1", "User-Agent": "curl/8.5"}
    with app.test_request_context(
        "/", headers=proxied, environ_base={"REMOTE_ADDR": "10.0.0.1"}
    ) as through_proxy:
        assert config.get_ip_address(through_proxy.request) == "198.51.100.1"
        assert config.get_user_agent(through_proxy.request) == "curl/8.5"
