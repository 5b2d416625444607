"""A job over several processes: its worker starts the ranks with torch.distributed's
elastic launcher (the agent behind ``torchrun``, c10d rendezvous). Rank 0 runs the job as
``JobRun`` does (lease, metrics, logs, checkpoints); the other ranks follow it step for step
through ``fit`` and write nothing.

A job of several nodes (hosts) is a gang (service/store/gangs.py): the worker that claimed it
is node 0, hosts the rendezvous store and publishes its endpoint on the job row; a worker
that joins is one more node. The rendezvous waits for all of them, up to gang_timeout_s."""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from sqlalchemy.engine import Engine
from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, record
from torch.distributed.elastic.rendezvous.api import RendezvousError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch
from torch.nn.parallel import DistributedDataParallel

from torchkiln.models import REGISTRY
from torchkiln.models.common.options import TrainOptions
from torchkiln.models.common.registry import DataUnavailable
from torchkiln.service.store.dataset_objects import fetch_datasets, lineage_ids
from torchkiln.service.store.db import make_engine, read_session
from torchkiln.service.store.gangs import (
    lose_attempt,
    nodes_joined,
    publish_endpoint,
    requeue_unassembled,
)
from torchkiln.service.store.jobs import (
    Lease,
    WorkerIdentity,
    expire_leases_of,
    fail_job,
    heartbeat,
    requeue_stale_jobs,
)
from torchkiln.service.store.log_records import configure_logging
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Job
from torchkiln.service.store.world import record_world
from torchkiln.workers.checkpoint_payload import checkpoint_payload, restore_state
from torchkiln.workers.devices import resolve_device
from torchkiln.workers.early_stopping import MetricMissing
from torchkiln.workers.job_run import JobFailure, JobRun, data_root
from torchkiln.workers.ranks import Ranks
from torchkiln.workers.training import Diverged, TrainState, fit, new_state, to_device

logger = logging.getLogger(__name__)

T = TypeVar("T")
# A collective waits this long for a peer (rank 0 writing a big checkpoint, say) before the
# group gives up; a dead peer is noticed sooner by the agent, which stops the others.
GROUP_TIMEOUT = timedelta(minutes=10)
WORLD_REPORT_INTERVAL_S = 1.0
PAUSE_POLL_S = 0.05
# A rank that dies breaks the others' next collective (DDP's backward, a reduce) with an error
# of the survivors' own; the agent stops them within its monitor interval (0.1 s). A rank
# whose error outlives this wait failed on its own, and the job fails with its message.
PEER_LOSS_GRACE_S = 5.0


def job_options(job: Job) -> TrainOptions | None:
    """The job's options, or None where they do not parse (``JobRun`` reports why)."""
    spec = REGISTRY.get(job.model)
    if spec is None:
        return None
    try:
        return spec.parse_options(job.params)
    except ValueError:
        return None


def is_distributed(job: Job) -> bool:
    options = job_options(job)
    return options is not None and options.world_size() > 1


def rank_device(requested: str, worker_device: str, local_rank: int) -> torch.device:
    """A rank's device: the CPU, or the worker's GPU and the next ones (one per rank)."""
    device = resolve_device(requested, worker_device)
    if device.type != "cuda":
        return device
    return torch.device("cuda", ((device.index or 0) + local_rank) % torch.cuda.device_count())


@dataclass(frozen=True)
class RankTask:
    """What every rank gets from the worker that launched it (pickled by the launcher)."""

    settings: Settings
    job_id: int
    attempt: int
    model: str
    params: dict[str, Any]
    device_requested: str
    worker_device: str
    worker_id: int | None
    worker_pid: int
    beat_interval_s: float
    threads: int
    # Set by the worker on a warm shutdown: rank 0 pauses the run after the epoch.
    pause: Any
    # Set by rank 0 once its own heartbeat holds the lease.
    started: Any
    # Hosts in the job: a peer on another host dies without this host's agent seeing it.
    nodes: int = 1


