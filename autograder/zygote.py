"""Start students' kernels by forking a process that has already imported them.

Every graded submission gets a fresh kernel, and a fresh ``python -m ipykernel_launcher``
spends about half a second importing IPython, ipykernel and numpy before it runs one
line of the student's code. Grading 300 notebooks pays that 300 times. Here each
grading process starts one *zygote* (``python -m autograder.zygote``) that imports all of
that once (plus torch for the assignments whose notebook imports it, never for the
others) and then waits; a kernel is a ``fork()`` of it:

* the child leaves the zygote's pipes, enters the sandbox exactly as the ``exec``-ing
  launcher does (:func:`autograder.sandbox.confine`: mount namespace, unprivileged user,
  limits) and runs the kernel in-process, so students still never share a process, a
  memory image or a file with each other; a fork copies only the zygote's clean state;
* jupyter_client sees an ordinary kernel: :class:`ForkingProvisioner` (registered as the
  kernel provisioner ``cvprep-forking``) hands it a process handle built on a pidfd,
  so interrupts, kills and "is it alive?" work although the kernel is not its child.

When anything about the zygote fails (no pidfd on an old kernel, the zygote died) the
provisioner falls back to launching the kernelspec's command the usual way: slower,
never wrong.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from queue import Empty
from collections.abc import Sequence
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.provisioning import LocalProvisioner

PROVISIONER_NAME = "cvprep-forking"
LAUNCHER = ["-m", "autograder.sandbox"]  # what the kernelspec's argv runs after the interpreter
KERNEL_MODULE = ["-m", "ipykernel_launcher"]
BIND_TIMEOUT = 30.0  # seconds the zygote waits for a new kernel to listen before replying anyway
# Libraries a kernel needs before the first cell; never cvprep (the guard watches its import).
PRELOAD_KEY = "cvprep_preload"  # kernelspec metadata: more modules the assignment's kernels import
PRELOAD = ("numpy", "IPython", "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell",
           "ipykernel.debugger")


# ---------------------------------------------------------------- the zygote process


def _preload(extra: Sequence[str] = ()) -> None:
    import importlib

    for name in (*PRELOAD, *extra):
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # optional pieces (the debugger) cost time only when present


def _child(request: dict[str, Any], bound: int) -> None:
    """In the forked child: become the student's kernel; never returns.

    Writes to ``bound`` once the kernel listens on its ports, before any student code.
    """
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # an ignored SIGCHLD would survive exec too
        os.setpgid(0, 0)  # the grader signals the kernel's process group
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)  # off the zygote's request and reply pipes
        os.dup2(devnull, 1)
        os.close(devnull)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from autograder import sandbox

        command, env = sandbox.confine(*sandbox.parse_argv(request["argv"]))
        if command[1:3] != KERNEL_MODULE:
            os.execve(command[0], command, env)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = [command[0], *command[3:]]
        sys.path[0] = os.getcwd()  # as ``python -m`` would have it: the student's folder
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        # The kernel watches its parent, the zygote, and exits when it goes; the zygote goes
        # when its grader does (end of input), so a killed grader leaves no kernel behind.
        # (ipykernel reads JPY_PARENT_PID when it is imported, in the zygote: too early.)
        app.initialize([*command[3:], f"--IPKernelApp.parent_handle={os.getppid()}"])
        os.write(bound, b"1")
        os.close(bound)
        app.start()
        code = 0
    finally:
        os._exit(code)


def serve(requests, replies) -> None:
    """Fork one kernel per JSON request line; reply with its pid. Ends when ``requests`` closes."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps itself: no zombies to collect
    for line in requests:
        request = json.loads(line)
        bound_r, bound_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(bound_r)
            _child(request, bound_w)
        os.close(bound_w)
        try:
            os.setpgid(pid, pid)  # also here, so a signal sent right after the reply finds the group
        except OSError:
            pass  # the child already did it (or already exited)
        # Reply once the kernel listens: a client that connects earlier retries only every
        # 100 ms (ZeroMQ's reconnect interval) and misses the first IOPub messages.
        select.select([bound_r], [], [], BIND_TIMEOUT)
        os.close(bound_r)  # readable also when the child died first (end of file)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()


def main() -> None:
    _preload(sys.argv[1:])  # what the assignment's kernels import anyway, e.g. torch
    serve(sys.stdin, sys.stdout)


# ---------------------------------------------------------------- grader side


class ZygoteError(RuntimeError):
    """The zygote could not start a kernel."""


