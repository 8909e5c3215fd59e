"""Security defaults, one test (or a few) per default, against the real thing:

1. The server binds 127.0.0.1 unless the user opts out: the shipped config says so, and a
   real ``streamlit run app.py`` (with no address flag) listens on loopback only
   (``/proc/net/tcp`` and ``tcp6``, for the sockets the server process holds).
2. Uploads are size-limited: the config's ``server.maxUploadSize``, no uploader that raises
   it, and the app's own check in :func:`gca_viz.userdata.save_upload`.
3. No pickle on user data: an AST scan of the library, the pages, ``ui.py`` and ``app.py``
   finds no ``allow_pickle=True`` (and no ``np.load`` without ``allow_pickle=False``), no
   ``pickle``/``marshal``/``joblib``/``dill``/``shelve`` loads, no ``torch.load`` without
   ``weights_only=True``, no ``eval``/``exec``, no shell commands. The scanner is itself
   tested on code that breaks every rule.
4. Checkpoints load with ``weights_only=True``: a checkpoint carrying a pickled payload
   (which would create a marker file) is refused by the trainer, by the plan lab's model
   loader and by a resumed run process; the marker never appears.
5. Paths are confined to the data directory: :func:`gca_viz.userdata.resolve_data_path`
   rejects ``..``, absolute paths elsewhere, NUL, and symbolic links that lead out (of the
   path itself or of the files and folders it holds).
"""

from __future__ import annotations

import ast
import itertools
import os
import pickle
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import gca_viz.data  # noqa: F401 - the loaders' module, imported first as an app would
from gca_viz.runs import RunStore
from gca_viz.userdata import resolve_data_path, save_upload
from tests.helpers import REPO_ROOT, add_run, stop_process, wait_for_status, wait_until_healthy

CONFIG = REPO_ROOT / ".streamlit" / "config.toml"
SCANNED = sorted(
    [
        *(REPO_ROOT / "gca_viz").rglob("*.py"),
        *(REPO_ROOT / "views").glob("*.py"),
        REPO_ROOT / "ui.py",
    ]
)
SCANNED.append(REPO_ROOT / "app.py")


def config() -> dict[str, Any]:
    return tomllib.loads(CONFIG.read_text())


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file proves execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


# ------------------------------------------------------------------- 1. loopback only


def test_the_shipped_config_binds_loopback_and_keeps_the_protections() -> None:
    server = config()["server"]
    assert server["address"] == "127.0.0.1"
    assert server.get("enableXsrfProtection", True) is True  # not switched off
    assert server.get("enableCORS", True) is True
    assert config().get("browser", {}).get("gatherUsageStats") is False  # nothing phones home


def listening(pid: int | None = None) -> list[tuple[str, int]]:
    """``(address, port)`` of the TCP sockets in LISTEN state, from ``/proc/net/tcp{,6}``;
    with ``pid``, only those the process holds (matched by socket inode)."""
    inodes = None
    if pid is not None:
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or (inodes is not None and inode not in inodes):  # 0A: LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            raw = bytes.fromhex(hex_addr)
            # /proc prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            family = socket.AF_INET if width == 8 else socket.AF_INET6
            found.append((socket.inet_ntop(family, words), int(hex_port, 16)))
    return found


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")


def test_the_listener_check_sees_a_socket_open_to_the_network() -> None:
    """The control for the next test: a socket bound to every interface is reported so."""
    with socket.socket() as wide, socket.socket() as local:
        wide.bind(("0.0.0.0", 0))
        wide.listen()
        local.bind(("127.0.0.1", 0))
        local.listen()
        mine = dict((port, addr) for addr, port in listening(os.getpid()))
        assert mine[wide.getsockname()[1]] == "0.0.0.0"
        assert not is_loopback(mine[wide.getsockname()[1]])
        assert is_loopback(mine[local.getsockname()[1]])


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """``streamlit run app.py`` as a user starts it: the shipped config, no address flag
    (only a free port and no file watcher). Yields ``(pid, port)``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    runs = tmp_path_factory.mktemp("security-runs")
    log = open(runs / "server.log", "wb")
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    env = {**os.environ, "GCA_RUNS_DIR": str(runs)}
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(port, proc, runs / "server.log")
        yield proc.pid, port
    finally:
        stop_process(proc)
        log.close()


def test_a_default_server_listens_on_loopback_only(default_server: tuple[int, int]) -> None:
    pid, port = default_server
    sockets = listening(pid)
    assert port in {p for _, p in sockets}, sockets  # it is this process's listener
    exposed = [(a, p) for a, p in sockets if not is_loopback(a)]
    assert exposed == [], f"the app listens beyond loopback: {exposed}"
    # and from outside: every non-loopback address of this machine refuses the port
    for address in _own_addresses():
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex((address, port)) != 0, f"{address}:{port} accepts"


def _own_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (from /proc/net/fib_trie)."""
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        return []
    found = set()
    for prev, line in itertools.pairwise(lines):
        if "/32 host LOCAL" in line:
            address = prev.split()[-1]
            if not address.startswith("127."):
                found.add(address)
    return sorted(found)