class DistributedRun:
    """A claimed distributed job: launch its ranks here, and clean up after a lost one."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        job: Job,
        *,
        device: str,
        worker_id: int | None,
        beat_interval_s: float,
        should_pause: Callable[[], bool],
    ) -> None:
        assert job.id is not None
        self.settings, self.engine, self.job, self.device = settings, engine, job, device
        self.lease = Lease(job_id=job.id, attempt=job.attempts)
        self.worker_id, self.beat_interval_s = worker_id, beat_interval_s
        self.should_pause = should_pause
        # The claimer of a gang job is node 0: it publishes the endpoint the joiners read.
        self.is_leader = job.gang_endpoint is None
        self.endpoint = job.gang_endpoint

    def perform(self) -> None:
        options = job_options(self.job)
        assert options is not None and options.distributed is not None
        procs, nodes = options.distributed.procs_per_node, options.distributed.nodes
        try:
            self.check_devices(procs)
        except JobFailure as error:
            if self.is_leader:
                fail_job(self.engine, self.lease, str(error))
            else:
                lose_attempt(self.engine, self.lease)
            return
        if nodes == 1:
            self.endpoint = f"127.0.0.1:{free_port()}"
        elif self.is_leader:
            address = self.settings.node_address or socket.gethostname()
            self.endpoint = f"{address}:{free_port('')}"
            if not publish_endpoint(self.engine, self.lease, self.endpoint):
                return  # the lease moved on
        context = multiprocessing.get_context("spawn")
        pause, started, done = context.Event(), context.Event(), threading.Event()
        watcher = threading.Thread(target=self.watch, args=(pause, started, done), daemon=True)
        watcher.start()
        task = RankTask(
            settings=self.settings,
            job_id=self.lease.job_id,
            attempt=self.lease.attempt,
            model=self.job.model,
            params=self.job.params,
            device_requested=self.job.device_requested,
            worker_device=self.device,
            worker_id=self.worker_id,
            worker_pid=os.getpid(),
            beat_interval_s=self.beat_interval_s,
            threads=max(1, torch.get_num_threads() // procs),
            pause=pause,
            started=started,
            nodes=nodes,
        )
        logger.info(
            "job %s: launching %s processes (node %s of %s, rendezvous %s)",
            self.lease.job_id,
            procs,
            "0" if self.is_leader else "n",
            nodes,
            self.endpoint,
        )
        try:
            with tempfile.TemporaryDirectory(prefix="torchkiln-elastic-") as logs:
                elastic_launch(self.launch_config(procs, nodes, logs), run_rank)(task)
        except ChildFailedError as error:
            self.after_failure(error, nodes)
        except RendezvousError as error:
            self.unassembled(nodes, error)
        finally:
            done.set()
            watcher.join()

    def check_devices(self, procs: int) -> None:
        device = resolve_device(self.job.device_requested, self.device)
        if device.type == "cuda" and procs > torch.cuda.device_count():
            raise JobFailure(
                f"procs_per_node={procs} needs {procs} GPUs; this host has "
                f"{torch.cuda.device_count()}"
            )
        if device.type not in ("cpu", "cuda"):
            raise JobFailure(f"distributed jobs train on cpu (gloo) or cuda (nccl), not {device}")

    def launch_config(self, procs: int, nodes: int, log_dir: str) -> LaunchConfig:
        # Node 0 hosts the c10d store, every other node is its client (on loopback torch's
        # guess would make each try to host it).
        rdzv_configs: dict[str, Any] = {"is_host": self.is_leader}
        if nodes > 1:
            rdzv_configs["join_timeout"] = self.settings.gang_timeout_s
        assert self.endpoint is not None
        return LaunchConfig(
            min_nodes=nodes,
            max_nodes=nodes,
            nproc_per_node=procs,
            rdzv_backend="c10d",
            rdzv_endpoint=self.endpoint,
            rdzv_configs=rdzv_configs,
            run_id=f"torchkiln-job-{self.lease.job_id}-attempt-{self.lease.attempt}",
            local_addr=self.settings.node_address if nodes > 1 else None,
            # A lost rank is a lost attempt: the queue retries it, from the last checkpoint.
            max_restarts=0,
            start_method="spawn",
            # SIGTERM and SIGINT stay the worker's: a warm shutdown pauses the run instead.
            signals_to_handle="SIGHUP",
            logs_specs=DefaultLogsSpecs(log_dir=log_dir),
        )

    def watch(self, pause: Any, started: Any, done: threading.Event) -> None:
        """Hold the lease while the ranks start (imports, data), until rank 0's heartbeat
        takes over; pass the worker's stop flag on to them as ``pause``."""
        beaten_at = time.monotonic()
        while not done.wait(PAUSE_POLL_S):
            if not pause.is_set() and self.should_pause():
                pause.set()
            # Node 0 holds the lease while the gang assembles; joiners never renew it.
            holds = self.is_leader and not started.is_set()
            if holds and time.monotonic() - beaten_at >= self.beat_interval_s:
                beaten_at = time.monotonic()
                try:
                    heartbeat(self.engine, self.lease, lease_s=self.settings.lease_s)
                except Exception:
                    logger.warning("heartbeat failed for job %s", self.lease.job_id, exc_info=True)

    def unassembled(self, nodes: int, error: RendezvousError) -> None:
        """The rendezvous gave up: node 0 frees the slots and says how many nodes came."""
        if not self.is_leader:
            logger.warning("job %s: could not join its gang: %s", self.lease.job_id, error)
            return
        joined = nodes_joined(self.engine, self.lease.job_id)
        reason = (
            f"gang did not assemble: {joined} of {nodes} nodes joined within "
            f"gang_timeout_s={self.settings.gang_timeout_s:g}"
        )
        logger.warning("job %s: %s", self.lease.job_id, reason)
        requeue_unassembled(self.engine, self.lease, reason)

    def after_failure(self, error: ChildFailedError, nodes: int = 1) -> None:
        """A rank failed. Rank 0 records the job's own ends; if the job is still this
        attempt's, a rank raised (the job fails with its error) or every failed rank was
        killed (a lost rank, then the agent stopping the rest: the attempt is lost, and the
        queue runs the job again from its last checkpoint). On several hosts a rank that
        raised most likely lost a peer on another host: a lost attempt too."""
        with read_session(self.engine) as session:
            job = session.get(Job, self.lease.job_id)
        if job is None or job.status != JobState.RUNNING or job.attempts != self.lease.attempt:
            logger.info("job %s: ranks exited after the job ended: %s", self.lease.job_id, error)
            return
        if nodes > 1:
            logger.warning("job %s: gang lost a rank (%s); requeued", job.id, error)
            lose_attempt(self.engine, self.lease)
            return
        raised = sorted((r, f) for r, f in error.failures.items() if f.exitcode > 0)
        if raised:
            rank, failure = raised[0]
            message = failure.message if isinstance(failure.message, str) else failure.message
            fail_job(self.engine, self.lease, f"rank {rank} failed: {message}")
            return
        lost = ", ".join(f"{r} ({f.signal_name()})" for r, f in sorted(error.failures.items()))
        logger.warning("job %s: ranks lost: %s; requeued", job.id, lost)
        assert job.worker_host is not None and job.worker_pid is not None
        expire_leases_of(self.engine, WorkerIdentity(job.worker_host, job.worker_pid))
        requeue_stale_jobs(self.engine)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now on ``host`` ('' for every interface), for the rendezvous store."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@record  # a failing rank's traceback reaches the worker's ChildFailedError
