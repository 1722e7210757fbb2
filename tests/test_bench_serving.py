"""The serving benchmark's readers: wrk's report as numbers, a py-spy stack as its category, threads' CPU."""

from __future__ import annotations

import pytest

from harness.bench.serving_floor import parse_wrk
from harness.bench.serving_profile import EVENT_LOOP, OTHERS, category, frames_of, thread_split

pytestmark = pytest.mark.unit

# wrk 4.1.0 (Debian) with --latency, as it prints it
WRK_REPORT = """Running 10s test @ http://127.0.0.1:40123/predict_binary
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    21.30ms   30.11ms 383.20ms   94.12%
    Req/Sec   441.50    102.33   690.00     71.00%
  Latency Distribution
     50%   14.02ms
     75%   19.87ms
     90%   31.55ms
     99%    1.21s
  8812 requests in 10.02s, 3.11MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:    879.44
Transfer/sec:    317.80KB
"""


def test_wrk_report_reads_as_numbers_in_milliseconds() -> None:
    run = parse_wrk(WRK_REPORT)
    assert run.requests == 8812
    assert run.req_per_s == pytest.approx(879.44)
    assert run.p50_ms == pytest.approx(14.02)
    assert run.p99_ms == pytest.approx(1210.0)  # seconds become milliseconds
    assert run.non_2xx == 5
    assert run.socket_errors == 3


def test_a_wrk_report_without_its_totals_is_an_error_naming_them() -> None:
    truncated = WRK_REPORT.split("  8812 requests")[0]
    with pytest.raises(RuntimeError, match="expected requests, req_per_s"):
        parse_wrk(truncated)


def test_a_stack_goes_to_the_category_of_its_innermost_known_frame() -> None:
    loop = "Runner.run (asyncio/runners.py:118)"
    endpoint = "ServiceAppFactory.api_endpoint (_bentoml_impl/server/app.py:760)"
    answer = "PhotoZ._answer (astrospect/serving/service.py:176)"
    metrics = "observe_served (astrospect/serving/monitoring.py:90)"
    numpy = "einsum (numpy/_core/einsumfunc.py:1610)"
    frames, count = frames_of(f"{loop};{endpoint};{answer};{metrics};{numpy} 7")
    assert count == 7 and frames[-1] == numpy
    assert category(frames) == "metrics"  # numpy matches nothing: the metrics frame above it decides
    assert category([loop, endpoint, answer]) == "service code"
    assert category([loop, endpoint]) == "HTTP server and BentoML"
    assert category(["<module> (somewhere.py:1)"]) == "other"


def test_thread_cpu_splits_the_event_loop_from_the_other_threads() -> None:
    before = {(10, 10): 1.0, (10, 11): 2.0, (10, 12): 5.0, (20, 20): 0.5}
    after = {(10, 10): 1.5, (10, 11): 2.25, (10, 13): 0.25, (20, 20): 1.0}  # 12 ended, 13 started
    split = thread_split(before, after)
    assert split[EVENT_LOOP] == pytest.approx(1.0)
    assert split[OTHERS] == pytest.approx(0.5)