# ------------------------------------------------------------------------ 2. upload size


def test_uploads_are_size_limited_by_the_config_and_by_the_app(tmp_path: Path) -> None:
    limit_mb = config()["server"]["maxUploadSize"]
    assert 1 <= limit_mb <= 200  # set, and not raised past Streamlit's own default
    for path in (REPO_ROOT / "views").glob("*.py"):
        for call in _calls(path, "file_uploader"):
            widget_limit = next(
                (k.value for k in call.keywords if k.arg == "max_upload_size"), None
            )
            assert widget_limit is None, f"{path.name}: an uploader overrides the server limit"
    limit = limit_mb * 2**20
    with pytest.raises(ValueError, match=f"over the limit of {limit_mb} MB"):
        save_upload(b"PK\x03\x04" + bytes(limit), "big.npz", tmp_path, max_bytes=limit)
    assert not any(tmp_path.iterdir())
    source = (REPO_ROOT / "views" / "_train_launch.py").read_text()
    assert 'st.get_option("server.maxUploadSize")' in source  # the page passes the config


def _calls(path: Path, name: str) -> list[ast.Call]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "attr", None) == name or getattr(node.func, "id", None) == name)
    ]


# --------------------------------------------------------------------- 3. no pickle, no eval


UNSAFE_LOADERS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("cPickle", "load"),
    ("cPickle", "loads"), ("dill", "load"), ("dill", "loads"), ("joblib", "load"),
    ("marshal", "load"), ("marshal", "loads"), ("shelve", "open"), ("pd", "read_pickle"),
    ("pandas", "read_pickle"), ("yaml", "unsafe_load"),
}  # fmt: skip


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> Any:
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else "<expr>"
    return None


def violations(source: str, filename: str = "<code>") -> list[str]:
    """Every breach of the no-pickle / no-eval rules in ``source``, as ``file:line: what``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        parts = tuple(name.rsplit(".", 1)) if "." in name else ("", name)
        where = f"{filename}:{node.lineno}"
        if _keyword(node, "allow_pickle") not in (None, False):
            found.append(f"{where}: allow_pickle={_keyword(node, 'allow_pickle')}")
        if name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is not False:
            found.append(f"{where}: np.load without allow_pickle=False")
        if name == "torch.load" and _keyword(node, "weights_only") is not True:
            found.append(f"{where}: torch.load without weights_only=True")
        if parts in UNSAFE_LOADERS or name.endswith("read_pickle"):
            found.append(f"{where}: {name} (unpickles)")
        if name == "yaml.load" and _keyword(node, "Loader") is None:
            found.append(f"{where}: yaml.load without a safe Loader")
        if name in ("eval", "exec", "builtins.eval", "builtins.exec", "__import__"):
            found.append(f"{where}: {name}()")
        if name in ("os.system", "os.popen") or _keyword(node, "shell") not in (None, False):
            found.append(f"{where}: a shell command ({name})")
    return found


def test_the_scanner_catches_every_rule() -> None:
    bad = """
import numpy as np, pickle, torch, yaml, os, subprocess, joblib
np.load(f, allow_pickle=True)
np.load(f)
torch.load(f)
torch.load(f, weights_only=False)
pickle.loads(b)
joblib.load(f)
df.read_pickle(f)
yaml.load(s)
eval("1")
exec("x = 1")
os.system("ls")
subprocess.run("ls", shell=True)
model.eval()  # a method, not the builtin: allowed
np.load(f, allow_pickle=False)  # allowed
torch.load(f, map_location="cpu", weights_only=True)  # allowed
"""
    found = violations(bad)
    assert len(found) == 13, "\n".join(found)
    assert not any(f"<code>:{n}:" in " ".join(found) for n in (16, 17, 18))


def test_no_pickle_no_eval_in_the_library_pages_and_app() -> None:
    assert len(SCANNED) > 30 and REPO_ROOT / "app.py" in SCANNED
    found = [
        v
        for path in SCANNED
        for v in violations(path.read_text(), str(path.relative_to(REPO_ROOT)))
    ]
    assert found == [], "\n".join(found)


# ---------------------------------------------------------------- 4. weights_only checkpoints


@pytest.fixture
def evil_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """``(checkpoint, marker)``: a ``torch.save`` file whose pickle would create the marker."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {}, "step": 3, "note": Payload(marker)}, path)
    assert not marker.exists()
    return path, marker


def test_the_checkpoint_payload_is_live(evil_checkpoint: tuple[Path, Path]) -> None:
    """The control: the file really runs code when loaded the unsafe way."""
    path, marker = evil_checkpoint
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_the_trainer_refuses_a_checkpoint_with_a_payload(
    evil_checkpoint: tuple[Path, Path],
) -> None:
    from gca_viz.train import TrainConfig, Trainer

    path, marker = evil_checkpoint
    trainer = Trainer(TrainConfig.from_dict({"steps": 1, "device": "cpu", "batch_size": 16}))
    with pytest.raises(pickle.UnpicklingError, match=r"[Ww]eights only"):
        trainer.load_checkpoint(path)
    assert not marker.exists()


