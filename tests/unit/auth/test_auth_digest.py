"""`sipfarm.auth.digest`: RFC 7616 responses, challenges, and every verdict of `verify`.

Requests are literal REGISTER / INVITE bytes; the UA side is a small helper here that
reads the challenge and answers it as a phone would, computing its hashes with
hashlib itself (not with the code under test).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mail.settings import ha1
from sipfarm.auth import AuthResult, DigestAuth, Verdict, digest_response
from sipfarm.auth.credentials import read_credentials
from sipfarm.sip import Request, SipError, parse, parse_auth

pytestmark = pytest.mark.timeout(60)

SECRET = b"farm-wide secret, 32 bytes long!"
REALM = "example.com"
NOW = 1_700_000_000.0
PASSWORDS = {"alice": "wonderland", "bob": "builder"}

REGISTER = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:alice@example.com>\r\n"
    b"From: <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33\r\n"
    b"CSeq: %d REGISTER\r\n"
    b"Contact: <sip:alice@192.0.2.10:5060>\r\n"
    b"%s"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.10>\r\n"
    b"%s"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def make_auth(**kwargs: object) -> DigestAuth:
    return DigestAuth(SECRET, **kwargs)  # type: ignore[arg-type]


def ha1_of(username: str, algorithm: str) -> str | None:
    password = PASSWORDS.get(username)
    return None if password is None else ha1(algorithm, username, REALM, password)


def register(*auth_lines: str, cseq: int = 1, template: bytes = REGISTER) -> Request:
    lines = b"".join(b"%s\r\n" % line.encode() for line in auth_lines)
    msg = parse(template % (cseq, lines) if template is REGISTER else template % lines)
    assert isinstance(msg, Request)
    return msg


def invite(*auth_lines: str) -> Request:
    return register(*auth_lines, template=INVITE)


_CLIENT_HASH = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def ua_answer(
    challenge: str,
    *,
    username: str = "alice",
    password: str | None = None,
    method: str = "REGISTER",
    uri: str = "sip:example.com",
    nc: int = 1,
    cnonce: str = "0a4f113b",
    header: str = "Authorization",
) -> str:
    """What a UA writes back for ``challenge`` (RFC 7616 §3.4), as one header line."""
    c = parse_auth(challenge)
    realm, nonce = c.get("realm"), c.get("nonce")
    algorithm = c.get("algorithm") or "MD5"
    assert realm is not None and nonce is not None
    base = algorithm.removesuffix("-sess")
    h = _CLIENT_HASH[base]

    def hx(text: str) -> str:
        return h(text.encode()).hexdigest()

    secret = PASSWORDS.get(username, "x") if password is None else password
    a1 = hx(f"{username}:{realm}:{secret}")
    if algorithm.endswith("-sess"):
        a1 = hx(f"{a1}:{nonce}:{cnonce}")
    a2 = hx(f"{method}:{uri}")
    if c.get("qop") is None:
        response = hx(f"{a1}:{nonce}:{a2}")
        return (
            f'{header}: Digest username="{username}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}", algorithm={algorithm}'
        )
    response = hx(f"{a1}:{nonce}:{nc:08x}:{cnonce}:auth:{a2}")
    return (
        f'{header}: Digest username="{username}", realm="{realm}", nonce="{nonce}", '
        f'uri="{uri}", response="{response}", algorithm={algorithm}, '
        f'cnonce="{cnonce}", qop=auth, nc={nc:08x}'
    )


def verify(auth: DigestAuth, request: Request, now: float = NOW, proxy: bool = False) -> AuthResult:
    return auth.verify(request, REALM, now, ha1_of, proxy=proxy)


# -- the RFC examples ----------------------------------------------------------------------

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example(algorithm: str, expected: str) -> None:
    # RFC 7616 §3.9.1: Mufasa / "Circle of Life", GET /dir/index.html
    secret = ha1(algorithm, "Mufasa", "http-auth@example.org", "Circle of Life")
    got = digest_response(
        algorithm,
        secret,
        RFC7616_NONCE,
        "GET",
        "/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce=RFC7616_CNONCE,
    )
    assert got == expected


def test_rfc2617_example() -> None:
    # RFC 2617 §3.5, the MD5 example RFC 7616 kept
    secret = ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    got = digest_response(
        "MD5",
        secret,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "GET",
        "/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert got == "6629fae49393a05397450978507c4ef1"


def test_rfc2069_form_without_qop() -> None:
    a1 = hashlib.md5(b"u:r:p").hexdigest()
    a2 = hashlib.md5(b"REGISTER:sip:r").hexdigest()
    expected = hashlib.md5(f"{a1}:n:{a2}".encode()).hexdigest()
    assert digest_response("MD5", a1, "n", "REGISTER", "sip:r") == expected


# -- challenges ------------------------------------------------------------------------------


def test_challenge_values() -> None:
    auth = make_auth(random=lambda n: bytes(n))
    values = auth.challenge(REALM, NOW)
    nonce = parse_auth(values[0]).get("nonce")
    assert nonce is not None and len(nonce) == 43
    assert values == (
        f'Digest realm="example.com", nonce="{nonce}", algorithm=MD5, qop="auth"',
        f'Digest realm="example.com", nonce="{nonce}", algorithm=SHA-256, qop="auth"',
    )


def test_challenge_stale_order_and_no_qop() -> None:
    auth = make_auth(algorithms=("SHA-256", "MD5-sess"), qop=False)
    values = auth.challenge('a "quoted" realm', NOW, stale=True)
    assert [parse_auth(v).get("algorithm") for v in values] == ["SHA-256", "MD5-sess"]
    for v in values:
        c = parse_auth(v)
        assert c.scheme == "Digest"
        assert c.get("realm") == 'a "quoted" realm'
        assert c.get("stale") == "true"
        assert c.get("qop") is None


def test_each_challenge_has_a_new_nonce() -> None:
    auth = make_auth()
    a, b = (parse_auth(auth.challenge(REALM, NOW)[0]).get("nonce") for _ in range(2))
    assert a != b


@pytest.mark.parametrize(
    "kwargs",
    [{"algorithms": ()}, {"algorithms": ("MD4",)}, {"algorithms": ("MD5", "md5")}],
)
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_auth(**kwargs)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        DigestAuth(b"short")


# -- verdicts --------------------------------------------------------------------------------


def test_no_credentials_challenge() -> None:
    assert verify(make_auth(), register()) == AuthResult(
        Verdict.CHALLENGE, None, "No credentials for the realm"
    )


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
def test_round_trip_accepts(algorithm: str) -> None:
    auth = make_auth(algorithms=("MD5", "SHA-256", "MD5-sess", "SHA-256-sess"))
    challenges = {parse_auth(v).get("algorithm"): v for v in auth.challenge(REALM, NOW)}
    request = register(ua_answer(challenges[algorithm]), cseq=2)

    assert verify(auth, request, NOW + 1) == AuthResult(Verdict.ACCEPT, "alice", "Accepted")


def test_round_trip_without_qop_serves_one_request() -> None:
    # RFC 2069 phones: no qop, no nc, no cnonce
    auth = make_auth(qop=False)
    challenge = auth.challenge(REALM, NOW)[0]
    line = ua_answer(challenge)
    assert "qop" not in line

    assert verify(auth, register(line, cseq=2)).verdict is Verdict.ACCEPT
    assert verify(auth, register(line, cseq=2)).verdict is Verdict.ACCEPT  # retransmission
    assert verify(auth, register(line, cseq=3)).verdict is Verdict.STALE  # no count: one use


def test_client_may_omit_qop_when_offered() -> None:
    auth = make_auth()
    no_qop = auth.challenge(REALM, NOW)[0].replace(', qop="auth"', "")
    assert verify(auth, register(ua_answer(no_qop), cseq=2)).verdict is Verdict.ACCEPT


def test_wrong_password_is_forbidden() -> None:
    auth = make_auth()
    request = register(ua_answer(auth.challenge(REALM, NOW)[0], password="guess"), cseq=2)
    assert verify(auth, request) == AuthResult(Verdict.FORBIDDEN, "alice", "Wrong digest")


def test_unknown_user_is_forbidden() -> None:
    auth = make_auth()
    request = register(ua_answer(auth.challenge(REALM, NOW)[0], username="mallory"), cseq=2)
    assert verify(auth, request) == AuthResult(Verdict.FORBIDDEN, "mallory", "Unknown user")


def test_ha1_of_is_asked_for_the_base_algorithm() -> None:
    asked: list[tuple[str, str]] = []

    def lookup(username: str, algorithm: str) -> str | None:
        asked.append((username, algorithm))
        return ha1_of(username, algorithm)

    auth = make_auth(algorithms=("SHA-256-sess",))
    request = register(ua_answer(auth.challenge(REALM, NOW)[0]), cseq=2)
    assert auth.verify(request, REALM, NOW, lookup, proxy=False).verdict is Verdict.ACCEPT
    assert asked == [("alice", "SHA-256")]


def test_old_nonce_is_stale() -> None:
    auth = make_auth()
    request = register(ua_answer(auth.challenge(REALM, NOW)[0]), cseq=2)
    assert verify(auth, request, NOW + 300).verdict is Verdict.ACCEPT
    request = register(ua_answer(auth.challenge(REALM, NOW)[0]), cseq=3)
    assert verify(auth, request, NOW + 301) == AuthResult(Verdict.STALE, "alice", "Stale nonce")


def test_old_nonce_with_wrong_password_is_a_plain_challenge() -> None:
    # RFC 7616 §3.3: stale=true only when the digest was right
    auth = make_auth()
    request = register(ua_answer(auth.challenge(REALM, NOW)[0], password="guess"), cseq=2)
    assert verify(auth, request, NOW + 400).verdict is Verdict.CHALLENGE


def test_nonce_from_the_future_is_not_ours() -> None:
    auth = make_auth()
    request = register(ua_answer(auth.challenge(REALM, NOW + 60)[0]), cseq=2)
    assert verify(auth, request, NOW).verdict is Verdict.CHALLENGE


@pytest.mark.parametrize(
    "nonce",
    [
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "",
        "é" * 43,
    ],
)
def test_foreign_nonce_is_challenged(nonce: str) -> None:
    challenge = f'Digest realm="{REALM}", nonce="{nonce}", algorithm=MD5, qop="auth"'
    result = verify(make_auth(), register(ua_answer(challenge), cseq=2))
    assert result == AuthResult(Verdict.CHALLENGE, "alice", "Unknown nonce")


def test_forged_nonce_is_challenged() -> None:
    auth = make_auth()
    challenge = auth.challenge(REALM, NOW)[0]
    nonce = parse_auth(challenge).get("nonce")
    assert nonce is not None
    # one character of the tag changed: the UA computes a right digest for it
    forged = nonce[:30] + ("B" if nonce[30] == "A" else "A") + nonce[31:]
    request = register(ua_answer(challenge.replace(nonce, forged)), cseq=2)
    assert verify(auth, request).verdict is Verdict.CHALLENGE


def test_nonce_of_another_realm_is_challenged() -> None:
    auth = make_auth()
    challenge = auth.challenge("other.example.com", NOW)[0].replace("other.example.com", REALM)
    assert verify(auth, register(ua_answer(challenge), cseq=2)).verdict is Verdict.CHALLENGE


def test_another_member_with_the_same_secret_accepts() -> None:
    issuer, other = make_auth(), make_auth()
    request = register(ua_answer(issuer.challenge(REALM, NOW)[0]), cseq=2)
    assert verify(other, request, NOW + 2).verdict is Verdict.ACCEPT


def test_a_different_secret_challenges() -> None:
    issuer, other = make_auth(), DigestAuth(b"another farm's secret, 32 bytes!")
    request = register(ua_answer(issuer.challenge(REALM, NOW)[0]), cseq=2)
    assert verify(other, request, NOW + 2).verdict is Verdict.CHALLENGE


def test_nonce_count_must_grow() -> None:
    auth = make_auth()
    challenge = auth.challenge(REALM, NOW)[0]
    assert verify(auth, register(ua_answer(challenge, nc=1), cseq=2)).verdict is Verdict.ACCEPT
    replay = register(ua_answer(challenge, nc=1), cseq=3)
    assert verify(auth, replay) == AuthResult(Verdict.STALE, "alice", "Nonce count replayed")
    assert verify(auth, register(ua_answer(challenge, nc=2), cseq=4)).verdict is Verdict.ACCEPT
    assert verify(auth, register(ua_answer(challenge, nc=5), cseq=5)).verdict is Verdict.ACCEPT
    assert verify(auth, register(ua_answer(challenge, nc=3), cseq=6)).verdict is Verdict.STALE


def test_exact_retransmission_is_accepted_again() -> None:
    auth = make_auth()
    line = ua_answer(auth.challenge(REALM, NOW)[0])
    assert verify(auth, register(line, cseq=2)).verdict is Verdict.ACCEPT
    # the 200 was lost: the phone sends the same REGISTER again
    assert verify(auth, register(line, cseq=2), NOW + 0.5).verdict is Verdict.ACCEPT
    assert verify(auth, register(line, cseq=2), NOW + 4).verdict is Verdict.ACCEPT


def test_retransmission_with_another_contact_is_a_replay() -> None:
    auth = make_auth()
    line = ua_answer(auth.challenge(REALM, NOW)[0])
    assert verify(auth, register(line, cseq=2)).verdict is Verdict.ACCEPT
    data = bytes(register(line, cseq=2)).replace(b"192.0.2.10:5060>", b"203.0.113.66:5060>")
    hijack = parse(data)
    assert isinstance(hijack, Request)
    assert verify(auth, hijack).verdict is Verdict.STALE


def test_replay_after_a_higher_count_is_refused_even_if_identical() -> None:
    auth = make_auth()
    challenge = auth.challenge(REALM, NOW)[0]
    first = register(ua_answer(challenge, nc=1), cseq=2)
    assert verify(auth, first).verdict is Verdict.ACCEPT
    assert verify(auth, register(ua_answer(challenge, nc=2), cseq=3)).verdict is Verdict.ACCEPT
    assert verify(auth, first).verdict is Verdict.STALE


def test_proxy_authorization() -> None:
    auth = make_auth()
    challenge = auth.challenge(REALM, NOW)[0]
    line = ua_answer(
        challenge, method="INVITE", uri="sip:bob@example.com", header="Proxy-Authorization"
    )
    assert verify(auth, invite(line), proxy=True).verdict is Verdict.ACCEPT
    # Proxy-Authorization is not read for a 401, nor Authorization for a 407
    assert verify(auth, invite(line), proxy=False).verdict is Verdict.CHALLENGE
    www = line.replace("Proxy-Authorization", "Authorization")
    assert verify(auth, invite(www), proxy=True).verdict is Verdict.CHALLENGE


def test_credentials_for_several_realms() -> None:
    auth = make_auth()

    def ours() -> str:  # each request answers its own challenge
        return ua_answer(auth.challenge(REALM, NOW)[0], method="INVITE", uri="sip:bob@example.com")

    theirs = (
        'Authorization: Digest username="alice", realm="upstream.example.net", '
        'nonce="abc", uri="sip:bob@example.com", response="0123456789abcdef0123456789abcdef"'
    )
    basic = "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert verify(auth, invite(theirs, basic, ours())).verdict is Verdict.ACCEPT
    assert verify(auth, invite(ours(), theirs)).verdict is Verdict.ACCEPT
    assert verify(auth, invite(theirs, basic)) == AuthResult(
        Verdict.CHALLENGE, None, "No credentials for the realm"
    )


def test_broken_credentials_of_another_hop_do_not_hide_ours() -> None:
    auth = make_auth()
    ours = ua_answer(auth.challenge(REALM, NOW)[0], method="INVITE", uri="sip:bob@example.com")
    broken = 'Authorization: Digest realm="x", nonce="unterminated'
    assert verify(auth, invite(broken, ours)).verdict is Verdict.ACCEPT
    assert verify(auth, invite(broken)) == AuthResult(
        Verdict.BAD_REQUEST, None, "Unterminated quoted-string"
    )


def test_uri_other_than_the_request_uri_is_accepted() -> None:
    # SIPp 3.6 writes sip:<server>:<port>; the digest covers the uri it wrote
    auth = make_auth()
    line = ua_answer(auth.challenge(REALM, NOW)[0], uri="sip:192.0.2.10:5060")
    assert verify(auth, register(line, cseq=2)).verdict is Verdict.ACCEPT


def test_algorithm_not_configured_is_a_bad_request() -> None:
    md5_challenge = make_auth().challenge(REALM, NOW)[0]
    auth = make_auth(algorithms=("SHA-256",))
    result = verify(auth, register(ua_answer(md5_challenge), cseq=2))
    assert result == AuthResult(Verdict.BAD_REQUEST, "alice", "Unsupported algorithm")


def test_algorithm_names_are_case_insensitive() -> None:
    auth = make_auth()
    line = ua_answer(auth.challenge(REALM, NOW)[1]).replace(
        "algorithm=SHA-256", "algorithm=sha-256"
    )
    assert verify(auth, register(line, cseq=2)).verdict is Verdict.ACCEPT


def test_upper_case_response_hex_is_accepted() -> None:
    auth = make_auth()
    line = ua_answer(auth.challenge(REALM, NOW)[0])
    response = parse_auth(line.partition(": ")[2]).get("response")
    assert response is not None
    line = line.replace(response, response.upper())
    assert verify(auth, register(line, cseq=2)).verdict is Verdict.ACCEPT


GOOD = {
    "username": '"alice"',
    "realm": f'"{REALM}"',
    "nonce": '"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"',
    "uri": '"sip:example.com"',
    "response": '"6629fae49393a05397450978507c4ef1"',
    "algorithm": "MD5",
    "cnonce": '"0a4f113b"',
    "qop": "auth",
    "nc": "00000001",
}


def credentials(**changes: str | None) -> str:
    params = {**GOOD, **changes}
    return "Authorization: Digest " + ", ".join(f"{k}={v}" for k, v in params.items() if v)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (credentials(username=None), "Missing username"),
        (
            credentials(username=None, **{"username*": "UTF-8''al%C3%ADce"}),
            "Userhash not supported",
        ),
        (credentials(userhash="true"), "Userhash not supported"),
        (credentials(nonce=None), "Missing nonce"),
        (credentials(uri=None), "Missing uri"),
        (credentials(response=None), "Missing response"),
        (credentials(algorithm="MD4"), "Unsupported algorithm"),
        (credentials(algorithm="SHA-512-256"), "Unsupported algorithm"),
        (credentials(qop="auth-int"), "Qop auth-int not supported"),
        (credentials(qop="bogus"), "Bad qop"),
        (credentials(qop='"auth,auth-int"'), "Bad qop"),
        (credentials(nc=None), "Bad nc"),
        (credentials(nc="1"), "Bad nc"),
        (credentials(nc="0000000g"), "Bad nc"),
        (credentials(nc="+0000001"), "Bad nc"),
        (credentials(nc="00000000"), "Bad nc"),
        (credentials(nc="000000001"), "Bad nc"),
        (credentials(cnonce=None), "Missing cnonce"),
        (credentials(cnonce='""'), "Missing cnonce"),
        (credentials(qop=None, algorithm="MD5-sess"), "Session algorithm without qop"),
        (credentials(response='"6629fae4"'), "Bad response"),
        (credentials(response='"6629fae49393a05397450978507c4eXX"'), "Bad response"),
        (credentials(response='"' + "é" * 32 + '"'), "Bad response"),
        (credentials(algorithm="SHA-256"), "Bad response"),  # 32 hex digits for SHA-256
        (credentials() + ', realm="again"', "Duplicate authentication parameter"),
        (credentials() + ", NC=00000002", "Duplicate authentication parameter"),
        ('Authorization: Digest realm="example.com", nonce', "Bad authentication parameter"),
        ('Authorization: Digest realm="example.com" junk', "Junk in authentication parameters"),
        ("Authorization: Digest realm=", "Empty authentication parameter"),
        ('Authorization: Digest realm="example.com', "Unterminated quoted-string"),
    ],
)
def test_malformed_credentials_are_bad_requests(line: str, reason: str) -> None:
    result = verify(make_auth(algorithms=("MD5", "SHA-256", "MD5-sess")), register(line, cseq=2))
    assert result.verdict is Verdict.BAD_REQUEST
    assert reason in result.reason


def test_non_utf8_cnonce_is_a_bad_request_not_an_exception() -> None:
    auth = make_auth()
    line = ua_answer(auth.challenge(REALM, NOW)[0])
    request = register(line, cseq=2)
    value = request.headers.get("Authorization")
    assert value is not None
    bad = request.replace(
        headers=request.headers.set("Authorization", value.replace("0a4f113b", "\ud800"))
    )
    assert verify(auth, bad) == AuthResult(
        Verdict.BAD_REQUEST, "alice", "Bad characters in credentials"
    )


def test_nonce_count_table_stays_bounded() -> None:
    auth = make_auth(max_nonces=30)
    for i in range(200):
        request = register(ua_answer(auth.challenge(REALM, NOW + i)[0]), cseq=i + 1)
        assert verify(auth, request, NOW + i + 0.1).verdict is Verdict.ACCEPT
    assert len(auth._counts) <= 30


# -- never an exception ----------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_BASE = register(cseq=2)
_AUTH = make_auth()


def verdict_for(*values: str, proxy: bool = False) -> AuthResult:
    name = "Proxy-Authorization" if proxy else "Authorization"
    headers = _BASE.headers
    for v in values:
        headers = headers.append(name, v)
    result = verify(_AUTH, _BASE.replace(headers=headers), proxy=proxy)
    assert isinstance(result, AuthResult)
    assert isinstance(result.verdict, Verdict)
    assert isinstance(result.reason, str) and result.reason
    return result


@FUZZ
@given(st.lists(st.text(max_size=300), min_size=1, max_size=3), st.booleans())
def test_arbitrary_header_values_give_a_verdict(values: list[str], proxy: bool) -> None:
    verdict_for(*values, proxy=proxy)


_PARAM_VALUES = st.one_of(
    st.sampled_from(
        [
            *GOOD.values(),
            f'"{REALM}"',
            '""',
            '"\\""',
            "auth-int",
            "MD5-sess",
            "SHA-256",
            "ffffffff",
            '"a, b"',
            "=",
            ",",
        ]
    ),
    st.text(max_size=20),
    st.text(max_size=20).map(lambda s: '"' + s + '"'),
)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from([*GOOD, "userhash", "opaque", "username*", "Realm", "x"]),
        _PARAM_VALUES,
        max_size=12,
    ),
    st.sampled_from(["Digest", "digest", "Basic", "Digest\t"]),
    st.sampled_from([", ", ",", " , ", ",\t"]),
)
def test_near_credentials_give_a_verdict(params: dict[str, str], scheme: str, sep: str) -> None:
    value = scheme + " " + sep.join(f"{k}={v}" for k, v in params.items())
    verdict_for(value)


# -- the fast credentials reader says what the reference says -----------------------------


def reference(text: str) -> tuple[str, dict[str, str]] | str:
    try:
        value = parse_auth(text)
    except SipError as exc:
        return exc.reason
    out = {}
    for k, _ in value.params:
        if k.lower() in out:
            return "Duplicate authentication parameter"
        got = value.get(k)
        assert got is not None
        out[k.lower()] = got
    return value.scheme, out


def fast(text: str) -> tuple[str, dict[str, str]] | str:
    try:
        return read_credentials(text)
    except SipError as exc:
        return exc.reason


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["username", "realm", "nc", "Qop", "a-b", "", " x", "é"]),
            st.sampled_from([" ", "", "\t"]),
            _PARAM_VALUES,
        ),
        max_size=6,
    ),
    st.sampled_from(["Digest ", "Digest", " Digest  ", "Digest\t", "Dig!est "]),
    st.sampled_from([", ", ",", " ,", ",, ", ", \t"]),
    st.sampled_from(["", " ", ",", " ,"]),
)
def test_fast_reader_matches_parse_auth(
    params: list[tuple[str, str, str]], scheme: str, sep: str, end: str
) -> None:
    text = scheme + sep.join(f"{k}{ws}={v}" for k, ws, v in params) + end
    assert fast(text) == reference(text)


@pytest.mark.parametrize(
    "text",
    [
        'Digest realm="a\\"b", nonce="x"',  # an escaped quote inside
        'Digest realm="a\\\\", nonce="x"',  # an escaped backslash before the closing quote
        'Digest realm="a,b", nonce=x',
        "Digest realm=a b, nonce=x",
        'Digest realm="a"b, nonce=x',
        "Digest realm = x",
        "Digest realm=x,",
        "Digest realm=x,,nonce=y",
        "Digest\trealm=x",
        "Digest",
        "Digest ",
    ],
)
def test_fast_reader_edge_cases(text: str) -> None:
    assert fast(text) == reference(text)


def test_fast_reader_reads_a_typical_value() -> None:
    text = (
        'Digest username="alice", realm="example.com", nonce="n", uri="sip:example.com", '
        'response="r", algorithm=MD5, cnonce="c", qop=auth, nc=00000001'
    )
    assert fast(text) == reference(text)
    assert read_credentials(text)[1]["nc"] == "00000001"


_QUOTED = st.text(st.characters(blacklist_characters='"\\'), max_size=20).map(lambda s: f'"{s}"')
_TOKEN = st.text("abcXYZ019-.:/@+", min_size=1, max_size=12)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["username", "realm", "nc", "Qop", "x1", "NC"]), _QUOTED | _TOKEN
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([", ", ",", " , ", ",\t"]),
)
def test_fast_reader_matches_parse_auth_on_the_common_shape(
    params: list[tuple[str, str]], sep: str
) -> None:
    text = "Digest " + sep.join(f"{k}={v}" for k, v in params)
    assert fast(text) == reference(text)
