"""Untrusted work in worker processes: one task at a time per process, each under a deadline.

A decoder fed hostile bytes may raise, hang, crash its process or ask for gigabytes. Each worker
here has a pipe of its own and is handed one small task at a time (a file's path, never its
bytes), so nothing sent to a worker can fill a pipe and block the crawl. A task ends in one of three
ways, each the verdict of that task alone:

- its result (the function turns its own exceptions into verdicts);
- TimedOut: it ran past the deadline, and its process was killed;
- Died: its process ended without answering (a crash, os._exit, the kernel's OOM killer).

A task's deadline starts when a ready worker takes it: a worker says when it is set up, and the
time it takes to start counts against no task. A killed or dead worker is replaced at once. When
the tasks run out, every worker is told to stop and exits by itself, even one still starting:
nothing is torn down under a process that is starting (no shared semaphores, unlike
multiprocessing's and pebble's pools, whose teardown raced with a restarted worker). Only a crawl
that failed kills its workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from multiprocessing import connection
from multiprocessing.context import BaseContext
from typing import Any, Callable, Hashable, Iterable, Iterator

JOIN_S = 10.0  # how long a worker told to stop may take to exit before it is killed
START_S = 60.0  # how long a worker may take to start: a worker that cannot start is a broken set-up
READY = "ready"


@dataclass(frozen=True)
class TimedOut:
    pass


@dataclass(frozen=True)
class Died:
    exitcode: int | None  # negative: the signal that ended it


class WorkerFailed(RuntimeError):
    """A worker process died or hung while starting, before any task: the set-up is broken."""


def worker_loop(tasks: connection.Connection, function: Callable, initializer: Callable | None, initargs: tuple) -> None:
    """A worker's life: set up, say so, then answer each task until told to stop (None) or the pipe closes."""
    if initializer is not None:
        initializer(*initargs)
    tasks.send(READY)
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
        self.key: Hashable = None  # the task it runs
        self.deadline = time.monotonic() + START_S  # to be ready by; then, to finish its task by

    def give(self, key: Hashable, args: tuple, timeout_s: float) -> None:
        self.pipe.send(args)  # a few hundred bytes to an empty pipe: never blocks
        self.key, self.deadline = key, time.monotonic() + timeout_s

    def answer(self) -> Any | None:
        """What the worker said (Died if it died first), or None while it is silent and within its deadline."""
        if self.pipe.poll():
            try:
                return self.pipe.recv()
            except (EOFError, OSError):  # died: the pipe closed with the process, or mid-answer
                self.process.join()
                return Died(self.process.exitcode)
        if time.monotonic() > self.deadline:
            return TimedOut()
        return None

    def stop(self) -> None:
        """Ask the worker to exit once it is idle, and wait for it (killing one that does not)."""
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

    starting, idle, busy = [start() for _ in range(processes)], [], []
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
            if finished and not busy:
                return
            waiting = starting + busy
            connection.wait([w.pipe for w in waiting], timeout=max(0.0, min(w.deadline for w in waiting) - time.monotonic()))
            for worker in list(starting):
                said = worker.answer()
                if said == READY:
                    starting.remove(worker)
                    idle.append(worker)
                elif isinstance(said, Died):
                    raise WorkerFailed(f"a worker process died while starting (exit status {said.exitcode})")
                elif isinstance(said, TimedOut):
                    raise WorkerFailed(f"a worker process did not start within {START_S:g} s")
            for worker in list(busy):
                outcome = worker.answer()
                if outcome is None:
                    continue
                busy.remove(worker)
                if isinstance(outcome, (TimedOut, Died)):
                    worker.kill()
                    starting.append(start())
                else:
                    idle.append(worker)
                yield worker.key, outcome
    finally:
        for worker in busy:  # only after a failure: the work is abandoned
            worker.kill()
        for worker in starting + idle:
            worker.stop()