def test_the_lab_refuses_a_run_checkpoint_with_a_payload(
    evil_checkpoint: tuple[Path, Path], tmp_path: Path
) -> None:
    from gca_viz.lab.batches import trained_encoder

    path, marker = evil_checkpoint
    store = RunStore(tmp_path / "store")
    run_id = add_run(store, name="planted", config={"steps": 5, "device": "cpu"}, status="stopped")
    store.run_dir(run_id).mkdir(parents=True)
    (store.run_dir(run_id) / "checkpoint.pt").write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="unreadable"):
        trained_encoder(store, run_id)
    assert not marker.exists()


def test_a_resumed_run_refuses_a_planted_checkpoint(
    evil_checkpoint: tuple[Path, Path], tmp_path: Path
) -> None:
    """A run process resuming from a checkpoint someone replaced fails, saying why."""
    path, marker = evil_checkpoint
    store = RunStore(tmp_path / "store", max_concurrent=1)
    config = {"steps": 5, "device": "cpu", "batch_size": 16, "eval_every": 0, "snapshot_every": 0}
    run_id = add_run(store, name="planted", config=config, status="stopped")
    store.run_dir(run_id).mkdir(parents=True)
    (store.run_dir(run_id) / "checkpoint.pt").write_bytes(path.read_bytes())
    store.resume(run_id)
    wait_for_status(store, run_id, "failed", "finished", "stopped", "interrupted")
    info = store.get(run_id)
    assert info.status == "failed", info
    assert "Weights only load failed" in (info.error or ""), info.error
    assert not marker.exists()


# ----------------------------------------------------------------- 5. confined user paths


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """``tmp/data`` with a dataset, a folder and links in and out; ``tmp/secret.npz``
    outside it."""
    base = tmp_path / "data"
    (base / "imgs" / "cat").mkdir(parents=True)
    np.savez(base / "mine.npz", x=np.zeros((4, 2)), y=np.arange(4) % 2)
    np.savez(tmp_path / "secret.npz", x=np.zeros((4, 2)), y=np.arange(4) % 2)
    (tmp_path / "elsewhere").mkdir()
    (base / "link-in.npz").symlink_to(base / "mine.npz")
    (base / "link-out.npz").symlink_to(tmp_path / "secret.npz")
    (base / "dir-out").symlink_to(tmp_path / "elsewhere")
    return base


def test_paths_inside_the_data_directory_resolve(data_dir: Path) -> None:
    assert resolve_data_path(data_dir, "mine.npz") == data_dir / "mine.npz"
    assert resolve_data_path(data_dir, "  imgs/../mine.npz ") == data_dir / "mine.npz"
    assert resolve_data_path(data_dir, str(data_dir / "mine.npz")) == data_dir / "mine.npz"
    assert resolve_data_path(data_dir, "link-in.npz") == data_dir / "mine.npz"  # a link inside
    assert resolve_data_path(data_dir, "imgs") == data_dir / "imgs"


@pytest.mark.parametrize(
    "text, says",
    [
        ("../secret.npz", "leaves the data directory"),
        ("imgs/../../secret.npz", "leaves the data directory"),
        ("/etc/passwd", "leaves the data directory"),
        ("link-out.npz", "leaves the data directory"),  # a link to a file outside
        ("dir-out", "leaves the data directory"),  # a link to a folder outside
        ("mine.npz\x00.png", "NUL character"),
        ("", "empty"),
        ("missing.npz", "no such file or folder"),
        (
            "x" * 5000,
            r"'x{120}\.\.\.' \(5000 characters\): cannot be resolved \(File name too long\)",
        ),
    ],
)
def test_paths_that_leave_the_data_directory_are_refused(
    data_dir: Path, text: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        resolve_data_path(data_dir, text)


def test_a_folder_holding_a_link_out_is_refused(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "imgs" / "cat" / "passwd.png").symlink_to(tmp_path / "secret.npz")
    with pytest.raises(ValueError, match=r"cat/passwd.png is a link that leaves"):
        resolve_data_path(data_dir, "imgs")
    (data_dir / "imgs" / "cat" / "passwd.png").unlink()
    (data_dir / "imgs" / "dog").symlink_to(tmp_path / "elsewhere")  # a class folder out
    with pytest.raises(ValueError, match=r"dog is a link that leaves"):
        resolve_data_path(data_dir, "imgs")


def test_a_link_loop_is_a_clear_error(data_dir: Path) -> None:
    (data_dir / "loop").symlink_to(data_dir / "loop")
    with pytest.raises(ValueError, match=r"cannot be resolved \(Symlink loop"):
        resolve_data_path(data_dir, "loop")


def test_a_run_directory_cannot_be_steered_by_its_id(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store")
    assert store.run_dir(3) == store.dir / "run-3"
    for bad in ("../../x", "3/../../x"):
        with pytest.raises(ValueError):
            store.run_dir(bad)  # type: ignore[arg-type]
