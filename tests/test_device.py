"""Device choice and torch's thread count (gca_viz.device)."""

import threading

import pytest
import torch

from gca_viz.device import check_device_name, resolve_device, torch_threads


def test_resolve_device_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")


def test_resolve_device_auto_prefers_cuda_then_mps_then_cpu() -> None:
    if torch.cuda.is_available():
        expected = "cuda"
    elif torch.backends.mps.is_available():
        expected = "mps"
    else:
        expected = "cpu"
    assert resolve_device().type == expected
    assert resolve_device("auto").type == expected


def test_resolve_device_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


@pytest.mark.parametrize(
    "name", ["cuda:", "cuda:x", "cuda:-1", "cuda:1.0", "cuda:01", "cuda:00", "cpu:0", "gpu:0"]
)
def test_a_device_name_is_a_known_one_or_cuda_by_index(name: str) -> None:
    with pytest.raises(ValueError, match=r"^device must be one of .* or cuda:<index>"):
        check_device_name(name)
    assert check_device_name("cuda:1") == "cuda:1"  # (whether it exists: resolve_device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_resolve_device_rejects_unavailable_cuda(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^device='{name}' was requested but CUDA is not"):
        resolve_device(name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resolve_device_cuda_when_available() -> None:
    assert resolve_device("cuda").type == "cuda"
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    count = torch.cuda.device_count()
    with pytest.raises(ValueError, match=rf"this machine has {count} CUDA device"):
        resolve_device(f"cuda:{count}")


@pytest.mark.parametrize("order", ["first in, first out", "first in, last out"])
def test_torch_threads_restores_the_count_when_blocks_of_two_threads_interleave(
    order: str,
) -> None:
    """Two threads open a ``torch_threads(1)`` block each, overlapping; once both have
    closed, torch is back on its count from before, as a thread started afterwards sees it
    (a block that restored the count it saw when it opened left 1 there when the second
    thread opened inside the first's and closed last)."""

    def fresh() -> int:
        """torch's thread count as a new thread sees it (the process-wide default)."""
        out: list[int] = []
        t = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
        t.start()
        t.join(10)
        return out[0]

    before = torch.get_num_threads()
    target = before + 1  # a count that neither block uses, so a wrong restore shows
    torch.set_num_threads(target)
    try:
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
        seen: dict[str, int] = {}

        def a() -> None:
            with torch_threads(1):
                a_in.set()
                b_in.wait(10)
                seen["a inside"] = torch.get_num_threads()
                if order == "first in, last out":
                    a_out.wait(10)  # until b has closed its block
            a_out.set()

        def b() -> None:
            a_in.wait(10)
            with torch_threads(1):
                b_in.set()
                if order == "first in, first out":
                    a_out.wait(10)  # a closes first
                    seen["b after a closed"] = torch.get_num_threads()
            if order == "first in, last out":
                seen["a after b closed"] = torch.get_num_threads()
                a_out.set()

        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert seen["a inside"] == 1
        assert seen.get("b after a closed", 1) == 1  # b's block still holds the count at 1
        assert seen.get("a after b closed", 1) == 1
        assert fresh() == target
    finally:
        torch.set_num_threads(before)


def test_keep_freed_memory_takes_effect_with_glibc_and_says_so_elsewhere() -> None:
    import platform

    from gca_viz.device import keep_freed_memory

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc
