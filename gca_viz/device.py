"""Choose the torch device that computations run on, how many threads torch uses, and
count the times a call waits for a CUDA device."""

import ctypes
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and bool(backend.is_available())


def check_device_name(name: str) -> str:
    """``name`` if it is one of :data:`DEVICE_NAMES` or a CUDA device by index (``"cuda:1"``),
    else ``ValueError`` naming ``device`` (whether that device exists here is
    :func:`resolve_device`'s question)."""
    if name not in DEVICE_NAMES and not (isinstance(name, str) and _cuda_index(name) is not None):
        raise ValueError(
            f"device must be one of {', '.join(DEVICE_NAMES)} or cuda:<index> (cuda:1); "
            f"got {name!r}"
        )
    return name


def _cuda_index(name: str) -> int | None:
    """The index of ``"cuda:<index>"`` (digits only), else ``None``."""
    head, _, index = name.partition(":")
    digits = head == "cuda" and index.isascii() and index.isdigit()
    return int(index) if digits and str(int(index)) == index else None  # ("cuda:01": torch refuses)


def resolve_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``name``.

    ``"auto"`` picks CUDA if it is available, then Apple MPS, then the CPU. ``"cpu"``,
    ``"cuda"`` and ``"mps"`` request that device explicitly and must be available;
    ``"cuda:1"`` a CUDA device by index (under ``torchrun`` each rank takes its local rank's
    device instead).

    Args:
        name: one of ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:<index>"``, ``"mps"``.

    Returns:
        The selected ``torch.device``.

    Raises:
        ValueError: (naming the parameter ``device``) if ``name`` is not a known device
            name, or names a device that is not available on this machine.
    """
    if check_device_name(name) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    index = _cuda_index(name)
    if (name == "cuda" or index is not None) and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was requested but CUDA is not available on this machine")
    if index is not None and index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(
            f"device={name!r} was requested but this machine has "
            + (
                "1 CUDA device (cuda:0)"
                if count == 1
                else f"{count} CUDA devices (cuda:0 to cuda:{count - 1})"
            )
        )
    if name == "mps" and not _mps_available():
        raise ValueError(
            "device='mps' was requested but Apple MPS is not available on this machine"
        )
    return torch.device("cuda", index) if index is not None else torch.device(name)


def device_name(device: torch.device) -> str:
    """How a run names its torch device in the run store: ``"cpu"``, ``"mps"``, or CUDA
    with its index (``"cuda:0"``; a bare ``"cuda"`` means the current CUDA device)."""
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


_THREADS_LOCK = threading.Lock()
_threads_open = 0  # torch_threads blocks open now, in every thread of the process
_threads_before = 0  # torch's thread count when the first of them opened


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_MMAP_CEILING = 32 * 1024 * 1024  # the ceiling of glibc's own dynamic threshold (64-bit)


_TRIM_BYTES = 1 << 30

KEEP_FREED_MEMORY_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(_MMAP_CEILING),
    "MALLOC_TRIM_THRESHOLD_": str(_TRIM_BYTES),
}
""":func:`keep_freed_memory` as glibc's environment variables, for a child process (read
when it starts, before any allocation: a little faster than setting it at run time)."""


def keep_freed_memory(trim_bytes: int = _TRIM_BYTES) -> bool:
    """Ask glibc's ``malloc`` to keep freed memory in the process: blocks up to 32 MB come
    from the heap rather than fresh mappings (``M_MMAP_THRESHOLD``), and up to
    ``trim_bytes`` of free heap is kept rather than given back (``M_TRIM_THRESHOLD``).

    A training step frees and allocates the same ``(n, n)`` buffers every step. Given back
    to the system, each new buffer faults in all its pages again, which costs most on a
    virtual machine: on the 2-core test machine, forward and backward at N = 512 (joint,
    ``(1024, 1024)`` plans) take ``ince`` 10.5-11.2 -> 9.5-9.7 ms, ``gca_ince`` 15.8-16.6
    -> 15.5-15.7 ms, ``gca_uot`` 17.1-17.8 -> 16.6-16.9 ms (three alternating runs each).
    For processes that train and then end (a run's process, ``python -m gca_viz train``,
    the training benchmarks): importing the library never calls it. Returns whether it
    took effect (``False`` where ``malloc`` is not glibc's: macOS, Windows, musl).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    mmap_ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_CEILING)
    trim_ok = mallopt(_M_TRIM_THRESHOLD, int(min(trim_bytes, 2**31 - 1)))
    return bool(mmap_ok and trim_ok)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run torch's CPU ops on ``count`` intra-op threads inside the block; ``None`` leaves
    the setting alone.

    For callers, around work made of many small torch ops beside BLAS calls (``count=1``):
    torch's OpenMP workers keep spinning after a parallel op and compete with the BLAS
    threads for the same cores (measured on 2 cores: matrix-vector products twice as slow,
    small row projections ten times slower under load). The thread count is process-wide
    state, so library functions (:mod:`gca_viz.ot`) never set it themselves: the app, the
    lab (``single_threaded``) and a training run choose it.

    The setting is shared between threads (with OpenMP a thread started later begins with
    the count last set by any thread), and a server runs blocks from several threads at once
    (a Streamlit script thread per session and rerun). So the count from before the first
    open block is restored when the last one closes, in whatever order they close. (Each
    block restoring the count it saw on entry left new threads on one thread for good when a
    second block opened inside the first and closed last.)
    """
    global _threads_open, _threads_before
    if count is None:
        yield
        return
    with _THREADS_LOCK:
        if _threads_open == 0:
            _threads_before = torch.get_num_threads()
        _threads_open += 1
        torch.set_num_threads(count)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_open -= 1
            if _threads_open == 0:
                torch.set_num_threads(_threads_before)


def cuda_syncs(call: Callable[[], object]) -> int:
    """How many times one ``call`` makes the host wait for the CUDA device: the warnings of
    ``torch.cuda.set_sync_debug_mode("warn")`` during it (a value read with ``float``,
    ``.item()``, ``.tolist()``, ``bool``, a device-to-host copy, ``torch.nonzero``, ...).
    Runs ``call`` once before, so that one-off set-up (cuBLAS handles) is not counted.

    Raises:
        RuntimeError: if CUDA is not available.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("cuda_syncs needs CUDA")
    call()
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            call()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)
