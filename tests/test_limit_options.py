"""Every limit (time, memory, output, disk) is parsed in one place (runtime.spec): finite,
above 0 and in range, or a one-line error, whether it comes from the CLI, the API or MCP
(tests/test_mcp.py drives the MCP side through a real client)."""
from __future__ import annotations

import math

import pytest

import boxer_py
from boxer_py.runtime.spec import MAX_SIZE, LimitError, Limits, parse_size, parse_timeout

BAD_TIMEOUTS = ["nan", "NaN", "inf", "-inf", "1e400", "-1", "0", "abc", "", "1" * 500]
BAD_SIZES = ["-1", "0", "inf", "nan", "1e3", "-5m", "12q", "", "99999999999999999999t", "1" * 500]


@pytest.mark.parametrize("option,value", [("--timeout", v) for v in BAD_TIMEOUTS]
                         + [(o, v) for o in ("--memory", "--max-output", "--disk") for v in BAD_SIZES])
def test_the_cli_refuses_a_bad_limit_in_one_line(boxer, hello_image, option, value):
    """`--timeout nan|inf` and `--max-output inf` gave tracebacks, `--memory -1` meant no limit."""
    r = boxer("run", f"{option}={value}", str(hello_image), "python", "-c", "print('ran')", timeout=60)
    assert r.returncode == 125, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.startswith(f"boxer: {option}: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_good_limits_still_run(boxer, hello_image):
    r = boxer("run", "--timeout", "30", "--memory", "256m", "--max-output", "1.5k", "--disk", "64MiB",
              str(hello_image), "python", "-c", "print('x' * 2000)", timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "x" * 1535 + "\n" and "stdout truncated at 1536 bytes" in r.stderr


def test_boxer_mcp_refuses_a_bad_ceiling_in_one_line(boxer, hello_image):
    for option, value in (("--timeout", "inf"), ("--memory", "-1"), ("--max-output", "nan"), ("--disk", "0")):
        r = boxer("mcp", option, value, str(hello_image), timeout=60)
        assert r.returncode == 125 and r.stdout == "", (option, r.stderr)
        assert r.stderr.startswith(f"boxer: {option}: ") and r.stderr.count("\n") == 1, r.stderr


def test_the_api_and_limits_themselves_go_through_the_same_parser(hello_image, launcher):
    box = boxer_py.Session(hello_image, launcher=launcher)
    for kwargs in ({"timeout": math.nan}, {"timeout": math.inf}, {"timeout": -1}, {"memory": -1},
                   {"memory": "inf"}, {"max_output": math.inf}, {"disk": 0}, {"timeout": True}):
        with pytest.raises(LimitError):
            box.run_python("print('ran')", **kwargs)
    with pytest.raises(LimitError):
        Limits(timeout=math.nan)  # a Limits cannot hold NaN, whoever builds it
    with pytest.raises(ValueError):  # still a ValueError for callers that caught one
        Limits(memory=-1)
    assert box.run_python("print('ok')", timeout="5", memory="128m").stdout == b"ok\n"


def test_parsing_and_ceilings():
    assert parse_size("512m") == 512 << 20 and parse_size("1.5k") == 1536 and parse_size("64KiB") == 64 << 10
    assert parse_size(4096) == 4096 and parse_size(None) is None and parse_size(f"{MAX_SIZE}") == MAX_SIZE
    assert parse_timeout("2.5") == 2.5 and parse_timeout(3) == 3.0 and parse_timeout(None) is None
    for bad in (MAX_SIZE + 1, "1" * 30 + "t", math.nan, math.inf, -1, 0, True, [1], "1e3"):
        with pytest.raises(LimitError):
            parse_size(bad)  # type: ignore[arg-type]
    ceiling = Limits(timeout=8, memory=256 << 20, max_output=64 << 10)
    assert Limits.parse(timeout=9999).within(ceiling) == Limits(8, 256 << 20, 64 << 10)
    assert Limits.parse(timeout="1", memory="1g", disk="1m").within(ceiling) == Limits(1, 256 << 20, 64 << 10, 1 << 20)
    assert Limits().within(ceiling) == ceiling