def run_rank(task: RankTask) -> None:
    """Entry point of each rank, in a process the elastic agent started: the agent's
    environment (RANK, WORLD_SIZE, MASTER_ADDR, ...) initialises the process group."""
    configure_logging(task.settings.log_format)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = rank_device(task.device_requested, task.worker_device, int(os.environ["LOCAL_RANK"]))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(task.threads)
    dist.init_process_group(backend, timeout=GROUP_TIMEOUT)
    try:
        options = REGISTRY[task.model].parse_options(task.params)
        ranks = GroupRanks(rank, world, device, backend, seed=options.seed, epochs=options.epochs)
        if rank == 0:
            lead(task, ranks, device)
        else:
            follow(task, ranks, device)
    finally:
        dist.destroy_process_group()


def lead(task: RankTask, ranks: GroupRanks, device: torch.device) -> None:
    """Rank 0: the job's own run, with the others in step."""
    engine = make_engine(task.settings)
    lease = Lease(job_id=task.job_id, attempt=task.attempt)
    try:
        with read_session(engine) as session:
            job = session.get(Job, task.job_id)
        if job is None or job.attempts != task.attempt:
            raise RuntimeError(f"job {task.job_id}: attempt {task.attempt} is no longer running")
        ranks.report = lambda world: record_world(engine, lease, world)

        def should_pause() -> bool:
            # The worker asked, or it is gone (SIGKILL): hand the job back after this epoch.
            return task.pause.is_set() or os.getppid() != task.worker_pid

        task.started.set()
        run = LeadRun(
            task.settings,
            engine,
            job,
            device=str(device),
            worker_id=task.worker_id,
            beat_interval_s=task.beat_interval_s,
            should_pause=should_pause,
            ranks=ranks,
        )
        run.spans_hosts = task.nodes > 1
        run.perform()
        if run.lost_peer:
            # Exiting non-zero spares this node's agent its exit barrier, which would wait
            # minutes for the lost node's agent.
            raise RuntimeError(f"job {task.job_id}: a rank on another host was lost")
        with read_session(engine) as session:
            ended = session.get(Job, task.job_id)
        if ended is not None and ended.status == JobState.FAILED:
            # Failed on rank 0 alone, perhaps before the others were in step: exiting non-zero
            # makes the agent stop them rather than leave them waiting on a collective.
            raise RuntimeError(f"job {task.job_id} failed: {ended.error}")
    finally:
        engine.dispose()


