"""The farm's commands in sipfarm/cli.py and the supervisor's pure parts (sipfarm/up.py).

Options parse into the member's config, or fail with one ``sipfarm:`` line and
exit 2; the farm's view prints as a table and as JSON; restarts back off.
No process is started and no socket opened here (tests/integration/test_up.py does).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cluster.membership import MemberInfo, MemberState, View
from cluster.ring import Ring
from sipfarm import cli
from sipfarm.up import FIRST_DELAY, MAX_DELAY, _restart_delay, read_farm

BOTH = frozenset({"frontend", "backend"})


def parse(*argv: str) -> argparse.Namespace:
    parser = cli.build_parser()
    args = parser.parse_args(argv)
    if args.command == "member":
        cli._check_member(parser, args)
    return args


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line a bad invocation prints, after checking it exits 2 with nothing else."""
    with pytest.raises(SystemExit) as exit_:
        parse(*argv)
    assert exit_.value.code == cli.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sipfarm: ")
    return lines[0]


# -------------------------------------------------------------------------- sipfarm member


def test_member_farm_options_reach_the_config() -> None:
    args = parse(
        "member", "--sip", "127.0.0.1:5060", "--etcd", "http://127.0.0.1:2379",
        "--cluster", "127.0.0.1:7001", "--roles", "frontend", "--token", "M1",
    )  # fmt: skip

    config = cli._member_config(args)

    assert config.etcd == ("127.0.0.1", 2379)
    assert config.cluster == ("127.0.0.1", 7001)
    assert config.roles == frozenset({"frontend"})
    assert config.token == "m1"