class Zygote:
    """One zygote process, owned by one grading process."""

    _mine: dict[tuple[int, str, tuple[str, ...]], Zygote] = {}
    _lock = threading.Lock()

    def __init__(self, python: str, preload: Sequence[str] = ()):
        from autograder import sandbox

        # numpy reads the thread counts once, at import; debugpy would warn on stderr.
        env = {**os.environ, **sandbox.SINGLE_THREADED, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        # A new session, so the grader's terminal (and its Ctrl-C) never reaches a kernel;
        # "/" as the folder, so nothing of the grader's working folder is on sys.path.
        self.process = subprocess.Popen([python, "-m", "autograder.zygote", *preload], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd="/",
                                        env=env, text=True, start_new_session=True)

    @classmethod
    def for_python(cls, python: str, preload: Sequence[str] = ()) -> Zygote:
        """This process's zygote for ``python`` with ``preload`` imported (each grading worker has its own)."""
        key = (os.getpid(), python, tuple(preload))
        with cls._lock:
            zygote = cls._mine.get(key)
            if zygote is None or zygote.process.poll() is not None:
                zygote = cls._mine[key] = cls(python, preload)
            return zygote

    def fork(self, argv: list[str], env: dict[str, str], cwd: str) -> int:
        """Start a kernel running ``python -m autograder.sandbox ARGV`` in ``cwd``; return its pid."""
        with self._lock:
            try:
                self.process.stdin.write(json.dumps({"argv": argv, "env": dict(env), "cwd": str(cwd)}) + "\n")
                self.process.stdin.flush()
                reply = self.process.stdout.readline()
            except OSError as error:
                raise ZygoteError(f"the zygote is gone: {error}") from error
        if not reply:
            raise ZygoteError(f"the zygote exited with code {self.process.wait()}")
        return int(json.loads(reply)["pid"])

    def close(self) -> None:
        self.process.stdin.close()  # the zygote's loop ends at end of input
        self.process.wait(timeout=10)


class ForkedKernel:
    """A ``subprocess.Popen`` look-alike for a kernel forked by the zygote (not our child).

    A pidfd refers to this very process even after its pid is reused. The exit status
    belongs to the zygote, which discards it: an exited kernel reports ``returncode`` 0.
    """

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)

    def _exited(self, timeout: float | None) -> bool:
        if self.returncode is None and select.select([self._pidfd], [], [], timeout)[0]:
            self.returncode = 0
            os.close(self._pidfd)
        return self.returncode is not None

    def poll(self) -> int | None:
        self._exited(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited(timeout):
            raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
        return self.returncode

    async def exited(self) -> None:
        """Wait, without blocking the event loop, until the kernel has exited."""
        if self.returncode is not None:
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.add_reader(self._pidfd, lambda: done.done() or done.set_result(None))
        try:
            await done
        finally:
            loop.remove_reader(self._pidfd)
        self._exited(0)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkingProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, launching sandboxed kernels through a zygote."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        if cmd[1:3] != LAUNCHER or not hasattr(os, "pidfd_open"):
            return await super().launch_kernel(cmd, **kwargs)
        try:
            preload = self.kernel_spec.metadata.get(PRELOAD_KEY, []) if self.kernel_spec else []
            pid = Zygote.for_python(cmd[0], preload).fork(cmd[3:], kwargs.get("env") or dict(os.environ),
                                                          kwargs.get("cwd") or os.getcwd())
            self.process = ForkedKernel(pid)
        except (OSError, ZygoteError, ValueError) as error:
            self.log.warning("forking the kernel failed (%s); starting it the usual way", error)
            return await super().launch_kernel(cmd, **kwargs)
        self.pid = self.pgid = pid
        self.cwd = kwargs.get("cwd") or os.getcwd()
        return self.connection_info

    async def kill(self, restart: bool = False) -> None:
        await super().kill(restart)
        if isinstance(self.process, ForkedKernel):
            # Return once it is gone: the manager polls "alive?" only every 0.1 s.
            try:
                await asyncio.wait_for(self.process.exited(), timeout=5)
            except asyncio.TimeoutError:
                pass  # the manager's own wait reports it

    async def wait(self) -> int | None:
        if isinstance(self.process, ForkedKernel):
            await self.process.exited()
            self.process = None
            return 0
        return await super().wait()


if __name__ == "__main__":
    main()


class QuickReadyClient(AsyncKernelClient):
    """jupyter_client's kernel client, ready 0.2 s sooner.

    ``wait_for_ready`` ends by draining IOPub until it has been quiet for 200 ms, once per
    kernel: a fifth of a second per submission in which nothing happens. A kernel that
    answered ``kernel_info`` and delivered an IOPub message is ready; what is left on
    IOPub are status messages of that handshake, which the notebook client ignores
    anyway (it reads only messages whose parent is the cell it runs).
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:
                    await self.iopub_channel.get_msg(timeout=0.2)  # IOPub is connected too
                except Empty:
                    pass
                else:
                    self._handle_kernel_info_reply(reply)
                    break
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")
        while True:
            try:
                await self.iopub_channel.get_msg(timeout=0.02)
            except Empty:
                return