class LeadRun(JobRun):
    """Rank 0's run: as a one-process job's, except that an error may be a peer's death."""

    spans_hosts = False
    lost_peer = False

    def execute(self) -> None:
        try:
            super().execute()
        except (Diverged, JobFailure, DataUnavailable, MetricMissing):
            raise  # every rank diverged together, or rank 0's own failure
        except Exception:
            time.sleep(PEER_LOSS_GRACE_S)  # the agent stops this process if a peer died
            if self.spans_hosts:
                # A peer on another host: this host's agent never saw it die.
                self.heart.stop()
                lose_attempt(self.engine, self.lease)
                self.lost_peer = True
            raise


def follow(task: RankTask, ranks: GroupRanks, device: torch.device) -> None:
    """Ranks 1..: the same data and network, rank 0's state, its decisions; no writes."""
    spec = REGISTRY[task.model]
    options = spec.parse_options(task.params)
    spec = spec.for_options(options)
    # A rank on another host: its worker's datasets folder may not hold the dataset yet.
    fetch_datasets(
        task.settings.artifact_store(), task.settings.datasets_dir, lineage_ids(task.params)
    )
    data = to_device(spec.load_data(options, data_root(task.settings)), device)
    state = new_state(spec, options, device)
    ranks.share(state, spec.name)

    def orphaned() -> bool:
        # Rank 0 decides stops and pauses; this rank only leaves when its own worker is gone
        # (SIGKILL): an orphan would keep the gang training for a node that has died. Its
        # exit fails rank 0's next collective, which stops the gang as a lost node does.
        if os.getppid() != task.worker_pid:
            raise RuntimeError(f"rank {ranks.rank}: its worker (pid {task.worker_pid}) is gone")
        return False

    try:
        fit(
            spec,
            options,
            data,
            state,
            on_epoch=lambda state, metrics: None,
            should_stop=orphaned,
            should_pause=orphaned,
            fused_steps=False,
            ranks=ranks,
        )
    except Diverged:
        pass  # every rank saw the same figures; rank 0 records the failure
    except Exception:
        time.sleep(PEER_LOSS_GRACE_S)  # rank 0 died, or failed the job: the agent stops us
        raise


