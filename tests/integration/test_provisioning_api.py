"""The HTTP provisioning API of a real member (`--http`): domains and accounts over JSON,
the foldering switch, the admin password, and clear errors (400 with what is wrong, 401,
404, 405, 409, 413)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sipp import SIPFARM, Member, admin_member
from sippcalls import make_data

pytestmark = pytest.mark.timeout(90)

PASSWORD = "s3cret-admin"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Member, int]]:
    data = make_data(tmp_path / "data", {"bob": "secret"})
    set_password = subprocess.run(
        [str(SIPFARM), "admin", "password", "--password", PASSWORD, "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert set_password.returncode == 0, set_password.stderr
    with admin_member(tmp_path, data) as started:
        yield started


def call(
    target: tuple[Member, int],
    method: str,
    path: str,
    body: object = None,
    *,
    password: str | None = PASSWORD,
    raw: bytes | None = None,
) -> tuple[int, dict[str, object] | None, dict[str, str]]:
    m, port = target
    conn = http.client.HTTPConnection(m.host, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if password is not None:
        token = base64.b64encode(f"admin:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        text = r.read()
        return r.status, (json.loads(text) if text else None), dict(r.getheaders())
    finally:
        conn.close()


def test_domains_and_accounts_round_trip(api: tuple[Member, int]) -> None:
    status, body, _ = call(api, "POST", "/domains", {"domain": "Corp.Example", "fast_storage": 0})
    assert status == 201
    assert body == {
        "domain": "corp.example",
        "account_foldering": "none",
        "fast_storage": 0,
        "domain_foldering": "none",
    }
    assert call(api, "GET", "/domains")[:2] == (200, {"domains": ["corp.example", "example.com"]})
    status, body, _ = call(
        api, "POST", "/domains/corp.example/accounts", {"user": "Jöhn", "password": "pw1"}
    )
    assert status == 201
    assert body == {
        "user": "jöhn",
        "domain": "corp.example",
        "realm": "corp.example",
        "algorithms": ["MD5", "SHA-256"],
    }
    path = f"/domains/corp.example/accounts/{quote('jöhn')}"
    assert call(api, "GET", path)[:2] == (200, body)
    assert call(api, "GET", "/domains/corp.example/accounts")[:2] == (
        200,
        {"accounts": ["jöhn"]},
    )
    assert call(api, "PUT", path + "/password", {"password": "pw2"})[0] == 200
    # the switch while serving: account foldering 1/1, then fast storage
    status, body, _ = call(api, "PATCH", "/domains/corp.example", {"account_foldering": "1/1"})
    assert status == 200 and body is not None
    assert body["account_foldering"] == "1/1"
    assert [mv["moved"] for mv in body["moves"]] == [1]  # type: ignore[index, union-attr]
    assert call(api, "GET", path)[0] == 200  # found where it moved
    assert call(api, "DELETE", path)[:2] == (204, None)
    assert call(api, "GET", path)[0] == 404
    assert call(api, "DELETE", "/domains/corp.example")[:2] == (204, None)
    assert call(api, "GET", "/domains")[:2] == (200, {"domains": ["example.com"]})


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/domains", {"domain": "example.com"}, 409, "exists already"),
        ("POST", "/domains", {}, 400, "missing: domain"),
        ("POST", "/domains", {"domain": "x.example", "colour": 1}, 400, "unknown fields"),
        ("POST", "/domains", {"domain": "../etc"}, 400, ""),
        ("POST", "/domains", {"domain": "y.example", "account_foldering": "9/x"}, 400, "method"),
        ("POST", "/domains", {"domain": "y.example", "fast_storage": "2"}, 400, "integer"),
        ("POST", "/domains", [1, 2], 400, "JSON object"),
        ("GET", "/domains/nowhere.example", None, 404, "no such domain"),
        ("POST", "/domains/nowhere.example/accounts", {"user": "a", "password": "p"}, 404, ""),
        ("POST", "/domains/example.com/accounts", {"user": "bob", "password": "p"}, 409, ""),
        ("POST", "/domains/example.com/accounts", {"user": "carol"}, 400, "missing: password"),
        ("GET", "/domains/example.com/accounts/nobody", None, 404, "no such account"),
        ("PUT", "/domains/example.com/accounts/bob/password", {"password": ""}, 400, "non-empty"),
        ("POST", "/domains/example.com/accounts/bob", None, 405, "takes GET, DELETE"),
        ("GET", "/domains/example.com/things", None, 404, "no such path"),
    ],
)
def test_bad_requests_get_clear_answers(
    api: tuple[Member, int], method: str, path: str, body: object, status: int, says: str
) -> None:
    got, answer, headers = call(api, method, path, body)
    assert got == status, answer
    assert answer is not None and says in str(answer["error"])
    if status == 405:
        assert headers["Allow"] == "GET, DELETE"


def test_a_body_that_is_not_json_or_too_large(api: tuple[Member, int]) -> None:
    status, answer, _ = call(api, "POST", "/domains", raw=b"{nope")
    assert status == 400 and answer is not None and "not JSON" in str(answer["error"])
    status, _, _ = call(api, "POST", "/domains", raw=b" " * (1024 * 1024 + 1))
    assert status == 413


def test_the_admin_password_is_needed_and_health_stays_open(api: tuple[Member, int]) -> None:
    status, answer, headers = call(api, "GET", "/domains", password=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    assert answer == {"error": "the admin password is needed"}
    assert call(api, "GET", "/domains", password="wrong")[0] == 401
    assert call(api, "POST", "/domains", {"domain": "z.example"}, password="wrong")[0] == 401
    assert call(api, "GET", "/health", password=None)[:2] == (200, {"state": "ready"})
    assert call(api, "GET", "/domains")[0] == 200


def test_requests_on_one_connection_are_answered_in_order(api: tuple[Member, int]) -> None:
    m, port = api
    conn = http.client.HTTPConnection(m.host, port, timeout=30)
    token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    try:
        answers = []
        for auth in (None, f"Basic {token}", None):
            conn.request("GET", "/domains", headers={"Authorization": auth} if auth else {})
            r = conn.getresponse()
            answers.append((r.status, json.loads(r.read())))
        conn.request("GET", "/health")
        r = conn.getresponse()
        answers.append((r.status, json.loads(r.read())))
    finally:
        conn.close()
    assert [status for status, _ in answers] == [401, 200, 401, 200]
    assert answers[1][1] == {"domains": ["example.com"]}


def register_status(m: Member, user: str) -> int:
    """The status of a REGISTER for ``user@example.com`` without credentials."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        call_id = f"prov-{user}-{time.monotonic_ns()}"
        sock.sendto(
            (
                f"REGISTER sip:example.com SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{time.monotonic_ns()}\r\n"
                f"Max-Forwards: 70\r\nTo: <sip:{user}@example.com>\r\n"
                f"From: <sip:{user}@example.com>;tag=p1\r\nCall-ID: {call_id}\r\n"
                f"CSeq: 1 REGISTER\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\n"
                f"Content-Length: 0\r\n\r\n"
            ).encode(),
            (m.host, m.port),
        )
        while True:
            data = sock.recv(65535)
            if call_id.encode() in data:
                return int(data.split(b" ", 2)[1])


