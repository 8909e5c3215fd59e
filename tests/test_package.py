"""The package skeleton: import boundaries, the CLI and the app starting (device choice:
tests/test_device.py)."""

import ast
import importlib.metadata
import os
import pkgutil
import re
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

from streamlit.testing.v1 import AppTest

import gca_viz
from gca_viz.device import resolve_device
from tests.helpers import REPO_ROOT, run_python


def _library_modules() -> list[str]:
    """Every module of gca_viz that exists now (future modules are covered automatically)."""
    names = [
        info.name
        for info in pkgutil.walk_packages(gca_viz.__path__, prefix="gca_viz.")
        if info.name.rsplit(".", 1)[-1] != "__main__"
    ]
    return ["gca_viz", *sorted(names)]


# --- import boundaries ---------------------------------------------------------------------


def test_import_gca_viz_is_light() -> None:
    result = run_python(
        "-c",
        "import sys, gca_viz\n"
        "heavy = sorted(m for m in ('streamlit', 'torch', 'plotly') if m in sys.modules)\n"
        "print(','.join(heavy))\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"`import gca_viz` imported: {result.stdout.strip()}"


def test_library_never_imports_streamlit() -> None:
    modules = _library_modules()
    assert "gca_viz.device" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    if any(m == 'streamlit' or m.startswith('streamlit.') for m in sys.modules):\n"
        "        print(name)\n"
        "        break\n"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{result.stdout.strip()} imports streamlit"


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _distribution(requirement: str) -> str:
    """``"umap-learn>=0.5"`` -> ``"umap_learn"`` (the normalised distribution name)."""
    name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "_", name).lower()


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level third-party modules gca_viz imports, split into ``"module"`` (imported when
    a module is) and ``"deferred"`` (imported inside a function), from the source's syntax."""
    found: dict[str, set[str]] = {"module": set(), "deferred": set()}
    for path in sorted((REPO_ROOT / "gca_viz").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        top_level = {id(node) for node in tree.body}
        guarded = {  # `if TYPE_CHECKING:` blocks import nothing at run time
            id(child)
            for node in tree.body
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for child in ast.walk(node)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root in sys.stdlib_module_names or root == "gca_viz" or id(node) in guarded:
                    continue
                found["module" if id(node) in top_level else "deferred"].add(root)
    return found


def test_library_dependencies_are_declared_and_leave_the_app_out() -> None:
    """`pip install .` installs what gca_viz imports and not Streamlit; what the library
    imports only inside a function is a core dependency or an extra's."""
    project = _pyproject()["project"]
    core = {_distribution(r) for r in project["dependencies"]}
    extras = {
        extra: {_distribution(r) for r in requirements}
        for extra, requirements in project["optional-dependencies"].items()
    }
    assert "streamlit" not in core and "pandas" not in core and "umap_learn" not in core
    assert {"streamlit", "umap_learn", "pandas"} <= extras["app"]
    assert extras["umap"] == {"umap_learn"}
    distributions = importlib.metadata.packages_distributions()

    def dists(module: str) -> set[str]:  # a module not installed here: its own name
        return {_distribution(d) for d in distributions.get(module, [module])}

    imports = _third_party_imports()
    assert {"torch", "numpy", "plotly"} <= imports["module"]  # the scan sees real imports
    for module in imports["module"]:
        assert dists(module) & core, f"gca_viz imports {module} at module level: not core"
    declared = core.union(*extras.values(), {"numba", "pynndescent"})  # (umap-learn's own)
    for module in imports["deferred"]:
        assert dists(module) & declared, f"{module}: in no dependency list"


def test_umap_without_umap_learn_names_the_extra() -> None:
    """A library-only install has no umap-learn: `embed.umap` says which extra adds it,
    and PCA still works."""
    result = run_python(
        "-c",
        "import sys\n"
        "sys.modules['umap'] = None  # as if umap-learn were not installed\n"
        "import numpy as np\n"
        "from gca_viz import embed\n"
        "z = np.random.default_rng(0).normal(size=(20, 5))\n"
        "print(embed.pca(z, 2).shape)\n"
        "try:\n"
        "    embed.umap(z, 2)\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "(20, 2)"
    assert "umap-learn" in lines[1] and "gca-explorer[umap]" in lines[1], lines


# --- command line --------------------------------------------------------------------------


def test_cli_version() -> None:
    result = run_python("-m", "gca_viz", "--version", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"gca_viz {gca_viz.__version__}"


def test_cli_unknown_arguments_print_usage_and_exit_2() -> None:
    result = run_python("-m", "gca_viz", "frobnicate", timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "usage:" in result.stderr


# --- the app -------------------------------------------------------------------------------


def test_app_renders_start_page() -> None:
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["GCA Explorer"]
    assert len(at.latex) >= 1
    sidebar_text = " ".join(c.value for c in at.sidebar.caption)
    assert f"Device: `{resolve_device()}`" in sidebar_text


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port``; Linux only."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.add(address)
    return found


def test_streamlit_run_starts_and_binds_localhost() -> None:
    port = _free_port()
    # No --server.address: the default comes from .streamlit/config.toml.
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    body = ""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/_stcore/health"
                with urllib.request.urlopen(url, timeout=2) as response:
                    body = response.read().decode()
                if body == "ok":
                    break
            except OSError:
                time.sleep(0.2)
        exited_early = process.poll() is not None
        listening = _listening_addresses(port)
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert not exited_early, f"streamlit exited early:\n{output}"
    assert body == "ok", f"/_stcore/health did not answer ok within 60 s:\n{output}"
    if Path("/proc/net/tcp").exists():
        # 0100007F is 127.0.0.1 in /proc/net/tcp's little-endian hex: nothing else listens.
        assert listening == {"0100007F"}
    assert "Traceback" not in output, output


# --- the math reference --------------------------------------------------------------------

MATH_DOC = "docs/math.md"
_OLD_DOC = "gca-math" + ".md"  # the reference's old name, outside the repository (split so
# that this file does not cite it)
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "test-artifacts"}
# "docs/math.md section 4", "``docs/math.md`` (sections 1, 2 and 8)", "docs/math.md sec. 7",
# "sections 2 to 4", "sections 1, 3-5"
_CITATION = re.compile(
    r"docs/math\.md`*\s*\(?\s*(?:sections?|sec\.)\s+(\d+(?:\s*(?:,|and|to|-|–)\s*\d+)*)"
)


def _source_files() -> list[Path]:
    """The project's Python and Markdown files (no virtual environment, git or test output)."""
    found = []
    for root, dirs, files in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        found += [Path(root, f) for f in files if f.endswith((".py", ".md"))]
    return sorted(found)


def _cited_sections(spec: str) -> set[int]:
    """``"1, 2 and 8"`` -> {1, 2, 8}; ``"2 to 4"``, ``"3-5"`` -> the whole range."""
    cited: set[int] = set()
    for part in re.split(r"\s*(?:,|and)\s*", spec):
        bounds = [int(x) for x in re.split(r"\s*(?:to|-|–)\s*", part) if x]
        cited.update(range(bounds[0], bounds[-1] + 1))
    return cited


def test_math_doc_citations_point_to_existing_sections() -> None:
    """Every "docs/math.md section N" in the code, tests and docs names a section that
    docs/math.md has, and the reference's old name (a file outside the repository) is gone."""
    doc = (REPO_ROOT / MATH_DOC).read_text(encoding="utf-8")
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", doc, flags=re.MULTILINE)}
    assert sections == set(range(1, len(sections) + 1)), sorted(sections)
    old, missing, n_citations = [], [], 0
    for path in _source_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        name = path.relative_to(REPO_ROOT).as_posix()
        if _OLD_DOC in text:
            old.append(name)
        for match in _CITATION.finditer(text):
            n_citations += 1
            line = text.count("\n", 0, match.start()) + 1
            for n in sorted(_cited_sections(match.group(1)) - sections):
                missing.append(f"{name}:{line}: section {n}")
    assert not old, f"{_OLD_DOC} is cited (cite {MATH_DOC}) in: {old}"
    assert not missing, f"citations of sections {MATH_DOC} does not have: {missing}"
    assert n_citations >= 30, f"only {n_citations} section citations of {MATH_DOC} found"


def test_cited_sections_parse() -> None:
    assert _cited_sections("1, 2 and 8") == {1, 2, 8}
    assert _cited_sections("2 to 4") == {2, 3, 4}
    assert _cited_sections("1, 3-5") == {1, 3, 4, 5}
    found = _CITATION.findall("``docs/math.md`` (sections 1, 2 and 8) and docs/math.md sec. 7.")
    assert found == ["1, 2 and 8", "7"]


# --- static checks ---------------------------------------------------------------------------


def test_code_passes_ruff_and_mypy(tmp_path: Path) -> None:
    """The whole tree is linted and formatted as ``pyproject.toml`` says, and the library, the
    pages and the router type-check (mypy's ``files``); a fresh cache, so nothing is stale."""
    for args in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}{result.stderr}"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"


def test_wildcard_imports_bring_the_public_names_only() -> None:
    """``from gca_viz.metrics import *`` also brought scipy's functions and private helpers:
    every module a user star-imports lists its names, and each is defined there."""
    import importlib

    for name in ("gca_viz.metrics", "gca_viz.targets", "gca_viz.ot", "gca_viz.losses"):
        module = importlib.import_module(name)
        public = getattr(module, "__all__", None)
        assert public, f"{name} has no __all__"
        namespace: dict[str, object] = {}
        exec(f"from {name} import *", namespace)  # the import under test
        assert sorted(k for k in namespace if k != "__builtins__") == sorted(public), name
        assert not [n for n in public if n.startswith("_")], name


def test_no_page_script_shows_a_stray_string() -> None:
    """Streamlit's "magic" writes any bare expression of a page script to the page: Plan
    lab showed a constant's docstring ("Widths (px) of the losses table's columns...")
    above its title. A page's only bare string is its module docstring (its first line),
    outside functions and classes; imported modules (views/_*.py) are not pages."""
    import ast

    pages = [REPO_ROOT / "app.py", *sorted((REPO_ROOT / "views").glob("[!_]*.py"))]
    found = []

    def walk(body: list[ast.stmt], top: bool = False) -> None:
        for i, node in enumerate(body):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            value = node.value if isinstance(node, ast.Expr) else None
            if (
                isinstance(value, ast.Constant)
                and isinstance(value.value, str)
                and not (top and i == 0)
            ):
                found.append(f"{path.name}:{node.lineno}")
            for field in ("body", "orelse", "finalbody"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    walk(inner)
            for handler in getattr(node, "handlers", []):
                walk(handler.body)

    for path in pages:
        walk(ast.parse(path.read_text()).body, top=True)
    assert len(pages) >= 8 and found == []
