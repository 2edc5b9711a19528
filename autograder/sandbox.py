"""Run a student's kernel where it can do no harm.

The grader starts every kernel through this module (``python -m autograder.sandbox
POLICY -- python -m ipykernel_launcher -f CONNECTION_FILE``, written into the kernelspec
by :func:`write_kernelspec`). Running as root, the launcher

1. reads the connection file and the student's folder (the kernel's working directory),
2. enters a private mount namespace and mounts empty, private file systems over
   ``/tmp``, ``/var/tmp``, ``/dev/shm`` and every *hidden* path (the repository with the
   exercise sources and their hidden tests, the grader's output with the gradebook, the
   folder of all submissions, home folders), keeping only what the kernel needs to run
   (the virtual environment, the Python installation, the ``cvprep`` package the hidden
   tests import) visible inside them,
3. copies the student's folder into ``/tmp/work``, the only place it may write,
4. sets resource limits (CPU seconds, address space, file size, processes, no core
   files) and ``no_new_privs``, drops to the unprivileged user and ``exec``s the kernel.

The grader normally starts kernels by forking a warm interpreter
(:mod:`autograder.zygote`); the forked child runs the same steps (:func:`confine`) and
then the kernel in-process instead of ``exec``.

Without root (or where the kernel refuses a mount namespace) the launcher can only set
the resource limits; :func:`plan` then reports why, and the grader says so in its log
and in every row of ``grades.csv``.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

SANDBOX_USER = "cvprep-grader"
KERNEL_NAME = "cvprep-sandbox"
WORK = "/tmp/work"  # the kernel's folder inside the sandbox
MAX_COPIED_BYTES = 100 * 2**20  # of the student's own folder
# Grading runs several kernels side by side: one BLAS thread each.
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Linux constants (sched.h, sys/mount.h, sys/prctl.h).
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38


@dataclass(frozen=True)
class Limits:
    """Resource limits of one kernel (``setrlimit``); the whole kernel, not one cell."""

    cpu_seconds: int = 600
    # Address space, not resident memory: importing torch (a CUDA build) maps about 3.5 GiB before
    # any work, and a kernel that runs chapter 04's tests peaks near 4.2 GiB. A 20 GB allocation still fails.
    memory_bytes: int = 8 * 2**30
    file_bytes: int = 64 * 2**20  # largest file the kernel may write
    processes: int = 512  # threads count too, for every kernel of the sandbox user together


@dataclass(frozen=True)
class Policy:
    """What the launcher does; serialised as JSON into the kernelspec."""

    user: str | None  # None: run as the grader's own user (unisolated)
    hide: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    scratch_root: str = ""  # unisolated kernels get a folder here instead of /tmp/work

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Policy:
        data = json.loads(text)
        return cls(**{**data, "limits": Limits(**data["limits"])})


# ---------------------------------------------------------------- grader side


def needed_paths() -> list[str]:
    """Folders the kernel must still see: this environment, its Python, and cvprep."""
    import importlib.util

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    spec = importlib.util.find_spec("cvprep")
    if spec and spec.submodule_search_locations:
        paths.update(os.path.dirname(p) for p in spec.submodule_search_locations)
    return sorted(os.path.realpath(p) for p in paths)


def ensure_user(name: str = SANDBOX_USER) -> str | None:
    """Create the unprivileged system user if it is missing; return why not, or None."""
    try:
        pwd.getpwnam(name)
        return None
    except KeyError:
        pass
    command = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
               "--shell", "/usr/sbin/nologin", name]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        return f"could not create the user {name!r} ({' '.join(command)}: {detail.strip()})"
    return None


def launcher_argv(policy: Policy) -> list[str]:
    return [sys.executable, "-m", "autograder.sandbox", policy.to_json(), "--"]


def plan(hide: list[Path], scratch_root: Path, limits: Limits = Limits()) -> tuple[Policy, str | None]:
    """The strongest policy this machine allows, and why it is unisolated (None if isolated)."""
    unisolated = Policy(user=None, limits=limits, scratch_root=str(scratch_root))
    if sys.platform != "linux":
        return unisolated, "student code runs as the grader's user: isolation needs Linux"
    if os.geteuid() != 0:
        return unisolated, ("student code runs as the grader's user: run the grader as root "
                            f"so that kernels run as the unprivileged user {SANDBOX_USER!r}")
    problem = ensure_user()
    if problem:
        return unisolated, f"student code runs as the grader's user: {problem}"
    keep = needed_paths()
    hidden = {os.path.realpath(p) for p in hide} | {"/root", "/home"}
    hidden |= {os.path.realpath(os.path.expanduser("~"))}
    policy = Policy(user=SANDBOX_USER, hide=sorted(hidden), keep=keep, limits=limits, scratch_root=str(scratch_root))
    problem = probe(policy)
    if problem:
        return unisolated, f"student code runs as the grader's user: the sandbox does not start here ({problem})"
    return policy, None


def probe(policy: Policy) -> str | None:
    """Start the sandbox once with a trivial program; return what went wrong, or None."""
    check = "import os, numpy, cvprep; assert os.getuid() != 0; print('sandbox ok')"
    with tempfile.TemporaryDirectory() as folder:
        try:
            result = subprocess.run(launcher_argv(policy) + [sys.executable, "-c", check], cwd=folder,
                                    capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            return str(error)
    if result.returncode != 0 or "sandbox ok" not in result.stdout:
        return (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
    return None


def write_kernelspec(folder: Path, policy: Policy, preload: Sequence[str] = ()) -> Path:
    """A kernelspec named ``cvprep-sandbox`` under ``folder/kernels`` (put ``folder`` on JUPYTER_PATH).

    ``preload`` names modules the forking launcher imports once for all kernels (the
    assignment's heavy imports, such as torch).
    """
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    argv = launcher_argv(policy) + [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    metadata: dict = {"debugger": False}
    if _forking_provisioner_installed():
        # Same command, started by forking a warm interpreter (autograder.zygote).
        metadata["kernel_provisioner"] = {"provisioner_name": "cvprep-forking"}
        if preload:
            metadata["cvprep_preload"] = list(preload)
    kernel = {"argv": argv, "display_name": "cvprep sandbox", "language": "python",
              "interrupt_mode": "signal", "metadata": metadata}
    (spec / "kernel.json").write_text(json.dumps(kernel, indent=1))
    return spec


def _forking_provisioner_installed() -> bool:
    from importlib.metadata import entry_points

    return any(e.name == "cvprep-forking" for e in entry_points(group="jupyter_client.kernel_provisioners"))


# ---------------------------------------------------------------- kernel side


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _call(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _call(_libc().mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                        data.encode() or None), f"mount {source} on {target}")


def _tmpfs(target: str, mode: str = "0755", size: str = "64m") -> None:
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={size}")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _hide(path: str, keep: list[str], stage: str, mode: str = "0755") -> None:
    """Mount an empty file system over ``path``, then bind the ``keep`` folders inside it back."""
    kept = [k for k in keep if _inside(k, path) and k != path]
    if any(_inside(path, k) for k in keep) or not os.path.isdir(path):
        return  # hiding it would hide something the kernel needs (or there is nothing to hide)
    staged = []
    for i, folder in enumerate(kept):
        place = os.path.join(stage, str(i))
        os.mkdir(place)
        _mount(folder, place, None, MS_BIND | MS_REC)
        staged.append((folder, place))
    _tmpfs(path, mode=mode, size="512m" if mode == "1777" else "1m")
    for folder, place in staged:
        os.makedirs(folder, mode=0o755, exist_ok=True)
        _mount(place, folder, None, MS_BIND | MS_REC)
        _call(_libc().umount2(place.encode(), MNT_DETACH), f"umount {place}")
        os.rmdir(place)


def _read_folder(folder: str) -> dict[str, bytes]:
    """The student's folder, read before it disappears from view (capped in size)."""
    files, total = {}, 0
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            total += os.path.getsize(path)
            if total > MAX_COPIED_BYTES:
                return files
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


def _write_folder(folder: str, files: dict[str, bytes], uid: int, gid: int) -> None:
    for relative, data in files.items():
        path = os.path.join(folder, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            os.chown(os.path.join(root, name), uid, gid)
    os.chown(folder, uid, gid)


def _set_limits(limits: Limits) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_NPROC)[1] >= limits.processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))


