"""Conda env files and rule directives: envs parse, name only declared packages, cover every import a
rule's stage makes; every rule that runs something declares conda/log/benchmark/threads/resources."""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
RULES = ROOT / "workflow" / "rules"
PACKAGE = ROOT / "ternarylm"

# conda-forge name -> pip (pyproject) name, where they differ
CONDA_TO_PIP = {"pytorch": "torch", "matplotlib-base": "matplotlib"}
# conda packages that pyproject cannot declare, and why
NOT_IN_PYPROJECT = {
    "python": "the interpreter itself (pyproject: requires-python)",
    "pip": "installs the pip: section",
}
# import name -> pip distribution, where they differ
IMPORT_TO_PIP = {"yaml": "pyyaml", "llama_cpp": "llama-cpp-python", "IPython": "ipykernel"}
# distributions that pull in others whose modules the code imports directly
PROVIDES = {
    "nbconvert": {"nbformat", "jinja2"},
    "papermill": {"nbformat", "nbclient"},
    "ipykernel": {"ipython"},
    "matplotlib": {"numpy"},
    "pandas": {"numpy"},
    "datasets": {"huggingface-hub", "pyarrow", "numpy"},
}
RUN_DIRECTIVES = ("shell", "script", "notebook", "run", "wrapper")
REQUIRED_DIRECTIVES = ("conda", "log", "benchmark", "threads", "resources")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split_spec(spec: str) -> tuple[str, str]:
    """'pytorch=2.13' / 'gguf==0.19' / 'numpy>=1' -> (name, version constraint)."""
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", spec.strip())
    assert m, f"unparsable dependency {spec!r}"
    return m.group(1), m.group(2).strip()


def env_packages(env: dict) -> dict[str, str]:
    """{pip-normalised name: version constraint} of the conda and pip sections."""
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pip_spec in dep.get("pip", []):
                if pip_spec.startswith("-"):
                    continue
                name, ver = split_spec(pip_spec)
                out[norm(name)] = ver
        else:
            name, ver = split_spec(dep)
            out[norm(CONDA_TO_PIP.get(name, name))] = ver
    return out


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    out = {}
    for req in reqs:
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[.*?\])?\s*(.*)$", req)
        out[norm(m.group(1))] = m.group(2)
    return out


def env_files() -> list[Path]:
    return sorted(ENVS.glob("*.yaml"))


