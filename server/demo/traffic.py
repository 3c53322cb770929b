"""The one traffic model of generated data: the demo key's (server.demo.seed) and the
benchmarks' (bench/lake_load.py). An API shop: ~35 templated endpoints with numeric and
32-digit hex ids, three hostnames, 50 countries, real user agents (browsers, apps,
scripts and crawlers), a realistic mix of status codes, log-normal response times.

`user(i, count)` makes the i-th of `count` users the same way for both: four in five
known by their address (a third of those by a user id too), the rest by a user id only,
countries from busiest to rarest, hosts and agents by turns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

COUNTRIES = [
    "US",
    "DE",
    "GB",
    "FR",
    "IN",
    "BR",
    "JP",
    "CA",
    "AU",
    "NL",
    "SE",
    "ES",
    "IT",
    "PL",
    "KR",
    "MX",
    "ID",
    "TR",
    "AR",
    "ZA",
    "NG",
    "EG",
    "KE",
    "CH",
    "AT",
    "BE",
    "DK",
    "NO",
    "FI",
    "IE",
    "PT",
    "GR",
    "CZ",
    "HU",
    "RO",
    "UA",
    "IL",
    "SA",
    "AE",
    "SG",
    "MY",
    "TH",
    "VN",
    "PH",
    "NZ",
    "CL",
    "CO",
    "PE",
    "RU",
    "CN",
]
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "PostmanRuntime/7.37.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "okhttp/4.12.0",
    "Go-http-client/2.0",
)
# (method, template, weight, median ms, sigma); {id} a number, {hex} a 32-digit hex id.
ENDPOINTS = (
    ("GET", "/v1/users/{id}", 9.0, 38, 0.5),
    ("GET", "/v1/users", 5.0, 55, 0.5),
    ("POST", "/v1/users", 1.2, 90, 0.5),
    ("PATCH", "/v1/users/{id}", 0.9, 70, 0.5),
    ("GET", "/v1/users/{id}/orders", 4.0, 80, 0.6),
    ("GET", "/v1/orders/{hex}", 6.0, 45, 0.5),
    ("POST", "/v1/orders", 2.5, 140, 0.6),
    ("GET", "/v1/orders", 3.0, 95, 0.6),
    ("GET", "/v1/products", 8.0, 30, 0.6),
    ("GET", "/v1/products/{id}", 10.0, 18, 0.5),
    ("GET", "/v1/products/{id}/reviews", 2.0, 65, 0.6),
    ("GET", "/v1/categories/{id}/products", 2.2, 48, 0.5),
    ("GET", "/v1/cart", 3.5, 25, 0.5),
    ("POST", "/v1/cart/items", 2.0, 40, 0.5),
    ("DELETE", "/v1/cart/items/{id}", 0.6, 35, 0.5),
    ("POST", "/v1/checkout", 1.0, 420, 0.5),
    ("POST", "/v1/payments", 0.9, 650, 0.45),
    ("GET", "/v1/search", 6.0, 210, 0.7),
    ("GET", "/v1/reports/{id}/export", 0.4, 2400, 0.6),
    ("GET", "/v1/me", 5.0, 15, 0.4),
    ("POST", "/v1/auth/login", 1.5, 180, 0.4),
    ("POST", "/v1/auth/refresh", 2.5, 22, 0.4),
    ("GET", "/v2/users/{id}", 4.0, 24, 0.5),
    ("GET", "/v2/orders/{hex}", 3.0, 30, 0.5),
    ("POST", "/v2/orders", 1.5, 95, 0.5),
    ("GET", "/v2/products/{id}", 5.0, 11, 0.45),
    ("GET", "/v2/search", 3.5, 130, 0.6),
    ("GET", "/v2/recommendations/{id}", 2.0, 340, 0.5),
    ("PUT", "/v2/inventory/{id}", 0.5, 55, 0.5),
    ("GET", "/v3/products/{id}", 1.0, 9, 0.4),
    ("GET", "/health", 6.0, 2, 0.4),
    ("GET", "/status", 1.0, 4, 0.4),
    ("GET", "/docs", 0.5, 8, 0.4),
    ("GET", "/static/app.js", 0.8, 3, 0.3),
)
HOSTS = (("api.acme.dev", 70), ("eu.api.acme.dev", 22), ("staging.acme.dev", 8))
STATUSES = ((200, 820), (201, 40), (204, 20), (304, 15), (400, 25), (401, 20), (403, 8),
            (404, 30), (429, 7), (500, 10), (502, 3), (503, 2))  # fmt: skip


@dataclass(frozen=True)
class User:
    ip: str | None
    user_id: str | None
    country: str
    agent: str
    host: str


def user(i: int, count: int) -> User:
    """The i-th of `count` generated users (bench/lake_load.py writes the same ones)."""
    ip = f"{11 + i % 200}.{(i // 200) % 250}.{(i * 13) % 250}.{1 + i % 249}" if i % 5 else None
    user_id = f"user-{i}" if i % 3 == 0 or ip is None else None
    country = COUNTRIES[min(len(COUNTRIES) - 1, int(len(COUNTRIES) * (i / count) ** 2))]
    host = HOSTS[0][0] if i % 10 < 7 else HOSTS[1][0] if i % 10 < 9 else HOSTS[2][0]
    return User(ip, user_id, country, AGENTS[(i * 7) % len(AGENTS)], host)


def fill(template: str, number: int, hex_seed: int) -> str:
    """A raw path of an endpoint template: {id} a number, {hex} a 32-digit hex id."""
    path = template.replace("{id}", str(number))
    if "{hex}" in path:
        path = path.replace("{hex}", hashlib.md5(str(hex_seed).encode()).hexdigest())  # noqa: S324
    return path