class GroupRanks(Ranks):
    """A rank of a torch.distributed process group (gloo on the CPU, nccl on CUDA)."""

    stop_check_every = 8

    def __init__(
        self,
        rank: int,
        world: int,
        device: torch.device,
        backend: str,
        *,
        seed: int,
        epochs: int = 1,
    ) -> None:
        self.rank, self.world, self.device, self.backend, self.seed = (
            rank,
            world,
            device,
            backend,
            seed,
        )
        # Where collectives' tensors live: nccl reduces on the GPU, gloo on the CPU.
        self.comm = device if backend == "nccl" else torch.device("cpu")
        self.rows = 0
        self.augment: tuple[int, torch.Generator] | None = None
        self.world_info: dict[str, Any] | None = None
        self.report: Callable[[dict[str, Any]], Any] | None = None  # rank 0's, to the job row
        self.reported_at = 0.0
        # Epochs done and asked for: the last epoch's throughput is written whatever the time.
        self.epoch, self.epochs = 0, epochs

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        # DistributedSampler's: pad with the order's first rows to a multiple of the world,
        # then rank r takes every world-th from r. Equal shards keep the ranks in step.
        total = -(-len(order) // self.world) * self.world
        if total != len(order):
            order = order.repeat(-(-total // len(order)))[:total]
        mine = order[self.rank :: self.world]
        self.rows = len(mine)
        return mine

    def mean(self, total: torch.Tensor, count: int) -> float:
        count_ = torch.tensor(count, dtype=torch.float64, device=total.device)
        sums = torch.stack([total.double(), count_]).to(self.comm)
        dist.all_reduce(sums)
        return (sums[0] / sums[1]).item()

    def sums(self, *values: float) -> tuple[float, ...]:
        reduced = torch.tensor(values, dtype=torch.float64, device=self.comm)
        dist.all_reduce(reduced)
        return tuple(reduced.tolist())

    def decide(self, flag: bool) -> bool:
        box = torch.tensor([int(flag)], device=self.comm)
        dist.broadcast(box, src=0)
        return bool(box.item())

    def agree(self, value: T) -> T:
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.comm)
        return box[0]

    def share(self, state: TrainState, model_name: str) -> None:
        # The whole resumable state goes from rank 0, in CPU tensors (each rank puts them on
        # its own device): weights, optimizer, epoch, RNGs, schedule, early stopper.
        payload = _to_cpu(checkpoint_payload(state, model_name)) if self.rank == 0 else None
        payload = self.agree(payload)
        if self.rank != 0:
            restore_state(state, payload)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        state.wrapped = DistributedDataParallel(state.module, device_ids=device_ids)
        me = {
            "rank": self.rank,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": str(self.device),
        }
        everyone: list[Any] = [None] * self.world
        dist.all_gather_object(everyone, me)
        self.world_info = {"world_size": self.world, "backend": self.backend, "ranks": everyone}
        self.epoch = state.epoch
        self.publish(force=True)

    def augment_generator(self, state: TrainState) -> torch.Generator:
        # Not the shared generator: the ranks augment different rows, and the generator must
        # stay equal on every rank (it draws the next epoch's order). Seeded per epoch, so a
        # resumed run augments as the first one would have.
        if self.augment is None or self.augment[0] != state.epoch:
            seed = (self.seed * 1_000_003 + state.epoch) * 64 + self.rank
            self.augment = (state.epoch, torch.Generator().manual_seed(seed))
        return self.augment[1]

    def before_eval(self, module: torch.nn.Module) -> None:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)

    def note_epoch(self, seconds: float) -> None:
        speed = torch.tensor([self.rows / max(seconds, 1e-9)], device=self.comm)
        speeds = [torch.zeros_like(speed) for _ in range(self.world)]
        dist.all_gather(speeds, speed)
        if self.world_info is not None:
            for info, value in zip(self.world_info["ranks"], speeds, strict=True):
                info["samples_per_s"] = round(value.item(), 1)
            self.epoch += 1
            self.publish(force=self.epoch >= self.epochs)

    def publish(self, force: bool = False) -> None:
        """Rank 0 writes the world to the job row, at most once a second."""
        now = time.monotonic()
        if self.report is None or self.world_info is None:
            return
        if force or now - self.reported_at >= WORLD_REPORT_INTERVAL_S:
            self.reported_at = now
            self.report(self.world_info)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(item) for item in value)
    return value
