"""Workers on a Ray cluster (the optional extra: pip install face-normals[ray]).

The units become a Ray Dataset (one row each, as JSON), mapped through an actor pool
(`map_batches` with a callable class and `ActorPoolStrategy`): each actor builds one `Worker`
(the model loaded once), writes the photos' files to the output folder (storage every node must
see) and hands the records back; the driver appends them to the manifest as they stream in, so a
record is written once even when Ray redoes a batch.  An actor that dies is restarted by Ray and
the batch it held is run again (its files are rewritten whole, work.py).  Ray's notices go to
stderr, so the driver's stdout carries only what `batch` prints (its `--json` summary).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import ray

from .inputs import Frame, Unit
from .local import BatchError
from .work import Settings, Worker

CPUS_LEFT_FOR_READING = 0.5   # an actor pool that holds every CPU starves Ray's read tasks


def _unit_json(unit: Unit) -> str:
    return json.dumps(dataclasses.asdict(unit))


def _unit(text: str) -> Unit:
    data = json.loads(text)
    return Unit(tuple(Frame(**frame) for frame in data["frames"]), data["clip"], data["video"])


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 points at stderr meanwhile: Ray prints its notices (a worker that died)
    to stdout from a thread of its own, and the processes `ray.init` starts inherit the descriptor."""
    sys.stdout.flush()
    stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()           # what Ray left in Python's buffer still goes to stderr
        os.dup2(stdout, 1)
        os.close(stdout)


class _PhotoActor:
    """One actor of the pool: a Worker, and a batch of units in, their records out."""

    def __init__(self, settings: Settings):
        self.worker = Worker(settings)

    def __call__(self, batch: dict) -> dict:
        records: list[dict] = []
        for text in batch["unit"]:
            self.worker.run(_unit(str(text)), records.append)
        return {"record": [json.dumps(record) for record in records]}


class RayPool:
    def __init__(self, settings: Settings, address: str, *, workers: int | None = None):
        self.settings, self.address, self.workers = settings, address, workers

    def _connect(self) -> None:
        # the nodes import this package as the driver does (a source checkout on shared storage)
        source = str(Path(__file__).resolve().parents[2])
        env = {"env_vars": {"PYTHONPATH": source, "OMP_NUM_THREADS": str(self.settings.threads or 1)}}
        if self.address == "auto":
            try:
                ray.init(address="auto", runtime_env=env, log_to_driver=False)
            except ConnectionError:        # no cluster running: one on this machine
                ray.init(runtime_env=env, log_to_driver=False, include_dashboard=False)
        else:
            ray.init(address=self.address, runtime_env=env, log_to_driver=False)

    def run(self, units: list[Unit], on_record: Callable[[dict], None], stopping: Callable[[], bool]) -> None:
        with _stdout_to_stderr():
            self._connect()
            try:
                resources = ray.cluster_resources()
                gpus = int(resources.get("GPU", 0))
                threads = self.settings.threads or 1
                cpus, gpus_each = (1, 1) if gpus else (threads, 0)
                if gpus:
                    size = self.workers or gpus
                else:
                    size = self.workers or max(1, int((resources.get("CPU", 1) - CPUS_LEFT_FOR_READING) // threads))
                size = min(size, len(units))
                dataset = ray.data.from_items([{"unit": _unit_json(unit)} for unit in units],
                                              override_num_blocks=len(units))
                records = dataset.map_batches(_PhotoActor, fn_constructor_kwargs={"settings": self.settings},
                                              batch_size=1, compute=ray.data.ActorPoolStrategy(size=size),
                                              num_cpus=cpus, num_gpus=gpus_each)
                for row in records.iter_rows():
                    on_record(json.loads(row["record"]))
                    if stopping():
                        break
            except ray.exceptions.RayError as error:    # e.g. every actor failing to load the model
                raise BatchError(f"the Ray run failed: {str(error).strip().splitlines()[-1]}") from None
            finally:
                ray.shutdown()
