"""Workers on this machine: processes (spawned, so each starts clean of the parent's torch
threads), each loading the model once and setting its own torch threads, fed one unit at a time
so that stopping leaves nothing queued.

Messages from a worker, on one queue: ("ready", pid), ("broken", pid, why): its model did not load,
("start", unit, pid), ("record", unit, record) once a photo's files exist, ("end", unit, pid).
A worker that dies (killed, out of memory) has the photos it had not finished reported failed
(the next run retries them) and is replaced while work is left.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
from collections import deque
from collections.abc import Callable

from .inputs import Unit
from .work import Settings, Worker

QUEUED_PER_WORKER = 2        # units handed out ahead, so a worker never waits for the next
THREADS = 2                  # torch threads per worker on a CPU


def default_workers(gpu: bool, threads: int = THREADS) -> int:
    """One worker on a GPU (it holds the device), else one per `threads` cores."""
    return 1 if gpu else max(1, (os.cpu_count() or 1) // threads)


def photos_per_pass(gpu: bool) -> int:
    return 8 if gpu else 2


class BatchError(RuntimeError):
    """The batch cannot go on at all (e.g. the model does not load)."""


def _worker_main(settings: Settings, tasks, results, stop) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the driver's: it lets work in flight end
    import os
    try:
        worker = Worker(settings)
    except Exception as error:     # noqa: BLE001 - reported whole to the driver
        results.put(("broken", os.getpid(), f"{type(error).__name__}: {error}"))
        return
    results.put(("ready", os.getpid()))
    while (task := tasks.get()) is not None:
        number, unit = task
        results.put(("start", number, os.getpid()))

        def emit(record: dict, number: int = number) -> None:
            results.put(("record", number, record))
        if not stop.is_set():
            worker.run(unit, emit, stop.is_set)
        results.put(("end", number, os.getpid()))


class LocalPool:
    def __init__(self, settings: Settings, workers: int):
        self.settings, self.workers = settings, workers

    def run(self, units: list[Unit], on_record: Callable[[dict], None], stopping: Callable[[], bool]) -> None:
        """Every unit through the workers; on_record(record) for each photo, in this process.
        Once stopping() is true, nothing more is handed out and the work in flight ends."""
        context = multiprocessing.get_context("spawn")
        tasks, results, stop = context.Queue(), context.Queue(), context.Event()
        processes = {}

        def start_worker() -> None:
            process = context.Process(target=_worker_main, args=(self.settings, tasks, results, stop), daemon=True)
            process.start()
            processes[process.pid] = process

        for _ in range(min(self.workers, len(units))):
            start_worker()
        waiting = deque(enumerate(units))
        in_flight: dict[int, tuple[Unit, set[str]]] = {}
        started_by: dict[int, int] = {}                  # unit number -> worker pid

        def hand_out() -> None:
            while waiting and len(in_flight) < QUEUED_PER_WORKER * len(processes) and not stopping():
                number, unit = waiting.popleft()
                in_flight[number] = (unit, set())
                tasks.put((number, unit))

        try:
            hand_out()
            while in_flight:
                if stopping():
                    stop.set()
                try:
                    message = results.get(timeout=0.5)
                except queue.Empty:
                    self._bury(processes, started_by, in_flight, on_record, start_worker, bool(waiting))
                    hand_out()
                    continue
                kind = message[0]
                if kind == "broken":
                    raise BatchError(f"a worker could not load the model: {message[2]}")
                if kind == "start":
                    started_by[message[1]] = message[2]
                elif kind == "record":
                    in_flight[message[1]][1].add(message[2]["input"])
                    on_record(message[2])
                elif kind == "end":
                    in_flight.pop(message[1], None)
                    started_by.pop(message[1], None)
                    hand_out()
        finally:
            stop.set()
            for _ in processes:
                tasks.put(None)
            for process in processes.values():
                process.join(timeout=30)
                if process.is_alive():
                    process.terminate()

    @staticmethod
    def _bury(processes, started_by, in_flight, on_record, start_worker, work_left: bool) -> None:
        """Workers that died: their unfinished photos failed, a new worker in each one's place."""
        for pid, process in list(processes.items()):
            if process.is_alive():
                continue
            del processes[pid]
            for number in [n for n, p in started_by.items() if p == pid]:
                unit, reported = in_flight.pop(number)
                del started_by[number]
                for frame in unit.frames:
                    if frame.key not in reported:
                        on_record({"input": frame.key, "status": "failed", "outputs": {}, "timings": {},
                                   "error": {"code": "internal", "message": f"the worker process {pid} died "
                                             f"(exit code {process.exitcode}) while on this photo"}})
            if work_left or in_flight:
                start_worker()
