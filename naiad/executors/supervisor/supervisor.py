"""The supervisor of one job: it lays out the job's directory, stages code and data, runs
the attempts (retrying a failed one while retries are left, resuming from
``checkpoints/``), enforces the runtime limit and stop requests, uploads the results and
logs, and records every change in ``state.json``. It needs only the filesystem and the
artifact store, never the server, so a job keeps running while the server restarts.

A job on several nodes runs each attempt as one process tree per host (``hosts.py``):
they start together, and the first host to fail fails the attempt and ends the others.
"""

import contextlib
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from naiad.executors.supervisor import (
    checkpoint_sync,
    container,
    elastic,
    fork,
    launch,
    log_metrics,
    sandbox,
    tensorflow,
)
from naiad.executors.supervisor.hosts import Host, HostGroup, host_text, hosts_of
from naiad.executors.supervisor.jobenv import (
    decode_hyperparameters,
    job_env,
    user_args,
    write_config,
)
from naiad.executors.supervisor.memory import MemoryWatch, out_of_memory
from naiad.executors.supervisor.outputs import upload_logs, upload_results
from naiad.executors.supervisor.pyenv import envs_dir, job_python, private_python
from naiad.executors.supervisor.staging import StagingError, extract_source, stage_channels
from naiad.executors.supervisor.workdir import (
    WorkDir,
    ended,
    job_processes,
    read_grant,
    read_json,
    read_spec,
    write_json_atomic,
    write_pid,
)

POLL_S = 0.1
CLEANUP_GRACE_S = 2.0


class StopRequested(BaseException):
    """Raised out of staging by SIGTERM, so a stop does not wait for a long download.

    A BaseException, as KeyboardInterrupt is: a download's ``except Exception`` must not
    turn a stop into a failed fetch.
    """


class Finished(Exception):
    """The job reached a final phase; carries it to the one place that records it."""

    def __init__(self, phase: str, reason: str | None, exit_code: int | None = None) -> None:
        super().__init__(reason)
        self.phase, self.reason, self.exit_code = phase, reason, exit_code