def test_member_without_farm_options_is_a_member_on_its_own() -> None:
    config = cli._member_config(parse("member", "--sip", "127.0.0.1:5060"))

    assert (config.etcd, config.cluster, config.roles) == (None, None, BOTH)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:2379", ("127.0.0.1", 2379)),
        ("http://10.0.0.5:12379", ("10.0.0.5", 12379)),
        ("http://etcd-1.example.net:2379/", ("etcd-1.example.net", 2379)),
        ("etcd", ("etcd", 2379)),
    ],
)
def test_etcd_address_forms(text: str, address: tuple[str, int]) -> None:
    assert cli._etcd(text) == address


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["member"], "--sip"),
        (["member", "--sip", "127.0.0.1:5060", "--etcd", "127.0.0.1:2379"], "--cluster"),
        (["member", "--sip", "127.0.0.1:5060", "--roles", "frontend,mail"], "roles"),
        (["member", "--sip", "127.0.0.1:5060", "--roles", ""], "roles"),
        (["member", "--sip", "127.0.0.1:5060", "--etcd", "http://x_y:2379"], "etcd"),
        (["member", "--sip", "127.0.0.1:5060", "--etcd", "127.0.0.1:0"], "port"),
        (["member", "not-ready"], "TOKEN"),
        (["member", "drain", "m1"], "invalid choice"),
        (["member", "not-ready", "m-1"], "token"),
        (["member", "ready", "m1", "--sip", "127.0.0.1:5060"], "--sip"),
        (["member", "ready", "m1", "--data", "d", "--etcd", "127.0.0.1:2379"], "not both"),
        (["member", "--sip", "127.0.0.1:5060", "m1"], "m1"),
        (["status", "--data", "d", "--etcd", "127.0.0.1:2379"], "not allowed"),
        (["status", "--http", "127.0.0.1:8080", "--etcd", "127.0.0.1:2379"], "not allowed"),
        (["up", "--members", "0"], "members"),
        (["up", "--members", "two"], "members"),
        (["up", "--sip", "localhost:5060"], "IP address"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_farm_invocations_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert says in usage_error(capsys, *argv)


def test_member_action_takes_the_token_and_where_the_farm_is() -> None:
    args = parse("member", "not-ready", "M2", "--etcd", "127.0.0.1:2379")

    assert (args.action, args.member_token, args.etcd) == (
        "not-ready",
        "m2",
        ("127.0.0.1", 2379),
    )


def test_up_defaults() -> None:
    args = parse("up")

    assert args.sip == ("0.0.0.0", 5060)
    assert args.data == Path("sipfarm-data")
    assert args.members >= 1


def test_status_keeps_asking_one_member_with_http() -> None:
    args = parse("status", "--http", "127.0.0.1:8080")

    assert args.http == ("127.0.0.1", 8080)


# -------------------------------------------------------------------------- sipfarm status


def member(token: str, state: MemberState, created: int, http: bool = True) -> MemberInfo:
    n = int(token[1:])
    return MemberInfo(
        token,
        ("127.0.0.1", 7000 + n),
        BOTH,
        state,
        created,
        ("127.0.0.1", 5060),
        ("127.0.0.1", 8000 + n) if http else None,
    )


VIEW = View(
    12,
    {
        "m10": member("m10", MemberState.READY, 9),
        "m2": member("m2", MemberState.NOT_READY, 4, http=False),
        "m1": member("m1", MemberState.READY, 5),
    },
)


def test_status_lists_members_in_token_order_with_their_ring_share() -> None:
    status = cli.farm_status(VIEW, ("127.0.0.1", 2379))

    assert (status["revision"], status["controller"], status["backup"]) == (12, "m2", "m1")
    assert [m["token"] for m in status["members"]] == ["m1", "m2", "m10"]
    m1, m2, m10 = status["members"]
    assert m1 == {
        "token": "m1",
        "state": "ready",
        "sip": "127.0.0.1:5060",
        "cluster": "127.0.0.1:7001",
        "http": "127.0.0.1:8001",
        "roles": ["backend", "frontend"],
        "share": m1["share"],
    }
    assert m2["share"] is None and m2["http"] is None  # not ready: no share of new work
    assert m1["share"] + m10["share"] == pytest.approx(1.0)
    assert 0.4 < m1["share"] < 0.6
    json.dumps(status)  # --json prints it as it is


def test_status_table() -> None:
    text = cli.format_status(cli.farm_status(VIEW, ("127.0.0.1", 2379)))

    lines = text.splitlines()
    assert lines[0] == (
        "view 12 on etcd 127.0.0.1:2379: 3 members, 2 ready; controller m2, backup m1"
    )
    assert lines[1].split() == ["TOKEN", "STATE", "SIP", "CLUSTER", "ADMIN", "ROLES", "SHARE"]
    assert lines[3].split() == [
        "m2", "not-ready", "127.0.0.1:5060", "127.0.0.1:7002", "-", "backend,frontend", "-",
    ]  # fmt: skip
    assert lines[2].split()[-1].endswith("%")
    columns = lines[1].index("SIP"), lines[1].index("SHARE")
    assert {(line.index("127.0.0.1:5060"), line.rindex(" ") + 1) for line in lines[2:]} == {
        columns
    }  # aligned under their headings


def test_status_of_an_empty_farm() -> None:
    text = cli.format_status(cli.farm_status(View(3), ("127.0.0.1", 2379)))

    assert text.splitlines()[0].endswith("0 members, 0 ready; controller -, backup -")


def test_ring_shares_cover_the_sample() -> None:
    shares = cli.ring_shares(Ring(["m1", "m2", "m3"]), sample=3000)

    assert set(shares) == {"m1", "m2", "m3"}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert cli.ring_shares(Ring([])) == {}


# ---------------------------------------------------------------------------- sipfarm up


def test_restarts_back_off_while_a_member_keeps_dying_young() -> None:
    delays: list[float] = []
    delay = None
    for _ in range(8):
        delay = _restart_delay(delay, ran=2.0)
        delays.append(delay)

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]  # 5 in the first minute
    assert _restart_delay(MAX_DELAY, ran=600.0) == FIRST_DELAY  # a member that ran a while


def test_no_farm_file_is_no_farm(tmp_path: Path) -> None:
    assert read_farm(tmp_path) is None
    (tmp_path / "farm.json").write_text("{not json")
    assert read_farm(tmp_path) is None
