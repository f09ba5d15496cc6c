"""The location table: store, lookup order, expiry in budgeted steps; and a Hypothesis walk
of register/expire sequences through the registrar."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from regmessages import BOB, NOW, register, registrar, send

from sipfarm.registrar import Binding, MemoryLocation

AOR = "sip:bob@biloxi.example.com"


def binding(contact: str, expires_at: float, q: float | None = None, at: float = 0.0) -> Binding:
    return Binding(contact, q, expires_at, "call", 1, (), BOB, None, None, at)


def test_store_replace_and_remove() -> None:
    loc = MemoryLocation()
    loc.store(AOR, [binding("sip:a@h", 100.0), binding("sip:b@h", 200.0)])
    loc.store("sip:carol@chicago.com", [binding("sip:c@h", 100.0)])
    assert len(loc) == 3

    loc.store(AOR, [binding("sip:b@h", 300.0)])
    assert len(loc) == 2
    assert [b.contact for b in loc.bindings(AOR)] == ["sip:b@h"]

    loc.store(AOR, [])
    assert len(loc) == 1
    assert AOR not in loc
    assert loc.bindings(AOR) == []
    loc.store("sip:nobody@x", [])
    assert len(loc) == 1


def test_lookup_orders_by_q_then_most_recent_and_skips_expired() -> None:
    loc = MemoryLocation()
    loc.store(
        AOR,
        [
            binding("sip:low@h", 500.0, q=0.1, at=40.0),
            binding("sip:old@h", 500.0, q=0.9, at=10.0),
            binding("sip:new@h", 500.0, q=0.9, at=30.0),
            binding("sip:none@h", 500.0, q=None, at=5.0),
            binding("sip:gone@h", 50.0, q=1.0, at=50.0),
        ],
    )

    got = [b.contact for b in loc.lookup(AOR, 60.0)]

    assert got == ["sip:none@h", "sip:new@h", "sip:old@h", "sip:low@h"]
    assert len(loc.bindings(AOR)) == 5
    assert loc.lookup(AOR, 500.0) == []
    assert loc.lookup("sip:nobody@x", 0.0) == []


def test_expire_removes_what_lapsed() -> None:
    loc = MemoryLocation()
    loc.store(AOR, [binding("sip:a@h", 100.0), binding("sip:b@h", 200.0)])

    assert loc.expire(99.0, budget=10) == 0
    assert loc.expire(100.0, budget=10) == 1
    assert [b.contact for b in loc.bindings(AOR)] == ["sip:b@h"]
    assert loc.expire(250.0, budget=10) == 1
    assert len(loc) == 0
    assert AOR not in loc


def test_expire_examines_at_most_budget_aors_per_call() -> None:
    loc = MemoryLocation()
    for i in range(25):
        loc.store(f"sip:u{i}@h", [binding("sip:a@h", 10.0 + i)])

    steps = []
    while len(loc):
        steps.append(loc.expire(1000.0, budget=10))

    assert steps == [10, 10, 5]


def test_refreshes_do_not_grow_the_expiry_heap() -> None:
    loc = MemoryLocation()
    for i in range(100):
        loc.store(AOR, [binding("sip:a@h", 3600.0 + i)])

    assert len(loc._heap) == 1
    assert loc.expire(3650.0, budget=10) == 0  # examined, rescheduled
    assert loc.expire(3700.0, budget=10) == 1


def test_an_earlier_expiry_is_scheduled_earlier() -> None:
    loc = MemoryLocation()
    loc.store(AOR, [binding("sip:a@h", 3600.0)])
    loc.store(AOR, [binding("sip:a@h", 3600.0), binding("sip:b@h", 60.0)])

    assert loc.expire(61.0, budget=1) == 1
    assert [b.contact for b in loc.bindings(AOR)] == ["sip:a@h"]


# -- a walk through register / expire sequences ------------------------------------------------

AORS = ("sip:bob@biloxi.example.com", "sip:carol@chicago.example.com")
CONTACTS = ("<sip:bob@192.0.2.4>", "<sip:bob@192.0.2.5;transport=tcp>", "<sip:bob@192.0.2.6>")
EXPIRES = ("", ";expires=0", ";expires=30", ";expires=60", ";expires=61", ";expires=100000",
           ";expires=x", ";q=0.5", ";q=7")  # fmt: skip

register_op = st.tuples(
    st.just("register"),
    st.integers(0, len(AORS) - 1),
    st.lists(st.tuples(st.sampled_from(CONTACTS), st.sampled_from(EXPIRES)), max_size=3),
    st.sampled_from(("", "Expires: 0", "Expires: 120", "Expires: 5")),
    st.sampled_from(("a", "b")),
    st.integers(1, 6),
    st.booleans(),  # Contact: * instead
)
expire_op = st.tuples(st.just("expire"), st.integers(0, 200), st.integers(1, 3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(register_op, expire_op), max_size=25))
def test_register_expire_sequences_keep_the_invariants(ops: list[tuple[object, ...]]) -> None:
    reg, loc = registrar(min_expires=60, max_expires=600, default_expires=300, max_contacts=2)
    now = NOW
    for op in ops:
        if op[0] == "expire":
            _, step, budget = op
            assert isinstance(step, int) and isinstance(budget, int)
            now += step
            assert loc.expire(now, budget) >= 0
        else:
            _, aor_i, elems, expires, call_id, cseq, star = op
            assert isinstance(aor_i, int) and isinstance(elems, list)
            assert isinstance(expires, str) and isinstance(call_id, str)
            assert isinstance(cseq, int)
            lines = [expires] if expires else []
            if star:
                lines.append("Contact: *")
            elif elems:
                lines.append("Contact: " + ", ".join(c + e for c, e in elems))
            aor = AORS[aor_i]
            before = loc.bindings(aor)
            answer = send(reg, register(*lines, call_id=call_id, cseq=cseq), now, aor=aor)
            assert answer.status in (200, 400, 403, 423, 500)
            if answer.status != 200:
                assert loc.bindings(aor) == before
            else:
                listed = answer.headers.get_all("contact")
                assert len(listed) == len(loc.lookup(aor, now))
                assert all(";expires=0" not in c for c in listed)
        for aor in AORS:
            live = loc.lookup(aor, now)
            assert all(b.expires_at > now for b in live)
            assert len(live) <= 2
        assert len(loc) == sum(len(loc.bindings(a)) for a in AORS)
        assert set(loc.aors()) <= set(AORS)
