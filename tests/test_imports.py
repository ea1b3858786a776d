"""Import direction (STYLE.md section 2): walk transformer/ with ast and check every import.

config <- model, data <- checkpoint, decoding <- evaluation, export <- run <- loading, training
<- commands, beside which sit benchmarks; runtime is importable by anything and imports only
torch (and numpy, to seed it) and config; so is progress (and tqdm); errors (the user-error
base) is importable by anything and imports nothing. Inference never imports training/: in
commands/, only the training commands may.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "transformer"

# Which internal units each unit may import (besides itself). A unit is a top-level module of
# `transformer` (config, runtime, checkpoint, loading, errors) or a subpackage (model, data, ...).
_CORE = {"errors", "config", "runtime", "progress", "model", "data", "decoding", "checkpoint"}
ALLOWED_INTERNAL: dict[str, set[str]] = {
    "errors": set(),
    "config": {"errors"},
    "runtime": {"errors", "config"},
    "progress": {"errors", "config"},
    "model": {"errors", "config", "runtime"},
    "data": {"errors", "config", "runtime"},
    "decoding": {"errors", "config", "runtime", "model", "data"},
    "checkpoint": {"errors", "config", "runtime", "model", "data"},
    "evaluation": _CORE,
    "export": _CORE,
    "run": _CORE | {"evaluation", "export"},
    "loading": _CORE | {"evaluation", "export", "run"},
    "training": _CORE | {"evaluation", "export", "run"},
    # The server (tmt-serve) is inference: it sits below commands and never imports training.
    "serve": _CORE | {"evaluation", "export", "run", "loading"},
}
ALLOWED_INTERNAL["commands"] = ALLOWED_INTERNAL["training"] | {
    "training",
    "loading",
    "benchmarks",
    "serve",
}
ALLOWED_INTERNAL["benchmarks"] = ALLOWED_INTERNAL["commands"] | {"commands"}
# The rule for commands/: inference (evaluate, translate, export, ...) never imports training/;
# only the training commands do.
TRAINING_COMMANDS = {"commands/train.py", "commands/prepare.py"}
# Third-party packages a unit may import; None means any (subject to EXCLUSIVE below).
ALLOWED_THIRD_PARTY: dict[str, set[str] | None] = {
    "config": set(),
    "runtime": {"torch", "numpy"},
    "model": {"torch"},
}
# Packages only these files may import.
HYDRA_COMMANDS = {"commands/hydra_config.py", "commands/train.py", "commands/prepare.py"}
EXCLUSIVE: dict[str, set[str]] = {
    "hydra": HYDRA_COMMANDS,
    "omegaconf": HYDRA_COMMANDS,
    "tensorboard": {"training/logger.py"},
    "torch.utils.tensorboard": {"training/logger.py"},
}
# Defined once, in data/special.py, and imported from there only.
SPECIAL_IDS = {"PAD_ID", "UNK_ID", "BOS_ID", "EOS_ID"}
# Leaf model modules take plain numbers, never configs.
LEAF_MODULES = {"model/attention.py", "model/layers.py", "model/embedding.py", "model/masks.py"}


def _python_files() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(path: Path, module_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in the file, relative imports resolved.

    module_level_only skips imports inside functions, classes and `if` blocks.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module_name = _module_name(path)
    package = module_name if path.name == "__init__.py" else module_name.rpartition(".")[0]
    names = []
    for node in tree.body if module_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append((node.lineno, module))
            names.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return names


def _unit(name: str) -> str:
    """transformer.model.layers -> model; transformer.loading -> loading; transformer -> ''."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _violations(path: Path) -> list[str]:
    rel = path.relative_to(PACKAGE_DIR).as_posix()
    unit = _unit(_module_name(path))
    problems = []
    for line, name in _imported_names(path):
        where = f"transformer/{rel}:{line} imports {name}"
        top = name.split(".")[0]
        for package, owners in EXCLUSIVE.items():
            if (name == package or name.startswith(package + ".")) and rel not in owners:
                problems.append(f"{where}: only {', '.join(sorted(owners))} may import {package}")
        special = name.rpartition(".")[2] in SPECIAL_IDS
        if special and name.rpartition(".")[0] != "transformer.data.special":
            problems.append(f"{where}: the special ids come from transformer.data.special")
        if top == "transformer":
            target = _unit(name)
            if target not in ALLOWED_INTERNAL or target == unit:
                continue  # the light root package (e.g. __version__) or the unit itself
            if target not in ALLOWED_INTERNAL.get(unit, set()):
                problems.append(
                    f"{where}: {unit or 'transformer/__init__'} may not import {target}"
                )
            elif unit == "commands" and target == "training" and rel not in TRAINING_COMMANDS:
                problems.append(f"{where}: only {sorted(TRAINING_COMMANDS)} may import training")
            if rel in LEAF_MODULES and target == "config":
                problems.append(f"{where}: leaf modules take plain numbers, not configs")
        elif top not in sys.stdlib_module_names and top != "__future__":
            third_party = ALLOWED_THIRD_PARTY.get(unit)
            if unit == "":
                problems.append(f"{where}: transformer/__init__.py must stay light (stdlib only)")
            elif third_party is not None and top not in third_party:
                problems.append(f"{where}: {unit} may import only {sorted(third_party)}")
    return problems