def test_an_account_added_through_a_member_is_served_there_at_once(
    api: tuple[Member, int],
) -> None:
    """The member caches accounts (30 s, unknown ones too): one provisioned through it
    is challenged at once, not refused from the cache as unknown."""
    m, _ = api
    assert register_status(m, "carol") == 404  # unknown: cached as such
    status, _, _ = call(
        api, "POST", "/domains/example.com/accounts", {"user": "carol", "password": "pw"}
    )
    assert status == 201
    assert register_status(m, "carol") == 401  # known now: challenged


def test_an_accounts_settings_and_aliases(api: tuple[Member, int]) -> None:
    base = "/domains/example.com/accounts"
    assert call(api, "GET", f"{base}/bob/settings")[:2] == (200, {"settings": {}})
    status, body, _ = call(api, "PATCH", f"{base}/bob/settings", {"language": "fr", "max": 2})
    assert (status, body) == (200, {"settings": {"language": "fr", "max": 2}})
    status, body, _ = call(api, "PATCH", f"{base}/bob/settings", {"language": None})
    assert (status, body) == (200, {"settings": {"max": 2}})
    status, body, _ = call(api, "PATCH", f"{base}/bob/settings", {"realm": "elsewhere"})
    assert status == 400 and body is not None and "realm" in str(body["error"])

    assert call(api, "GET", f"{base}/bob/aliases")[:2] == (200, {"aliases": []})
    status, body, _ = call(api, "PUT", f"{base}/bob/aliases", {"aliases": ["Robert", "bobby"]})
    assert (status, body) == (200, {"aliases": ["bobby", "robert"]})
    assert call(api, "POST", base, {"user": "carol", "password": "pw"})[0] == 201
    status, body, _ = call(api, "PUT", f"{base}/carol/aliases", {"aliases": ["robert"]})
    assert status == 409 and body is not None and "alias of bob" in str(body["error"])
    status, body, _ = call(api, "PUT", f"{base}/carol/aliases", {"aliases": ["bob"]})
    assert status == 409, body
    status, body, _ = call(api, "POST", base, {"user": "Robert", "password": "pw"})
    assert status == 409 and body is not None and "alias of bob" in str(body["error"])
    status, body, _ = call(api, "PUT", f"{base}/carol/aliases", {"aliases": "c"})
    assert status == 400 and body is not None and "list of names" in str(body["error"])
    status, _, headers = call(api, "POST", f"{base}/carol/aliases", {"aliases": []})
    assert status == 405 and headers["Allow"] == "GET, PUT"
    assert call(api, "GET", f"{base}/nobody/aliases")[0] == 404
    # Removing the account frees its aliases.
    assert call(api, "DELETE", f"{base}/bob")[0] == 204
    assert call(api, "PUT", f"{base}/carol/aliases", {"aliases": ["robert"]})[:2] == (
        200,
        {"aliases": ["robert"]},
    )


def test_a_drain_wants_the_admin_password_once_one_is_set(api: tuple[Member, int]) -> None:
    assert call(api, "POST", "/not-ready", password=None)[0] == 401
    assert call(api, "POST", "/not-ready", password="wrong")[0] == 401
    assert call(api, "GET", "/health", password=None)[0] == 200  # still ready: not drained
    status, body, _ = call(api, "POST", "/not-ready")
    assert status == 200 and body is not None and body["state"] == "not-ready"
    assert call(api, "GET", "/health", password=None)[0] == 503
    assert call(api, "GET", "/status", password=None)[0] == 200  # the view stays open
    assert call(api, "POST", "/ready")[0] == 200
    assert call(api, "GET", "/health", password=None)[0] == 200


def test_the_cli_drains_with_the_password_from_its_environment(api: tuple[Member, int]) -> None:
    m, port = api
    argv = [str(SIPFARM), "not-ready", "--http", f"{m.host}:{port}"]
    env = {k: v for k, v in os.environ.items() if k != "SIPFARM_ADMIN_PASSWORD"}
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert refused.returncode == 1
    assert "SIPFARM_ADMIN_PASSWORD" in refused.stderr
    env["SIPFARM_ADMIN_PASSWORD"] = PASSWORD
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "not-ready"