class Supervisor:
    def __init__(self, root: Path, warm: bool = False) -> None:
        self.wd = WorkDir(root)
        self.spec = read_spec(root)
        self.state: dict[str, Any] = {
            "phase": "starting",
            "reason": None,
            "attempt": 0,
            "started_at": None,
            "exit_code": None,
            "pid": None,
            "supervisor_pid": os.getpid(),
        }
        self.stop_signalled = False
        self.interruptible = False
        self.hosts = hosts_of(self.spec, self.wd)
        # the attempt's processes, one tree per host
        self.group: HostGroup | elastic.ElasticGroup | None = None
        self.warm = warm  # torch is imported here: fork single-process attempts from us
        self.python = sys.executable  # or the env built for the job's requirements.txt
        self.tensorflow = False  # decided once the code is unpacked (check_tensorflow)
        # A gang's host mirrors checkpoints while it runs: its machine may be lost with them
        gang = self.spec.gang is not None
        self.mirror = (
            checkpoint_sync.Mirror(self.spec, self.wd, self.log, both_ways=self.spec.elastic)
            if gang
            else None
        )

    # -- bookkeeping ----------------------------------------------------------------
    def log(self, message: str) -> None:
        """A line in the job log, marked as the platform's, not the script's."""
        self.wd.logs.mkdir(parents=True, exist_ok=True)
        with open(self.wd.job_log, "a") as f:
            f.write(f"[naiad] {message}\n")

    def save(self, **changes: Any) -> None:
        self.state.update(changes, updated_at=time.time())
        write_json_atomic(self.wd.state_file, self.state)

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_signalled = True
        if self.interruptible:
            raise StopRequested

    def stop_wanted(self) -> bool:
        return self.stop_signalled or self.wd.stop_file.exists()

    def stop_grace(self) -> float:
        request = read_json(self.wd.stop_file) or {}
        grace = request.get("grace_s")
        return float(grace) if isinstance(grace, int | float) else self.spec.stop_grace_s

    # -- the job --------------------------------------------------------------------
    def resume_point(self) -> int:
        """The attempt to run: after a lost supervisor, the next one (ending any leftovers)."""
        previous = read_json(self.wd.state_file)
        if not previous:
            return self.spec.gang.attempt if self.spec.gang else 0
        if ended(previous):
            raise Finished(previous["phase"], previous.get("reason"), previous.get("exit_code"))
        self.state["started_at"] = previous.get("started_at")
        self.state["events"] = previous.get("events") or []  # an elastic job's resizes so far
        attempt = int(previous.get("attempt") or 0)
        if not previous.get("pid"):
            return attempt
        for pid in job_processes(self.wd.root):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.log(f"attempt {attempt} was lost with its supervisor; starting attempt {attempt + 1}")
        return attempt + 1

    def prepare(self) -> list[str]:
        """Directories, code, data and config: everything before the first process starts."""
        for d in (self.wd.checkpoints, self.wd.naiad_home):
            d.mkdir(parents=True, exist_ok=True)
        for host in self.hosts:
            for d in (host.wd.config, host.wd.data):
                d.mkdir(parents=True, exist_ok=True)
        restored = checkpoint_sync.pull(self.spec, self.wd)
        if restored:
            where = checkpoint_sync.describe(self.spec)
            self.log(f"restored {restored} checkpoint file(s) from {where}")
        try:
            self.interruptible = True
            if self.stop_wanted():
                raise StopRequested
            if self.spec.command is not None:
                container.check_dir(self.wd)
            extract_source(self.spec, self.wd.code, self.log)
            self.python = job_python(
                self.wd.code, envs_dir(self.wd.root), self.log, self.wd.job_log
            )
            if self.spec.command is not None and self.python == sys.executable:
                self.python = private_python(self.wd.private_python, self.log)
            self.tensorflow = self.check_tensorflow()
            data_dirs = [host.wd.data for host in self.hosts]
            gang = self.spec.gang
            share = (gang.rank, len(gang.hosts)) if gang else None
            records: dict[str, Any] = {}
            channels = stage_channels(
                self.spec, data_dirs, self.wd.channels, self.log, share, records
            )
            if records and (gang is None or gang.rank == 0):
                from naiad.executors.supervisor.tables import send_tags

                send_tags(self.spec, records, self.log)
            container.stage_channels(self.spec, [host.wd for host in self.hosts], self.log)
        except StopRequested:
            raise Finished("stopped", "Stopped on request") from None
        except StagingError as exc:
            if self.stop_signalled:  # a library turned the interruption into an error of its own
                raise Finished("stopped", "Stopped on request") from None
            raise Finished("failed", str(exc)) from None
        finally:
            self.interruptible = False
        for host in self.hosts:
            write_config(self.spec, host.wd, channels, host.name)
        return channels

    def check_tensorflow(self) -> bool:
        """Whether this is a TensorFlow job; fails it when its Python lacks TensorFlow or it
        asks for what TensorFlow cannot do (an elastic world)."""
        env = {**os.environ, **self.spec.environment}
        if not tensorflow.is_tensorflow(self.spec, self.wd.code, env):
            return False
        why = tensorflow.missing(self.python)
        if why is None and self.spec.elastic:
            why = (
                "A TensorFlow job cannot be elastic: MultiWorkerMirroredStrategy's cluster is "
                "fixed when it starts. Submit it with a fixed number of nodes."
            )
        if why is not None:
            raise Finished("failed", why)
        self.log("framework: tensorflow (TF_CONFIG and the Keras callback are set up)")
        return True

    def fresh_outputs(self) -> None:
        """Each attempt starts with empty model/ and output/, as on SageMaker; checkpoints/ stay."""
        for host in self.hosts:
            for d in (host.wd.model, host.wd.output):
                shutil.rmtree(d, ignore_errors=True)
            host.wd.output_data.mkdir(parents=True)
            host.wd.model.mkdir(parents=True)

    def deadline(self) -> float | None:
        if self.spec.max_runtime_s is None or self.state["started_at"] is None:
            return None
        return float(self.state["started_at"]) + self.spec.max_runtime_s

    def run_attempt(self, attempt: int, channels: list[str]) -> tuple[int, Host | None]:
        """Run one attempt to its end on every host; returns its exit code and the host that
        failed it (None when all succeeded), or raises Finished on a stop."""
        procs = self.procs
        gang = self.spec.gang
        if self.spec.elastic and gang is None:
            return self.run_elastic(attempt, channels)
        nodes = len(self.spec.host_names())
        # the master's: torch.distributed spans every host
        master, port = (gang.master_addr, gang.master_port) if gang else ("127.0.0.1", 0)
        port = port or launch.free_port()
        args = user_args(decode_hyperparameters(self.spec.hyperparameters))
        self.fresh_outputs()
        what = f"{procs} process{'es' if procs > 1 else ''}"
        rendezvous = self.rendezvous(attempt)
        if rendezvous is not None:  # an elastic job's host: its world forms at rendezvous
            assert gang is not None
            what += f" on host {gang.host}, joining the rendezvous at {rendezvous.endpoint}"
            shutil.rmtree(self.wd.rounds, ignore_errors=True)
            self.wd.rounds.mkdir(parents=True)
        elif gang is not None:
            what += f" on host {gang.host} ({gang.rank + 1} of {nodes}; master {master}:{port})"
        elif nodes > 1:
            what += f" on each of {nodes} hosts ({', '.join(h.name for h in self.hosts)})"
        self.log(f"attempt {attempt}: starting {what}")
        self.group = group = HostGroup(self.hosts, self.wd.job_log)
        rounds = self.wd.rounds if rendezvous is not None else None
        workers = self.tf_workers(nodes * procs)
        runner = tensorflow.runner() if self.tensorflow else None
        for i, host in enumerate(self.hosts):
            env = job_env(self.spec, host.wd, channels, attempt, procs, host.name)
            env = launch.launch_env(env, procs, port, nodes, host.rank, master, rounds)
            if self.tensorflow:
                env = tensorflow.environment(env, workers, procs, host.rank * procs)
            if self.spec.command is not None:  # run as given, once per host
                cmd = container.command(self.spec, host.wd)
                env = container.environment(env, self.spec, host.wd, self.python)
            else:
                entry = self.spec.entrypoint or ""
                cmd = launch.command(
                    host.wd, entry, args, procs, attempt, port, nodes, host.rank, master,
                    rendezvous, runner,
                )  # fmt: skip
                cmd[0] = self.python  # the same script (or torchrun) under the job's environment
            script = self.spec.command is None
            # a fork would skip the sandbox, and TensorFlow gains nothing from a warm torch
            warm = self.warm and self.spec.sandbox is None and not self.tensorflow
            if nodes == 1 and script and warm and fork.can_fork(self.python, procs):
                group.add(host, fork.fork_script(cmd, env, self.wd.code, self.wd.job_log))
                continue
            try:
                if self.spec.sandbox is not None:
                    cmd = sandbox.wrap(cmd, Path(self.spec.sandbox), self.wd.root, self.python)
                proc = launch.start(cmd, env, self.wd.code, None if i else self.wd.job_log)
            except sandbox.SandboxMissing as exc:
                group.kill()
                raise Finished("failed", str(exc), 127) from None
            except OSError as exc:  # a command naming no program here
                group.kill()
                why = exc.strerror or str(exc)
                raise Finished("failed", f"Could not start {cmd[0]!r}: {why}.", 127) from None
            group.add(host, proc, proc.stdout if i else None)
        pids = group.pids
        self.save(
            phase="running", attempt=attempt, pid=pids[0], pids=pids, exit_code=None, reason=None
        )
        if self.state["started_at"] is None:
            self.save(started_at=time.time())
        return self.watch(group)

    def tf_workers(self, world: int) -> list[str]:
        """Where each process of a TensorFlow job listens, by rank: what the gang was given
        where it was placed, else free ports here (this supervisor runs every host)."""
        if not self.tensorflow or world <= 1:
            return []
        if self.spec.gang is not None:
            return list(self.spec.gang.workers)
        return [f"127.0.0.1:{port}" for port in launch.listen_ports(world)]

    def rendezvous(self, attempt: int) -> launch.Rendezvous | None:
        """An elastic job's host on Ray: the rendezvous its coordinator hosts."""
        gang = self.spec.gang
        if gang is None or gang.rendezvous is None or self.spec.max_nodes is None:
            return None
        run_id = f"{self.spec.run_id}-{attempt}"
        return launch.Rendezvous(gang.rendezvous, run_id, self.spec.nodes, self.spec.max_nodes)

    def granted(self) -> int:
        """The hosts the executor has room for now (it grows an elastic job as room frees)."""
        return min(len(self.hosts), read_grant(self.wd.root, self.spec.nodes))

    def run_elastic(self, attempt: int, channels: list[str]) -> tuple[int, Host | None]:
        """One attempt of an elastic job: the rendezvous store, then an agent per granted
        host, kept up by ``ElasticGroup`` while the job runs."""
        spec, procs = self.spec, self.procs
        assert spec.max_nodes is not None and spec.entrypoint is not None
        args = user_args(decode_hyperparameters(spec.hyperparameters))
        self.fresh_outputs()
        shutil.rmtree(self.wd.rounds, ignore_errors=True)
        self.wd.rounds.mkdir(parents=True)

        def wrap(cmd: list[str]) -> list[str]:
            if spec.sandbox is None:
                return cmd
            return sandbox.wrap(cmd, Path(spec.sandbox), self.wd.root, self.python)

        try:
            wrap([self.python])
        except sandbox.SandboxMissing as exc:
            raise Finished("failed", str(exc), 127) from None
        store, port = elastic.start_store(self.python, "127.0.0.1", self.wd.job_log)
        rendezvous = launch.Rendezvous(
            f"127.0.0.1:{port}", f"{spec.run_id}-{attempt}", spec.nodes, spec.max_nodes
        )
        self.log(
            f"attempt {attempt}: starting an elastic job of {spec.nodes} to {spec.max_nodes} "
            f"host(s) x {procs} process(es), {self.granted()} host(s) now (rendezvous store "
            f"on port {port})"
        )

        def start(host: Host) -> tuple[launch.Process, Any]:
            env = job_env(spec, host.wd, channels, attempt, procs, host.name)
            env = launch.launch_env(env, procs, port, rounds=self.wd.rounds)
            cmd = launch.command(
                host.wd, spec.entrypoint or "", args, procs, attempt, port, rendezvous=rendezvous
            )
            cmd[0] = self.python
            log = None if host.rank else self.wd.job_log  # a host after the first: piped
            proc = launch.start(wrap(cmd), env, self.wd.code, log)
            return proc, proc.stdout if host.rank else None

        self.group = group = elastic.ElasticGroup(
            self.hosts,
            self.wd.job_log,
            self.log,
            start,
            self.granted,
            spec.rejoin_s,
            self.wd.rounds,
            store,
            self.save,
            self.state.get("events") or [],
        )
        self.save(phase="running", attempt=attempt, pid=group.pids[0], exit_code=None, reason=None)
        if self.state["started_at"] is None:
            self.save(started_at=time.time())
        return self.watch(group)

    def watch(self, group: HostGroup | elastic.ElasticGroup) -> tuple[int, Host | None]:
        deadline = self.deadline()
        memory = MemoryWatch(self.spec.memory_mb)
        while (done := group.poll()) is None:
            if not self.wd.root.is_dir():  # deleted with the home: nobody can use its results
                group.end(self.spec.stop_grace_s)
                raise Finished("stopped", "Stopped: the job's directory was deleted")
            if self.stop_wanted():
                self.log("stop requested; ending the job's processes")
                group.end(self.stop_grace())
                raise Finished("stopped", "Stopped on request", group.returncode)
            if deadline is not None and time.time() >= deadline:
                limit = self.spec.max_runtime_s
                self.log(f"the job ran past max_runtime_s={limit}; ending its processes")
                group.end(self.spec.stop_grace_s)
                raise Finished(
                    "stopped", f"Stopped: exceeded max_runtime_s={limit}", group.returncode
                )
            if (over := memory.over(group.pids)) is not None:
                index, used = over
                assert self.spec.memory_mb is not None
                several = len(self.hosts) > 1 and not self.spec.elastic  # pids are per host
                host = self.hosts[index].name if several else None
                reason = out_of_memory(used, self.spec.memory_mb, host)
                group.end(0)  # at once, as the kernel would: the machine is what is at stake
                raise Finished("failed", reason, group.returncode)
            group.tick()
            if self.mirror is not None:
                self.mirror.poke()
            time.sleep(POLL_S)
        code, failed = done
        if memory.limit_mb is not None:
            self.log(f"memory: peak {memory.peak_mb:,.0f} MiB of the {memory.limit_mb:,} MiB limit")
        if failed is not None and len(self.hosts) > 1 and group.running():
            self.log(
                f"host {failed.name} failed ({launch.describe_exit(code)}); ending the other hosts"
            )
        group.end(CLEANUP_GRACE_S)  # the other hosts, and whatever the scripts left running
        return done

    @property
    def procs(self) -> int:
        """Processes per host: a command is one, a script one or more under torchrun."""
        return 1 if self.spec.command is not None else max(1, self.spec.processes_per_node)

    def failure_reason(self, text: str, code: int, failed: Host | None) -> str:
        """Why the attempt failed, from the log ``text`` it wrote; names the host of several."""
        procs = self.procs
        if len(self.hosts) == 1:
            return launch.failure_reason(self.wd, text, code, procs)
        host = failed or self.hosts[0]
        reason = launch.failure_reason(host.wd, host_text(text, host), code, procs)
        return f"Host {host.name}: {reason}"

    def push_checkpoints(self) -> None:
        if self.mirror is not None:
            self.mirror.wait()
        try:
            if self.mirror is not None and self.mirror.both_ways:
                checkpoint_sync.exchange(self.spec, self.wd, settled_s=0.0)
            else:
                checkpoint_sync.push(self.spec, self.wd)
        except Exception as exc:  # the local copy still serves a retry here
            where = checkpoint_sync.describe(self.spec)
            self.log(f"could not copy checkpoints to {where}: {exc}")

    def attempts(self, first: int, channels: list[str]) -> None:
        attempt = first
        procs = self.procs
        while True:
            if self.stop_wanted():
                raise Finished("stopped", "Stopped on request")
            offset = self.wd.job_log.stat().st_size if self.wd.job_log.exists() else 0
            try:
                code, failed = self.run_attempt(attempt, channels)
            except Finished:
                self.push_checkpoints()  # a stopped job keeps what it saved, to resume from
                raise
            self.push_checkpoints()
            if procs > 1 and not self.spec.elastic:  # an elastic job's ranks change
                for host in self.hosts:
                    launch.flatten_rank_logs(host.wd, attempt, host.rank * procs)
            if code == 0:
                self.log(f"attempt {attempt}: exited 0")
                return
            with open(self.wd.job_log, errors="replace") as f:
                f.seek(offset)
                text = f.read()
            reason = self.failure_reason(text, code, failed)
            if attempt >= self.spec.max_retries:
                raise Finished("failed", reason, code)
            summary = reason.split(launch.TAIL_HEADER)[0].splitlines()[0].rstrip(".")
            self.log(
                f"attempt {attempt} failed ({summary}); retrying "
                f"({attempt + 1} of {self.spec.max_retries} retries), resuming from checkpoints/"
            )
            self.save(exit_code=code, reason=f"Retrying after: {summary}")
            attempt += 1

    def finish(self, done: Finished) -> None:
        """Upload what the job made, then record its final phase (state.json last)."""
        if not self.wd.root.is_dir():
            return  # deleted under us: there is nowhere to record anything (nor to recreate)
        master = self.spec.gang is None or self.spec.gang.rank == 0
        if done.phase == "succeeded" and master:  # a gang's other hosts leave no results
            try:
                for uri in upload_results(self.spec, self.hosts[0].wd):  # the master's
                    self.log(f"uploaded {uri}")
            except Exception as exc:
                done = Finished(
                    "failed", f"The job succeeded but uploading its outputs failed: {exc}"
                )
        what = f"host {self.spec.gang.host}" if self.spec.gang else "job"  # a gang's: one host
        self.log(f"{what} {done.phase}" + (f": {done.reason}" if done.reason else ""))
        try:
            upload_logs(self.spec, self.wd, self.spec.gang.host if self.spec.gang else None)
        except Exception:
            traceback.print_exc()  # the logs stay in work_dir; the job's outcome stands
        self.save(
            phase=done.phase, reason=done.reason, exit_code=done.exit_code, finished_at=time.time()
        )

    def run(self) -> None:
        write_pid(self.wd.pid_file, os.getpid())
        try:
            first = self.resume_point()
        except Finished:
            return  # already final: submitting twice never runs a job twice
        self.save(phase="starting", attempt=first)
        metrics = log_metrics.start(self.spec, self.wd, self.log)  # metric definitions
        try:
            channels = self.prepare()
            self.attempts(first, channels)
            done = Finished("succeeded", None, 0)
        except Finished as finished:
            done = finished
        except StopRequested:  # a signal in the instant staging ended
            done = Finished("stopped", "Stopped on request")
        except Exception as exc:
            traceback.print_exc()
            if self.group is not None:
                self.group.kill()
            done = Finished(
                "failed", f"The job's supervisor failed: {exc!r}; see {self.wd.supervisor_log}."
            )
        metrics.close()
        self.finish(done)