def _module_level_calls(path: Path) -> list[str]:
    """Statements that run code at import time (prints, seeding, registries), by line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    calls = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant):
            calls.append(f"transformer/{path.relative_to(PACKAGE_DIR).as_posix()}:{node.lineno}")
    return calls


def _import_graph() -> dict[str, set[str]]:
    """Module -> internal modules it imports at module level (function-level imports excluded)."""
    modules = {_module_name(path): path for path in _python_files()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {
            imported
            for _, imported in _imported_names(path, module_level_only=True)
            if imported in modules and imported != name
        }
    return graph


@pytest.mark.parametrize(
    "path", _python_files(), ids=lambda p: p.relative_to(PACKAGE_DIR).as_posix()
)
def test_imports_follow_the_import_direction(path: Path) -> None:
    assert _violations(path) == []


def test_every_unit_has_a_rule() -> None:
    units = {_unit(_module_name(path)) for path in _python_files()} - {""}
    assert units <= ALLOWED_INTERNAL.keys(), f"add a rule for {units - ALLOWED_INTERNAL.keys()}"


@pytest.mark.parametrize(
    "path", _python_files(), ids=lambda p: p.relative_to(PACKAGE_DIR).as_posix()
)
def test_importing_runs_no_code(path: Path) -> None:
    assert _module_level_calls(path) == []


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules, or [] (depth-first search)."""
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> list[str]:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return [*trail, module, imported]
            if imported not in state and (cycle := visit(imported, [*trail, module])):
                return cycle
        state[module] = "done"
        return []

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [])):
            return cycle
    return []


def test_optional_dependencies_are_imported_inside_functions() -> None:
    """`import transformer.<anything>` works without ctranslate2 (the optional extra)."""
    at_import = [
        f"{path.relative_to(PACKAGE_DIR)}:{line}"
        for path in _python_files()
        for line, name in _imported_names(path, module_level_only=True)
        if name.split(".")[0] == "ctranslate2"
    ]
    assert at_import == []


SERVE_EXTRA = {"fastapi", "starlette", "uvicorn", "prometheus_client", "multipart"}


def test_the_serve_extra_stays_inside_serve() -> None:
    """Only transformer/serve/ imports the serve extra at module level, and only functions import
    transformer/serve/ from outside it: `tmt-serve --help` and `import transformer` need no
    extra."""
    at_import = [
        f"{path.relative_to(PACKAGE_DIR)}:{line} imports {name}"
        for path in _python_files()
        if path.relative_to(PACKAGE_DIR).parts[0] != "serve"
        for line, name in _imported_names(path, module_level_only=True)
        if name.split(".")[0] in SERVE_EXTRA or name.startswith("transformer.serve")
    ]
    assert at_import == []


def test_no_import_cycles() -> None:
    assert _find_cycle(_import_graph()) == []


def test_checker_catches_bad_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "transformer"
    (package / "model").mkdir(parents=True)
    (package / "data").mkdir()
    bad_model = package / "model" / "layers.py"
    bad_model.write_text(
        "import sentencepiece\nfrom transformer.config import ModelConfig\n"
        "from ..data import tokenizer\n"
    )
    bad_data = package / "data" / "batching.py"
    bad_data.write_text("from omegaconf import OmegaConf\nfrom transformer.model import masks\n")
    side_effect = package / "data" / "corpus.py"
    side_effect.write_text("import torch\ntorch.manual_seed(0)\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_DIR", package)
    model_problems = " ".join(_violations(bad_model))
    assert "model may import only ['torch']" in model_problems
    assert "leaf modules take plain numbers" in model_problems
    assert "model may not import data" in model_problems
    data_problems = " ".join(_violations(bad_data))
    assert "may import omegaconf" in data_problems
    assert "data may not import model" in data_problems
    assert _module_level_calls(side_effect) == ["transformer/data/corpus.py:2"]
    assert _violations(side_effect) == []
    (package / "model" / "a.py").write_text("from transformer.model import b\n")
    (package / "model" / "b.py").write_text("import transformer.model.a\n")
    assert _find_cycle(_import_graph())[-1] in {"transformer.model.a", "transformer.model.b"}


def test_checker_lets_only_the_training_commands_import_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = tmp_path / "transformer" / "commands"
    commands.mkdir(parents=True)
    for name in ("evaluate.py", "train.py"):
        (commands / name).write_text("from transformer.training import trainer\n")
    (tmp_path / "transformer" / "loading.py").write_text("from transformer.training import x\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_DIR", tmp_path / "transformer")
    assert "may import training" in " ".join(_violations(commands / "evaluate.py"))
    assert _violations(commands / "train.py") == []
    loading = " ".join(_violations(tmp_path / "transformer" / "loading.py"))
    assert "loading may not import training" in loading
