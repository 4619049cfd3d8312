"""The decoding processes' pool (stages/sources/sandbox.py): every task gets its verdict, whatever
its process does, and the pool ends without a trace on stderr, even with workers still starting."""

import os
import time

import pytest

from stages.sources.cleaning import process_context
from stages.sources.sandbox import Died, TimedOut, WorkerFailed, run_isolated


def slowly_unpickled() -> str:
    time.sleep(0.5)
    return "slow"


class SlowToStart:
    """An argument of the workers' set-up that takes 0.5 s to unpickle: every worker, the ones
    started to replace a dead one included, is still starting for that long."""

    def __reduce__(self):
        return slowly_unpickled, ()


def set_up(arg) -> None:
    assert arg == "slow"


def run(what: str) -> str:
    if what == "die":
        os._exit(3)
    if what == "hang":
        time.sleep(3600)
    return what.upper()


def test_every_task_gets_its_verdict_and_replacements_still_starting_end_cleanly(capfd):
    """The last tasks kill their workers, so that the crawl ends while their replacements are
    starting: they are told to stop and exit by themselves. (pebble's pool unlinked its
    semaphores under them: `FileNotFoundError` tracebacks from SemLock._rebuild on stderr.)"""
    tasks = [(0, ("a",)), (1, ("hang",)), (2, ("b",)), (3, ("die",)), (4, ("die",))]

    outcomes = dict(run_isolated(run, tasks, 2, 2.0, process_context(), set_up, (SlowToStart(),)))

    assert outcomes == {0: "A", 1: TimedOut(), 2: "B", 3: Died(3), 4: Died(3)}
    assert capfd.readouterr().err == ""


def record_pid(path: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_source_that_fails_raises_its_error_and_leaves_no_worker_behind(tmp_path, capfd):
    def tasks():
        yield 0, ("hang",)
        yield 1, ("a",)
        raise RuntimeError("the source failed")

    pids = tmp_path / "pids"
    with pytest.raises(RuntimeError, match="the source failed"):
        list(run_isolated(run, tasks(), 2, 3600.0, process_context(), record_pid, (str(pids),)))
    workers = [int(line) for line in pids.read_text().split()]
    assert len(workers) == 2 and all(gone(pid) for pid in workers)  # the hung one killed, the idle one stopped
    assert capfd.readouterr().err == ""


def broken_set_up() -> None:
    os._exit(7)


def test_a_worker_that_cannot_start_fails_the_run_instead_of_each_task():
    with pytest.raises(WorkerFailed, match=r"a worker process died while starting \(exit status 7\)"):
        list(run_isolated(run, [(0, ("a",))], 1, 10.0, process_context(), broken_set_up))
