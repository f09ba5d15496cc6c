"""Client and server cores talking over a lossy in-memory wire (txnpair.Pair)."""

from __future__ import annotations

import pytest
from txnmessages import INVITE, REGISTER, request
from txnpair import Pair

from sipfarm.transaction import TerminationReason


def test_lossless_invite_200() -> None:
    pair = Pair(request(INVITE)).run()

    assert pair.completed
    assert [r.status for r in pair.client_got] == [200]
    assert [r.method for r in pair.server_got] == ["INVITE", "ACK"]
    assert pair.client_ended is TerminationReason.NORMAL  # timer M
    assert pair.server_ended is TerminationReason.NORMAL  # timer L


def test_lossless_invite_486_acked_in_transaction() -> None:
    pair = Pair(request(INVITE), status=486).run()

    assert [r.status for r in pair.client_got] == [486]
    assert [r.method for r in pair.server_got] == ["INVITE"]  # the ACK stayed below the TU
    assert pair.client_ended is TerminationReason.NORMAL  # timer D
    assert pair.server_ended is TerminationReason.NORMAL  # timer I


@pytest.mark.parametrize("seed", range(20))
def test_udp_invite_200_completes_under_30_percent_loss(seed: int) -> None:
    pair = Pair(request(INVITE), loss=0.3, seed=seed).run()

    assert pair.completed
    assert pair.client_got[0].status == 200


@pytest.mark.parametrize("seed", range(10))
def test_udp_register_completes_under_30_percent_loss(seed: int) -> None:
    pair = Pair(request(REGISTER), loss=0.3, seed=seed).run()

    assert pair.completed
    assert [r.status for r in pair.client_got] == [200]


def test_total_loss_times_out() -> None:
    pair = Pair(request(INVITE), loss=1.0).run()

    assert pair.client_got == []
    assert pair.client_ended is TerminationReason.TIMEOUT  # timer B
    assert pair.server is None


def test_the_lossy_wire_loses_and_retransmissions_recover() -> None:
    pairs = [Pair(request(INVITE), loss=0.3, seed=seed).run() for seed in range(20)]

    assert sum(p.lost for p in pairs) > 0
    assert all(p.completed for p in pairs)
    assert any(p.sent > 3 for p in pairs)  # INVITE, 200, ACK plus retransmissions
