"""Untrusted work in worker processes: one task at a time per process, each under a deadline.

A decoder fed hostile bytes may raise, hang, crash its process or ask for gigabytes. Each worker
here has a pipe of its own and is handed one small task at a time (a file's path, never its
bytes), so nothing sent to a worker can fill a pipe and block the crawl. A task ends in one of three
ways, each the verdict of that task alone:

- its result (the function turns its own exceptions into verdicts);
- TimedOut: it ran past the deadline, and its process was killed;
- Died: its process ended without answering (a crash, os._exit, the kernel's OOM killer).

A killed or dead worker is replaced at once. When the tasks run out, every worker is told to stop
and exits by itself, even one still starting: nothing is torn down under a process that is
starting (no shared semaphores, unlike multiprocessing's and pebble's pools, whose teardown raced
with a restarted worker). Only a crawl that failed kills its workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from multiprocessing import connection
from multiprocessing.context import BaseContext
from typing import Any, Callable, Hashable, Iterable, Iterator

JOIN_S = 10.0  # how long a worker told to stop may take to exit before it is killed


@dataclass(frozen=True)
class TimedOut:
    pass


@dataclass(frozen=True)
class Died:
    exitcode: int | None  # negative: the signal that ended it


def worker_loop(tasks: connection.Connection, function: Callable, initializer: Callable | None, initargs: tuple) -> None:
    """A worker's life: set up, then answer each task until told to stop (None) or the pipe closes."""
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            args = tasks.recv()
        except EOFError:
            return
        if args is None:
            return
        tasks.send(function(*args))


class Worker:
    def __init__(self, context: BaseContext, function: Callable, initializer: Callable | None, initargs: tuple):
        self.pipe, child = context.Pipe(duplex=True)
        self.process = context.Process(target=worker_loop, args=(child, function, initializer, initargs), daemon=True)
        self.process.start()
        child.close()  # the worker holds its end: a worker that dies shows as EOF here
        self.task: tuple[Hashable, float] | None = None  # (key, deadline) of the task it runs

    def give(self, key: Hashable, args: tuple, timeout_s: float) -> None:
        self.pipe.send(args)  # a few hundred bytes to an empty pipe: never blocks
        self.task = key, time.monotonic() + timeout_s

    def stop(self) -> None:
        """Ask an idle worker to exit, and wait for it (killing one that does not)."""
        try:
            self.pipe.send(None)
        except OSError:
            pass  # it is gone already
        self.process.join(JOIN_S)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.pipe.close()


def run_isolated(
    function: Callable, tasks: Iterable[tuple[Hashable, tuple]], processes: int, timeout_s: float,
    context: BaseContext, initializer: Callable | None = None, initargs: tuple = (),
) -> Iterator[tuple[Hashable, Any]]:
    """(key, function(*args) or TimedOut or Died) for every (key, args) of `tasks`, as they finish.
    `tasks` is read only as workers become free, so a lazy source holds few tasks at once."""
    def start() -> Worker:
        return Worker(context, function, initializer, initargs)

    idle, busy = [start() for _ in range(processes)], []
    pending = iter(tasks)
    finished = False
    try:
        while True:
            while idle and not finished:
                task = next(pending, None)
                if task is None:
                    finished = True
                    break
                worker = idle.pop()
                worker.give(*task, timeout_s)
                busy.append(worker)
            if not busy:
                return
            deadline = min(w.task[1] for w in busy)
            connection.wait([w.pipe for w in busy], timeout=max(0.0, deadline - time.monotonic()))
            for worker in list(busy):
                outcome = verdict(worker)
                if outcome is None:
                    continue
                busy.remove(worker)
                key, worker.task = worker.task[0], None
                if isinstance(outcome, (TimedOut, Died)):
                    worker.kill()
                    worker = start()
                idle.append(worker)
                yield key, outcome
    finally:
        for worker in busy:  # only after a failure: the work is abandoned
            worker.kill()
        for worker in idle:
            worker.stop()


def verdict(worker: Worker) -> Any | None:
    """The busy worker's answer, TimedOut or Died; None while it is still within its deadline."""
    if worker.pipe.poll():
        try:
            return worker.pipe.recv()
        except (EOFError, OSError):  # died: the pipe closed with the process, or mid-answer
            worker.process.join()
            return Died(worker.process.exitcode)
    if time.monotonic() > worker.task[1]:
        return TimedOut()
    return None