def load_env(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


# --------------------------------------------------------------------------- env files


def test_env_files_exist():
    names = {p.name for p in env_files()}
    assert {"torch.yaml", "report.yaml"} <= names


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_file_parses_and_is_pinned(path):
    env = load_env(path)
    assert isinstance(env, dict) and env.get("name"), f"{path.name}: no name"
    assert env.get("channels") and env["channels"][0] == "conda-forge", f"{path.name}: conda-forge first"
    assert "defaults" not in env["channels"], f"{path.name}: mixing defaults with conda-forge breaks solves"
    deps = env["dependencies"]
    assert isinstance(deps, list) and deps
    pip_sections = [d for d in deps if isinstance(d, dict)]
    assert all(set(d) == {"pip"} for d in pip_sections), f"{path.name}: only a pip: section may be a dict"
    if pip_sections:
        assert "pip" in {split_spec(d)[0] for d in deps if isinstance(d, str)}, f"{path.name}: pip: needs pip"
    for name, ver in env_packages(env).items():
        if name == "pip":
            continue
        assert re.match(r"^(=|==)\d", ver), f"{path.name}: {name} not pinned to a version ({ver!r})"
    for dep in pip_sections:
        for spec in dep["pip"]:
            # no local paths: snakemake copies the env file to .snakemake/conda/ before creating it,
            # so a relative path (-e ..) would resolve differently there than with conda env create
            assert not spec.startswith(("-e", ".", "/", "file:")), f"{path.name}: local pip path {spec!r}"


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_names_only_packages_pyproject_declares(path):
    declared = pyproject_requirements()
    for name, ver in env_packages(load_env(path)).items():
        if name in NOT_IN_PYPROJECT:
            continue
        assert name in declared, f"{path.name}: {name} is not declared in pyproject.toml"
        # the pin must satisfy pyproject's lower bound
        low = re.search(r">=\s*([\d.]+)", declared[name])
        if low:
            assert version_tuple(ver) >= version_tuple(low.group(1)), (
                f"{path.name}: {name}{ver} is below pyproject's {declared[name]}"
            )


def test_conda_to_pip_mapping_is_used():
    """pytorch is torch on PyPI: the mapping must actually be exercised by torch.yaml."""
    conda_names = {
        split_spec(d)[0] for d in load_env(ENVS / "torch.yaml")["dependencies"] if isinstance(d, str)
    }
    assert "pytorch" in conda_names and "torch" not in conda_names


# --------------------------------------------------------------------------- rules


def rule_blocks() -> list[tuple[str, str, str]]:
    """(file, rule name, rule body) of every rule/checkpoint in workflow/rules/*.smk."""
    blocks = []
    for smk in sorted(RULES.glob("*.smk")):
        text = smk.read_text()
        heads = list(re.finditer(r"^(?:rule|checkpoint)\s+(\w+)\s*:", text, re.M))
        for i, m in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            body = text[m.end() : end]
            # the body ends at the first non-blank line that is not indented
            stop = re.search(r"^\S", body, re.M)
            blocks.append((smk.name, m.group(1), body[: stop.start()] if stop else body))
    return blocks


def conda_env(body: str) -> str | None:
    """The env file a rule's ``conda:`` names: a string, or a constant (``TORCH_ENV``) of the rule files."""
    m = re.search(r"^    conda:\s*\n\s+(?:[\"'](.+?)[\"']|(\w+))\s*$", body, re.M)
    if not m or m.group(1):
        return m and m.group(1)
    text = "\n".join(p.read_text() for p in sorted(RULES.glob("*.smk")))
    const = re.search(rf"^{m.group(2)}\s*=\s*[\"'](.+?)[\"']", text, re.M)
    return const and const.group(1)


def directives(body: str) -> set[str]:
    return set(re.findall(r"^    (\w+)\s*:", body, re.M))


def run_rules() -> list[tuple[str, str, str]]:
    return [b for b in rule_blocks() if directives(b[2]) & set(RUN_DIRECTIVES)]


def test_rule_files_define_rules():
    assert run_rules(), "no rule with shell/script found in workflow/rules/*.smk"


@pytest.mark.parametrize("block", run_rules(), ids=lambda b: f"{b[0]}:{b[1]}")
def test_rule_declares_conda_log_benchmark_threads_resources(block):
    smk, name, body = block
    missing = [d for d in REQUIRED_DIRECTIVES if d not in directives(body)]
    assert not missing, f"rule {name} ({smk}) lacks {', '.join(missing)}"
    conda = conda_env(body)
    assert conda, f"rule {name}: conda: must name an env file"
    env = (RULES / conda).resolve()
    assert env.parent == ENVS and env.exists(), f"rule {name}: conda env {conda} not in envs/"
    resources = body.split("resources:", 1)[1]
    assert re.search(r"\bmem_mb\s*=", resources) and re.search(r"\bruntime\s*=", resources), (
        f"rule {name}: resources need mem_mb and runtime (the SLURM profile submits with them)"
    )


# --------------------------------------------------------------------------- imports vs envs


def third_party_imports(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(top-level third-party modules, ternarylm submodules) imported anywhere in ``tree``,
    except inside ``try: ... except ImportError`` (optional)."""
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
            for h in node.handlers
        ):
            optional |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    external, internal = set(), set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "ternarylm":
                names += [f"ternarylm.{a.name}" for a in node.names]
        else:
            continue
        for mod in names:
            top = mod.split(".")[0]
            if top == "ternarylm":
                internal.add(mod)
            elif top not in sys.stdlib_module_names and top != "__future__":
                external.add(top)
    return external, internal


def module_closure(modules: set[str]) -> set[str]:
    """Third-party imports of ``modules`` and every ternarylm module they import."""
    seen, todo, external = set(), list(modules), set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        rel = Path(*mod.split(".")[1:])
        path = PACKAGE / rel.with_suffix(".py") if mod != "ternarylm" else PACKAGE / "__init__.py"
        if not path.exists():
            path = PACKAGE / rel / "__init__.py"
        if not path.exists():
            continue
        ext, internal = third_party_imports(ast.parse(path.read_text()))
        external |= ext
        todo += sorted(internal | {"ternarylm"})
    return external


def stage_modules() -> dict[str, str]:
    """{stage: module} from ternarylm/cli.py's STAGES table (parsed, not imported)."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id == "STAGES":
                return {k: v[0] for k, v in ast.literal_eval(node.value).items()}
    raise AssertionError("STAGES not found in ternarylm/cli.py")


def env_provides(path: Path) -> set[str]:
    pkgs = set(env_packages(load_env(path)))
    for p in list(pkgs):
        pkgs |= PROVIDES.get(p, set())
    return pkgs


def missing_from_env(imports: set[str], env: Path) -> set[str]:
    have = env_provides(env)
    return {m for m in imports if norm(IMPORT_TO_PIP.get(m, m)) not in have}


# the installed entry point, written out or (report.smk, until its rewrite) as {TERNARYLM}
STAGE_CALL = re.compile(r"(?:\bternarylm|\{TERNARYLM\})\s+(\w+)")


def stage_rules() -> list[tuple[str, str, str]]:
    """(rule, stage, env file name) for every rule whose shell runs `ternarylm <stage>`."""
    out = []
    for _smk, name, body in run_rules():
        stage = re.search(r"^    shell:.*", body, re.M | re.S)
        stage = stage and STAGE_CALL.search(stage.group(0))
        if not stage:  # shell built elsewhere (common.smk): shell: pretrain_cmd() / shell: REPORT_CMD
            text = "\n".join(p.read_text() for p in sorted(RULES.glob("*.smk")))
            for ident in re.findall(r"\b([A-Za-z_]\w*)\b", body.split("shell:", 1)[-1]):
                m = re.search(rf"^(?:def {ident}\(|{ident}\s*=).*?(?=^\S)", text, re.M | re.S)
                stage = m and STAGE_CALL.search(m.group(0))
                if stage:
                    break
        conda = conda_env(body)
        if stage and conda:
            out.append((name, stage.group(1), Path(conda).name))
    return out


@pytest.mark.parametrize("rule", stage_rules(), ids=lambda r: r[0])
def test_rule_env_covers_its_stage_imports(rule):
    name, stage, env = rule
    modules = stage_modules()
    assert stage in modules, f"rule {name} runs unknown stage {stage!r}"
    imports = module_closure({"ternarylm.cli", modules[stage]})
    missing = missing_from_env(imports, ENVS / env)
    assert not missing, f"rule {name} (stage {stage}) imports {sorted(missing)}, not in envs/{env}"


def notebook_imports() -> tuple[set[str], set[str]]:
    external, internal = set(), set()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = "".join(cell["source"])
            src = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))
            ext, internal_mods = third_party_imports(ast.parse(src))
            external |= ext
            internal |= internal_mods
    return external, internal


