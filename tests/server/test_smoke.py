"""Key -> ingest -> worker -> data API, on both backends."""

from datetime import UTC, datetime


def test_ingest_then_read(stack):
    key = stack.new_key()
    now = datetime.now(UTC).isoformat()
    row = {
        "hostname": "api.example.com",
        "ip_address": "8.8.8.8",
        "path": "/v1/users",
        "user_agent": "curl/8.0",
        "method": "GET",
        "status": 200,
        "response_time": 12,
        "user_id": "u1",
        "created_at": now,
    }
    response = stack.client.post(
        "/api/log-request",
        json={"api_key": key, "framework": "FastAPI", "privacy_level": 0, "requests": [row]},
    )
    assert response.status_code == 201, response.get_json()
    stack.process_jobs()
    rows = stack.client.get("/api/data", headers={"X-AUTH-TOKEN": key}).get_json()
    assert len(rows) == 1
    assert rows[0]["location"] == "US"
