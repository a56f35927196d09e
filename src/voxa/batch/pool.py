"""Executors: where groups of files are transcribed. Both hand back :class:`work.Outcome` lists.

- ``LocalPool``: worker processes on this machine (``concurrent.futures`` with the spawn
  start method), each with its own model loaded once; a worker that dies (out of memory, killed)
  breaks the pool, which is rebuilt, and its groups count an attempt.
- ``RayPool``: the same worker as Ray actors (``voxa[ray]``), one model per actor, on a local
  Ray instance (``auto`` starts one on 127.0.0.1) or an existing cluster's address.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os

from . import work


class LocalPool:
    def __init__(self, workers: int, model: str | None, threads: int):
        self.workers, self.model, self.threads = workers, model, threads
        # Workers inherit OMP_NUM_THREADS = their thread count, as Ray sets it for its actors:
        # CTranslate2's results differ slightly with it, and a batch should give the same
        # transcripts on either executor. It must be set before a worker imports CTranslate2.
        self._omp = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = str(threads)
        self._pool = self._make()

    def _make(self):
        return cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=work.load, initargs=(self.model, self.threads))

    def submit(self, paths, options, speakers):
        future = self._pool.submit(work.run_group, paths, options, speakers)
        future.pool = self._pool  # a dead worker breaks the whole pool: know which one a future had
        return future

    def wait(self, handles):
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def result(self, handle) -> list[work.Outcome]:
        try:
            return handle.result()
        except (cf.process.BrokenProcessPool, cf.CancelledError):
            if handle.pool is self._pool:  # the first to notice builds a new pool; the rest just retry
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._make()
            raise WorkerLost("a worker process died") from None

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = self._omp


class WorkerLost(Exception):
    """The worker running a group went away; the group is tried again."""


class RayPool:
    def __init__(self, workers: int, model: str | None, threads: int, address: str):
        try:
            import ray
        except ImportError:
            from ..errors import ModelError

            raise ModelError("--ray needs the ray extra: pip install 'voxa[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            if address == "auto-local":  # a private local instance on loopback
                ray.init(num_cpus=workers * threads, include_dashboard=False, _node_ip_address="127.0.0.1",
                         log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)

        @ray.remote(num_cpus=threads)
        class Transcriber:
            def __init__(self, model, threads):
                work.load(model, threads)

            def run(self, paths, options, speakers):
                return work.run_group(paths, options, speakers)

        self._new = lambda: Transcriber.remote(model, threads)
        self._actors = [self._new() for _ in range(workers)]
        self._turn = 0
        self._owner = {}

    def submit(self, paths, options, speakers):
        actor = self._actors[self._turn % len(self._actors)]  # an actor runs its calls one by one
        self._turn += 1
        ref = actor.run.remote(paths, options, speakers)
        self._owner[ref] = actor
        return ref

    def wait(self, handles):
        done, _ = self._ray.wait(list(handles), num_returns=1)
        return done

    def result(self, handle) -> list[work.Outcome]:
        actor = self._owner.pop(handle)
        try:
            return self._ray.get(handle)
        except self._ray.exceptions.RayActorError:
            if actor in self._actors:  # replace the dead actor; its group is tried again
                self._actors[self._actors.index(actor)] = self._new()
            raise WorkerLost("a Ray actor died") from None

    def close(self):
        for a in self._actors:
            self._ray.kill(a)