def test_report_env_covers_notebook_imports():
    if not list((ROOT / "notebooks").glob("*.ipynb")):
        pytest.skip("no notebooks yet")
    external, internal = notebook_imports()
    imports = external | module_closure(internal)
    missing = missing_from_env(imports, ENVS / "report.yaml")
    assert not missing, f"notebooks import {sorted(missing)}, not in envs/report.yaml"
    assert "ipykernel" in env_packages(load_env(ENVS / "report.yaml")), "papermill needs a kernel"


def test_import_check_sees_real_imports():
    """The checker itself: optional imports are skipped, lazy ones inside functions are not."""
    code = "import torch\ntry:\n    import triton\nexcept ImportError:\n    triton = None\n"
    code += "def f():\n    import yaml\n    from ternarylm import io\n"
    external, internal = third_party_imports(ast.parse(code))
    assert external == {"torch", "yaml"} and internal == {"ternarylm", "ternarylm.io"}
    assert missing_from_env({"torch", "yaml", "llama_cpp"}, ENVS / "torch.yaml") <= {"llama_cpp"}


def test_every_rule_runs_a_known_stage():
    """All rules are thin `ternarylm <stage>` calls, so the import check above covers every rule."""
    resolved = {name for name, _, _ in stage_rules()}
    assert resolved == {name for _, name, _ in run_rules()}