def _kernel_environment(home: str) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "JPY_PARENT_PID", "PYDEVD_DISABLE_FILE_VALIDATION")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=home, TMPDIR=home, MPLCONFIGDIR=home, PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1",
               **SINGLE_THREADED)
    return env


def _connection_file(command: list[str]) -> tuple[int | None, bytes]:
    """Where ``-f CONNECTION_FILE`` sits in the command, and the file's content."""
    if "-f" not in command:
        return None, b""
    index = command.index("-f") + 1
    with open(command[index], "rb") as f:
        return index, f.read()


def _hand_over_connection_file(command: list[str], index: int | None, data: bytes, folder: str,
                               uid: int, gid: int) -> list[str]:
    """Write the connection file (readable only by the grader) into the kernel's own folder."""
    if index is None:
        return command
    target = os.path.join(folder, ".kernel-connection.json")
    with open(target, "wb") as f:
        f.write(data)
    os.chmod(target, 0o600)
    os.chown(target, uid, gid)
    return command[:index] + [target] + command[index + 1:]


def _quiet_stderr() -> None:
    # ipykernel's start-up warnings would interleave with the grader's progress lines;
    # everything a student's code prints reaches the notebook through the kernel instead.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def confine(policy: Policy, command: list[str]) -> tuple[list[str], dict[str, str]]:
    """Set up the sandbox in this process; return the command and environment to run in it.

    Reads the working directory (the student's folder) and the connection file named in
    ``command`` first, because both disappear from view. Afterwards this process runs as
    the sandbox user with its limits; the caller ``exec``s the command (:func:`enter`) or,
    in the forking launcher (:mod:`autograder.zygote`), runs the kernel in-process.
    """
    files = _read_folder(os.getcwd())
    index, connection = _connection_file(command)
    if policy.user is None:
        if policy.scratch_root:
            os.makedirs(policy.scratch_root, exist_ok=True)
        folder = tempfile.mkdtemp(prefix="kernel-", dir=policy.scratch_root or None)
        _write_folder(folder, files, os.getuid(), os.getgid())
        command = _hand_over_connection_file(command, index, connection, folder, os.getuid(), os.getgid())
        _set_limits(policy.limits)
        os.chdir(folder)
        _quiet_stderr()
        return command, _kernel_environment(folder)
    user = pwd.getpwnam(policy.user)
    _call(_libc().unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)  # nothing mounted from here on reaches the host
    _tmpfs("/dev/shm", mode="1777")  # private from here on; it also holds the staging folder
    stage = "/dev/shm/.stage"
    os.mkdir(stage, 0o700)
    # /tmp first (a checkout under /tmp keeps its venv and cvprep), then the hidden paths.
    _hide("/tmp", policy.keep, stage, mode="1777")
    for path in sorted(policy.hide, key=len):
        _hide(path, policy.keep, stage)
    os.rmdir(stage)
    if os.path.isdir("/var/tmp"):
        _tmpfs("/var/tmp", mode="1777")
    os.mkdir(WORK, 0o700)
    _write_folder(WORK, files, user.pw_uid, user.pw_gid)
    command = _hand_over_connection_file(command, index, connection, WORK, user.pw_uid, user.pw_gid)
    _set_limits(policy.limits)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    _call(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    if 0 in os.getresuid() or 0 in os.getresgid():
        raise SystemExit("the sandbox failed to drop root privileges")
    os.chdir(WORK)
    _quiet_stderr()
    return command, _kernel_environment(WORK)


def enter(policy: Policy, command: list[str]) -> None:
    """Set up the sandbox in this process and ``exec`` ``command`` in it (never returns)."""
    command, env = confine(policy, command)
    os.execve(command[0], command, env)


def parse_argv(argv: list[str]) -> tuple[Policy, list[str]]:
    """``POLICY_JSON -- COMMAND ...`` (the launcher's arguments) as a policy and a command."""
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: python -m autograder.sandbox POLICY_JSON -- COMMAND ...")
    return Policy.from_json(argv[0]), argv[2:]


def main(argv: list[str] | None = None) -> None:
    enter(*parse_argv(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
