"""Run one measurement in its own process.

Each model is measured in a fresh child process so that its peak RSS is its
own (not the leftovers of the previous model), a crash or an out-of-memory
kill costs one table row instead of the whole suite, and a time limit can be
enforced. A long measurement can send partial results as it goes
(``partial=True``); if the child is then killed or times out, the last
partial result comes back with the error, so finished phases are not lost.
On CPU the child is forked (fast: the parent has already imported
torch and does no tensor work itself, so no thread pool is inherited); with
CUDA it is spawned, because a forked child cannot use CUDA.
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import signal
import time
import traceback
from typing import Any, Callable

__all__ = ["IsolatedResult", "run_isolated"]


@dataclasses.dataclass
class IsolatedResult:
    """``ok``: the target returned ``value``. Otherwise ``error`` says why and
    ``value`` is the last partial result (or None)."""

    ok: bool
    value: Any = None
    error: str = ""
    wall_s: float = 0.0


def _child(conn, target: Callable, kwargs: dict, partial: bool) -> None:
    try:
        if partial:
            kwargs = {**kwargs, "report": lambda v: conn.send(("partial", v))}
        value = target(**kwargs)
    except BaseException:  # noqa: BLE001 - the traceback goes back to the parent, which reports it
        conn.send(("error", traceback.format_exc()))
    else:
        conn.send(("ok", value))
    finally:
        conn.close()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "worker did not exit"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = " (killed: probably out of memory)" if -code == signal.SIGKILL else ""
        return f"worker killed by signal {name}{hint}"
    return f"worker exited with code {code} without a result"


def run_isolated(target: Callable, kwargs: dict | None = None, *, timeout_s: float | None = None,
                 start_method: str | None = None, partial: bool = False) -> IsolatedResult:
    """Call ``target(**kwargs)`` in a child process and return its result.

    ``target`` must be a module-level function and its result picklable.
    With ``partial``, ``target`` also receives ``report=callable`` to send
    intermediate results. Never raises for failures of the child: the result
    says what happened (``ok=False`` and ``error`` = the child's traceback,
    the signal that killed it, or the timeout).
    """
    if start_method is None:
        start_method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(start_method)
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, target, dict(kwargs or {}), partial))
    t0 = time.perf_counter()
    deadline = None if timeout_s is None else t0 + timeout_s
    proc.start()
    send.close()
    last = None
    try:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.perf_counter())
            if not recv.poll(wait):
                proc.kill()
                proc.join(10)
                return IsolatedResult(False, value=last, error=f"timed out after {timeout_s:.0f} s",
                                      wall_s=time.perf_counter() - t0)
            try:
                status, payload = recv.recv()
            except EOFError:
                proc.join(30)
                return IsolatedResult(False, value=last, error=_describe_exit(proc.exitcode),
                                      wall_s=time.perf_counter() - t0)
            if status != "partial":
                break
            last = payload
    finally:
        recv.close()
    proc.join(60)
    if proc.is_alive():
        proc.kill()
        proc.join(10)
    wall = time.perf_counter() - t0
    if status == "ok":
        return IsolatedResult(True, value=payload, wall_s=wall)
    return IsolatedResult(False, value=last, error=payload, wall_s=wall)
