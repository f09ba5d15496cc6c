"""RFC 3261 §10.3 steps 6 to 8, RFC 3327 Path, RFC 5626 outbound: literal REGISTERs in, answers out.

The RFC 3665 §2 flows first (regmessages.py), then one test per rule.
"""

from __future__ import annotations

import pytest
from regmessages import (
    BOB,
    BOB_AOR,
    CANCELLATION,
    NEW_REGISTRATION,
    NOW,
    QUERY,
    UPDATE_CONTACT_LIST,
    contacts,
    register,
    registrar,
    request,
    send,
)

from sipfarm.actions import Source
from sipfarm.registrar import RegistrarConfig, aor_of
from sipfarm.sip import SipError

DATE = "Sun, 09 Sep 2001 01:46:40 GMT"


# -- RFC 3665 §2 ----------------------------------------------------------------------------


def test_rfc3665_2_1_successful_new_registration() -> None:
    reg, loc = registrar()

    answer = send(reg, NEW_REGISTRATION)

    assert bytes(answer) == (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashd92\r\n"
        b"From: Bob <sips:bob@biloxi.example.com>;tag=ja743ks76zlflH\r\n"
        b"To: Bob <sips:bob@biloxi.example.com>;tag=37GkEhwl6\r\n"
        b"Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com\r\n"
        b"CSeq: 2 REGISTER\r\n"
        b"Contact: <sips:bob@client.biloxi.example.com>;expires=3600\r\n"
        b"Supported: path, outbound\r\n"
        b"Date: " + DATE.encode() + b"\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )
    (b,) = loc.lookup(BOB_AOR, NOW)
    assert b.contact == "sips:bob@client.biloxi.example.com"
    assert (b.call_id, b.cseq, b.expires_at, b.source) == (
        "1j9FpLxk3uxtm8tn@biloxi.example.com",
        2,
        NOW + 3600,
        BOB,
    )


def test_rfc3665_2_2_update_of_contact_list() -> None:
    """A second contact (a mailto: addr-spec) joins; the 200 lists both."""
    reg, loc = registrar()
    send(reg, NEW_REGISTRATION)

    answer = send(reg, UPDATE_CONTACT_LIST, NOW + 10)

    assert answer.status == 200
    assert contacts(answer) == [
        "<sips:bob@client.biloxi.example.com>;expires=3590",
        "<mailto:bob@biloxi.example.com>;expires=3600",
    ]
    assert len(loc) == 2


def test_rfc3665_2_3_request_for_current_contact_list() -> None:
    reg, loc = registrar()
    send(reg, NEW_REGISTRATION)
    send(reg, UPDATE_CONTACT_LIST, NOW + 10)
    before = loc.bindings(BOB_AOR)

    answer = send(reg, QUERY, NOW + 20)

    assert answer.status == 200
    assert contacts(answer) == [
        "<sips:bob@client.biloxi.example.com>;expires=3580",
        "<mailto:bob@biloxi.example.com>;expires=3590",
    ]
    assert loc.bindings(BOB_AOR) == before


def test_rfc3665_2_4_cancellation_of_registration() -> None:
    reg, loc = registrar()
    send(reg, NEW_REGISTRATION)
    send(reg, UPDATE_CONTACT_LIST, NOW + 10)

    answer = send(reg, CANCELLATION, NOW + 30)

    assert answer.status == 200
    assert contacts(answer) == []
    assert answer.headers.get("date") == "Sun, 09 Sep 2001 01:47:10 GMT"
    assert len(loc) == 0
    assert BOB_AOR not in loc


# -- expiry (§10.3 step 6) ------------------------------------------------------------------


def test_expiry_below_minimum_is_423_with_min_expires() -> None:
    reg, loc = registrar(min_expires=60)

    answer = send(reg, register("Contact: <sip:bob@192.0.2.4>;expires=30"))

    assert answer.status == 423
    assert answer.reason == "Interval Too Brief"
    assert answer.headers.get("min-expires") == "60"
    assert answer.to.tag == "37GkEhwl6"
    assert len(loc) == 0


def test_expires_header_below_minimum_is_423_too() -> None:
    reg, loc = registrar(min_expires=120)

    answer = send(reg, register("Expires: 119", "Contact: <sip:bob@192.0.2.4>"))

    assert (answer.status, answer.headers.get("min-expires")) == (423, "120")
    assert len(loc) == 0


@pytest.mark.parametrize(
    ("lines", "granted"),
    [
        (("Contact: <sip:bob@192.0.2.4>",), 1800),  # missing: default
        (("Expires: 600", "Contact: <sip:bob@192.0.2.4>"), 600),  # the header
        (("Expires: 600", "Contact: <sip:bob@192.0.2.4>;expires=900"), 900),  # param wins
        (("Contact: <sip:bob@192.0.2.4>;expires=99999",), 3000),  # capped at max
        (("Contact: <sip:bob@192.0.2.4>;expires=99999999999999999999",), 3000),
        (("Expires: soon", "Contact: <sip:bob@192.0.2.4>"), 1800),  # malformed: default
        (("Expires: 700", 'Contact: <sip:bob@192.0.2.4>;expires="1 hour"'), 700),
    ],
)
def test_expiry_sources_and_bounds(lines: tuple[str, ...], granted: int) -> None:
    reg, loc = registrar(min_expires=60, default_expires=1800, max_expires=3000)

    answer = send(reg, register(*lines))

    assert contacts(answer) == [f"<sip:bob@192.0.2.4>;expires={granted}"]
    assert loc.bindings(BOB_AOR)[0].expires_at == NOW + granted


def test_expires_zero_removes_only_that_contact() -> None:
    reg, loc = registrar()
    send(reg, register("Contact: <sip:bob@192.0.2.4>, <sip:bob@192.0.2.5>"))

    answer = send(reg, register("Contact: <sip:bob@192.0.2.4>;expires=0", cseq=2))

    assert contacts(answer) == ["<sip:bob@192.0.2.5>;expires=3600"]
    assert len(loc) == 1


def test_removing_an_unknown_contact_changes_nothing() -> None:
    reg, _ = registrar()
    send(reg, register("Contact: <sip:bob@192.0.2.4>"))

    answer = send(reg, register("Expires: 0", "Contact: <sip:bob@192.0.2.9>", cseq=2))

    assert contacts(answer) == ["<sip:bob@192.0.2.4>;expires=3600"]


def test_refresh_moves_the_expiry() -> None:
    reg, loc = registrar()
    send(reg, register("Contact: <sip:bob@192.0.2.4>;expires=600"))

    answer = send(reg, register("Contact: <sip:bob@192.0.2.4>;expires=600", cseq=2), NOW + 500)

    assert contacts(answer) == ["<sip:bob@192.0.2.4>;expires=600"]
    assert loc.lookup(BOB_AOR, NOW + 700)[0].expires_at == NOW + 1100


def test_a_binding_lapses_and_is_not_listed() -> None:
    reg, loc = registrar()
    send(reg, register("Contact: <sip:bob@192.0.2.4>;expires=60"))
    send(reg, register("Contact: <sip:bob@192.0.2.5>;expires=600", cseq=2))

    answer = send(reg, register(cseq=3), NOW + 61)

    assert contacts(answer) == ["<sip:bob@192.0.2.5>;expires=539"]
    assert loc.expire(NOW + 61, budget=10) == 1
    assert len(loc) == 1


# -- Contact: * (§10.3 step 6) --------------------------------------------------------------


@pytest.mark.parametrize("expires", [None, "10", "zero"])
def test_star_needs_expires_zero(expires: str | None) -> None:
    reg, loc = registrar()
    send(reg, register("Contact: <sip:bob@192.0.2.4>"))
    lines = ("Contact: *",) if expires is None else (f"Expires: {expires}", "Contact: *")

    answer = send(reg, register(*lines, cseq=2))

    assert answer.status == 400
    assert len(loc) == 1


def test_star_with_another_contact_is_refused_by_the_parser() -> None:
    with pytest.raises(SipError) as err:
        request(register("Expires: 0", "Contact: *", "Contact: <sip:bob@192.0.2.4>"))

    assert err.value.status == 400


def test_star_from_another_call_id_removes_everything() -> None:
    reg, loc = registrar()
    send(reg, register("Contact: <sip:bob@192.0.2.4>", call_id="a"))
    send(reg, register("Contact: <sip:bob@192.0.2.5>", call_id="b", cseq=7))

    answer = send(reg, register("Expires: 0", "Contact: *", call_id="c"))

    assert (answer.status, contacts(answer), len(loc)) == (200, [], 0)


def test_star_older_than_a_binding_of_its_call_id_is_out_of_order() -> None:
    reg, loc = registrar()
    send(reg, register("Contact: <sip:bob@192.0.2.4>", cseq=8))

    answer = send(reg, register("Expires: 0", "Contact: *", cseq=7))

    assert (answer.status, answer.reason) == (500, "Out of Order")
    assert len(loc) == 1


# -- q ------------------------------------------------------------------------------------


def test_q_is_stored_and_listed() -> None:
    reg, loc = registrar()

    answer = send(
        reg, register("Contact: <sip:bob@192.0.2.4>;q=0.7, <sip:bob@192.0.2.5>;q=1.0;expires=60")
    )

    assert contacts(answer) == [
        "<sip:bob@192.0.2.4>;expires=3600;q=0.7",
        "<sip:bob@192.0.2.5>;expires=60;q=1",
    ]
    assert [b.q for b in loc.bindings(BOB_AOR)] == [0.7, 1.0]


@pytest.mark.parametrize("q", ["1.5", "0.1234", "abc", "1.001", "2", "-0.5", ".5", "0.5.1"])
def test_bad_q_is_400_and_stores_nothing(q: str) -> None:
    reg, loc = registrar()

    answer = send(reg, register(f"Contact: <sip:bob@192.0.2.5>, <sip:bob@192.0.2.4>;q={q}"))

    assert answer.status == 400
    assert len(loc) == 0


# -- several contacts -------------------------------------------------------------------------


def test_several_contact_lines_and_comma_lists() -> None:
    reg, loc = registrar()

    answer = send(
        reg,
        register(
            'Contact: "Bob" <sip:bob@192.0.2.4>;expires=120, <sip:bob@192.0.2.5>',
            "m: <sips:bob@192.0.2.6;transport=tcp>;q=0.1",
        ),
    )

    assert contacts(answer) == [
        "<sip:bob@192.0.2.4>;expires=120",
        "<sip:bob@192.0.2.5>;expires=3600",
        "<sips:bob@192.0.2.6;transport=tcp>;expires=3600;q=0.1",
    ]
    assert len(loc) == 3


def test_contacts_compare_as_uris() -> None:
    """§19.1.4: host case does not matter, port and transport do."""
    reg, loc = registrar()
    send(reg, register("Contact: <sip:bob@client.biloxi.example.com>"))

    send(reg, register("Contact: <sip:bob@CLIENT.Biloxi.example.com;foo=bar>", cseq=2))
    assert len(loc) == 1
    assert loc.bindings(BOB_AOR)[0].contact == "sip:bob@CLIENT.Biloxi.example.com;foo=bar"

    send(reg, register("Contact: <sip:bob@client.biloxi.example.com:5060>", cseq=3))
    send(reg, register("Contact: <sip:bob@client.biloxi.example.com;transport=tcp>", cseq=4))
    assert len(loc) == 3


def test_too_many_contacts_is_403_and_stores_nothing() -> None:
    reg, loc = registrar(max_contacts=2)
    send(reg, register("Contact: <sip:bob@192.0.2.4>"))

    answer = send(reg, register("Contact: <sip:bob@192.0.2.5>, <sip:bob@192.0.2.6>", cseq=2))

    assert (answer.status, answer.reason) == (403, "Too Many Registered Contacts")
    assert len(loc) == 1


def test_replacing_within_the_limit_is_fine() -> None:
    reg, loc = registrar(max_contacts=2)
    send(reg, register("Contact: <sip:bob@192.0.2.4>, <sip:bob@192.0.2.5>"))

    answer = send(
        reg, register("Contact: <sip:bob@192.0.2.4>;expires=0, <sip:bob@192.0.2.6>", cseq=2)
    )

    assert answer.status == 200
    assert len(loc) == 2


# -- Call-ID and CSeq (§10.3 step 7) ----------------------------------------------------------


def test_lower_cseq_on_the_same_call_id_is_out_of_order() -> None:
    reg, loc = registrar()
    send(reg, register("Contact: <sip:bob@192.0.2.4>", cseq=10))
    before = loc.bindings(BOB_AOR)

    answer = send(reg, register("Contact: <sip:bob@192.0.2.4>;expires=0", cseq=9), NOW + 5)

    assert (answer.status, answer.reason) == (500, "Out of Order")
    assert loc.bindings(BOB_AOR) == before


def test_same_call_id_and_cseq_is_a_retransmission() -> None:
    """Answered again with the bindings as they are; nothing is refreshed."""
    reg, loc = registrar()
    first = register("Contact: <sip:bob@192.0.2.4>", cseq=10)
    send(reg, first)
    before = loc.bindings(BOB_AOR)

    again = send(reg, first, NOW + 2)

    assert again.status == 200
    assert contacts(again) == ["<sip:bob@192.0.2.4>;expires=3598"]
    assert loc.bindings(BOB_AOR) == before


def test_retransmission_of_a_request_that_added_two_contacts() -> None:
    reg, loc = registrar()
    first = register("Contact: <sip:bob@192.0.2.4>, <sip:bob@192.0.2.5>;expires=0", cseq=3)
    send(reg, first)
    send(reg, register("Contact: <sip:bob@192.0.2.5>", call_id="other"))

    again = send(reg, first, NOW + 1)

    assert again.status == 200
    assert len(contacts(again)) == 2
    assert len(loc) == 2


def test_another_call_id_replaces_the_binding() -> None:
    reg, loc = registrar()
    send(reg, register("Contact: <sip:bob@192.0.2.4>", call_id="before-reboot", cseq=500))

    answer = send(reg, register("Contact: <sip:bob@192.0.2.4>", call_id="after-reboot", cseq=1))

    assert answer.status == 200
    (b,) = loc.bindings(BOB_AOR)
    assert (b.call_id, b.cseq) == ("after-reboot", 1)


def test_another_call_id_may_remove_the_binding() -> None:
    reg, loc = registrar()
    send(reg, register("Contact: <sip:bob@192.0.2.4>", call_id="x", cseq=500))

    send(reg, register("Contact: <sip:bob@192.0.2.4>;expires=0", call_id="y", cseq=1))

    assert len(loc) == 0


# -- Path (RFC 3327) -----------------------------------------------------------------------


PATH = ("Path: <sip:P3.EXAMPLEHOME.COM;lr>", "Path: <sip:P1.EXAMPLEVISITED.COM;lr>")


def test_path_is_stored_and_echoed_when_supported() -> None:
    reg, loc = registrar()

    answer = send(reg, register(*PATH, "Supported: path", "Contact: <sip:bob@192.0.2.4>"))

    assert answer.headers.get_all("path") == [
        "<sip:P3.EXAMPLEHOME.COM;lr>",
        "<sip:P1.EXAMPLEVISITED.COM;lr>",
    ]
    assert loc.bindings(BOB_AOR)[0].path == (
        "<sip:P3.EXAMPLEHOME.COM;lr>",
        "<sip:P1.EXAMPLEVISITED.COM;lr>",
    )


def test_path_comma_list_is_split_into_values() -> None:
    reg, loc = registrar()

    send(
        reg, register("Path: <sip:a.example.com;lr>, <sip:b.example.com;lr>", "Contact: <sip:x@y>")
    )

    assert loc.bindings(BOB_AOR)[0].path == ("<sip:a.example.com;lr>", "<sip:b.example.com;lr>")


def test_path_without_supported_is_stored_not_echoed() -> None:
    reg, loc = registrar()

    answer = send(reg, register(*PATH, "Supported: replaces", "Contact: <sip:bob@192.0.2.4>"))

    assert answer.status == 200
    assert answer.headers.get_all("path") == []
    assert answer.headers.get("supported") == "path, outbound"
    assert len(loc.bindings(BOB_AOR)[0].path) == 2


def test_bad_path_is_400() -> None:
    reg, loc = registrar()

    answer = send(reg, register("Path: <sip:a.example.com;lr", "Contact: <sip:bob@192.0.2.4>"))

    assert answer.status == 400
    assert len(loc) == 0


# -- outbound (RFC 5626 §6) ----------------------------------------------------------------


INSTANCE = '"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"'


def outbound_contact(port: int, reg_id: int = 1) -> str:
    uri = f"sip:bob@192.0.2.4:{port};transport=tcp"
    return f"Contact: <{uri}>;+sip.instance={INSTANCE};reg-id={reg_id}"


def test_outbound_reregistration_over_a_new_flow_replaces_the_binding() -> None:
    reg, loc = registrar()
    first = Source("TCP", "192.0.2.4", 50001)
    second = Source("TCP", "192.0.2.4", 50002)
    send(reg, register("Supported: outbound, path", outbound_contact(50001)), source=first)

    answer = send(
        reg,
        register("Supported: outbound", outbound_contact(50002), call_id="new", cseq=1),
        source=second,
    )

    assert answer.headers.get("require") == "outbound"
    assert contacts(answer) == [
        f"<sip:bob@192.0.2.4:50002;transport=tcp>;expires=3600;+sip.instance={INSTANCE};reg-id=1"
    ]
    (b,) = loc.bindings(BOB_AOR)
    assert (b.source, b.instance, b.reg_id) == (second, INSTANCE, 1)


def test_outbound_another_reg_id_is_another_flow() -> None:
    reg, loc = registrar()
    send(reg, register("Supported: outbound", outbound_contact(50001, reg_id=1)))

    send(reg, register("Supported: outbound", outbound_contact(50002, reg_id=2), cseq=2))

    assert sorted(b.reg_id or 0 for b in loc.bindings(BOB_AOR)) == [1, 2]


def test_outbound_removal_by_instance_and_reg_id() -> None:
    reg, loc = registrar()
    send(reg, register("Supported: outbound", outbound_contact(50001)))

    send(reg, register("Supported: outbound", "Expires: 0", outbound_contact(50009), cseq=2))

    assert len(loc) == 0


def test_reg_id_without_supported_outbound_is_ignored() -> None:
    reg, loc = registrar()
    send(reg, register(outbound_contact(50001)))

    answer = send(reg, register(outbound_contact(50002), cseq=2))

    assert answer.headers.get("require") is None
    assert [b.reg_id for b in loc.bindings(BOB_AOR)] == [None, None]
    assert [b.instance for b in loc.bindings(BOB_AOR)] == [INSTANCE, INSTANCE]


def test_two_reg_id_contacts_in_one_register_is_400() -> None:
    reg, loc = registrar()

    answer = send(
        reg, register("Supported: outbound", outbound_contact(1, 1), outbound_contact(2, 2))
    )

    assert answer.status == 400
    assert len(loc) == 0


@pytest.mark.parametrize("reg_id", ["0", "x", "2147483648"])
def test_bad_reg_id_is_400(reg_id: str) -> None:
    reg, _ = registrar()

    answer = send(
        reg,
        register(
            "Supported: outbound", f"Contact: <sip:b@h>;+sip.instance={INSTANCE};reg-id={reg_id}"
        ),
    )

    assert answer.status == 400


# -- AOR, config, Date ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "aor"),
    [
        ("sip:bob@biloxi.example.com", "sip:bob@biloxi.example.com"),
        ("sips:bob@biloxi.example.com", "sip:bob@biloxi.example.com"),
        ("sip:Bob@BILOXI.example.com:5061;transport=tls", "sip:Bob@biloxi.example.com"),
        ("sip:%62ob@biloxi.example.com", "sip:bob@biloxi.example.com"),
        ("sip:biloxi.example.com", "sip:biloxi.example.com"),
        ("tel:+1-201-555-0123", "tel:+12015550123"),
    ],
)
def test_aor_of(uri: str, aor: str) -> None:
    assert aor_of(uri) == aor


def test_aor_of_other_schemes_is_416() -> None:
    with pytest.raises(SipError) as err:
        aor_of("mailto:bob@biloxi.example.com")

    assert err.value.status == 416


@pytest.mark.parametrize(
    "config",
    [{"min_expires": 0}, {"min_expires": 100, "default_expires": 50}, {"max_contacts": 0}],
)
def test_config_is_checked(config: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        RegistrarConfig(**config)


def test_date_is_rfc1123_gmt() -> None:
    reg, _ = registrar()

    assert reg.date(0.0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert reg.date(1_709_210_096.9) == "Thu, 29 Feb 2024 12:34:56 GMT"
