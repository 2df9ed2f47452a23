"""The README and the docs site stay true: the set-up commands are what CI runs, every command
is documented with its current `--help`, the docs build strictly, and every table of numbers is
the rendering of a results file under bench/results/."""

import re
from pathlib import Path

from tests.helpers import run_cli

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def setup_commands():
    return re.findall(r"```bash\n(.+?)\n```", README, flags=re.S)[:2]


def test_readme_opens_with_two_setup_commands_and_ci_runs_the_second():
    main_job, tests = setup_commands()
    assert "\n" not in main_job and "\n" not in tests
    assert README.index(main_job) < README.index("## ")  # before any other section
    # The first installs every extra and trains; the second is the script CI runs.
    assert main_job.endswith("mnistlab train") and '-e ".[all]"' in main_job
    assert tests == "bash .ci/run"
    install_and_test = (ROOT / ".ci" / "run").read_text().splitlines()[-1]
    assert '-e ".[all,test,docs]"' in install_and_test and install_and_test.endswith(
        ".venv/bin/pytest"
    )
    # The docs are built strictly after the install and before the tests.
    assert install_and_test.index("pip install") < install_and_test.index("mkdocs build --strict")
    assert install_and_test.index("mkdocs build --strict") < install_and_test.index(
        ".venv/bin/pytest"
    )


def test_the_all_extra_holds_every_optional_part():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    # jax is in train; test and docs are for working on mnistlab, not parts of it.
    optional = {name for name in extras if name not in ("all", "test", "docs", "jax")}
    assert extras["all"] == [f"mnistlab[{','.join(sorted(optional))}]"]


def test_every_documented_command_exists(capsys):
    # Command lines in code blocks, and the commands table's first column.
    documented = set(re.findall(r"^(?:\| `)?mnistlab (\w+)", README, flags=re.M)) - {"--debug"}
    assert {"train", "evaluate", "report", "compare", "predict", "export", "data"} <= documented
    for command in documented:
        code, out, _ = run_cli(capsys, command, "--help")
        assert code == 0 and "Usage" in out, command


def test_every_flag_the_readme_names_exists(capsys):
    def help_of(*command):
        code, out, _ = run_cli(capsys, *command, "--help")
        assert code == 0, command
        return out

    everything = help_of()
    commands = re.findall(r"^  (\w+)\s{2,}", everything.split("Commands:")[1], flags=re.M)
    helps = {name: help_of(name) for name in commands}
    # `mnistlab CMD ... --flag`, in code or in prose: CMD takes the flag.
    for command, rest in re.findall(r"mnistlab (\w+)([^\n`|#]*)", README):
        for flag in re.findall(r"--[a-z][a-z-]*", rest) if command in helps else []:
            assert flag in helps[command], f"mnistlab {command} has no {flag}"
    # A flag named on its own (`--run`): some command, or mnistlab itself, takes it.
    every_help = everything + "".join(helps.values())
    for flag in re.findall(r"`(--[a-z][a-z-]*)", README):
        assert flag in every_help, f"no command has {flag}"
    assert len(commands) >= 12 and "--debug" in everything


def _load(name: str, path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_table_of_numbers_is_the_rendering_of_its_results_file():
    tables = _load("tables", ROOT / "bench" / "tables.py")
    performance = (ROOT / "docs" / "performance.md").read_text()
    rendered = {m.group(2) for m in tables.BLOCK.finditer(performance)}
    assert rendered == set(tables.TABLES) - {"models-readme"}
    assert "models-readme" in {m.group(2) for m in tables.BLOCK.finditer(README)}
    for page in tables.PAGES:
        assert tables.render(page.read_text()) == page.read_text(), (
            f"run python bench/tables.py ({page.name})"
        )
    for name in ("train.json", "models.json", "serve.json", "workflows.json"):
        result = tables.load(name)
        for row in result.get("rows", [result]):  # every measurement says when, where and at what
            assert {"date", "commit", "machine"} <= set(row) or row.get("source"), (name, row)
    audit = tables.load("audit.json")
    for row in audit["runs"] + audit["rankings"]:
        assert {"date", "commit", "machine"} <= set(row), row


def test_the_docs_navigation_has_a_page_for_every_command_with_its_current_help():
    import yaml
    from typer.main import get_command

    from mnistlab.cli import app

    reference = _load("cli_reference", ROOT / "tools" / "cli_reference.py")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav_pages = set()

    def walk(entries):
        for entry in entries:
            for value in entry.values() if isinstance(entry, dict) else [entry]:
                walk(value) if isinstance(value, list) else nav_pages.add(value)

    walk(config["nav"])
    commands = set(get_command(app).commands)
    assert {f"commands/{name}.md" for name in commands} <= nav_pages
    # Every page under docs/ is in the navigation (mkdocs --strict fails on one that is not).
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == nav_pages
    documented = reference.documented_commands()
    assert {f"mnistlab {name}" for name in commands} <= documented
    assert reference.stale_pages() == [], "--help changed: run python tools/cli_reference.py"


def test_the_api_reference_is_the_servers_own_description():
    reference = _load("api_reference", ROOT / "tools" / "api_reference.py")
    spec = reference.openapi()
    page = reference.PAGE.read_text()
    assert not reference.is_stale(), "the API changed: run python tools/api_reference.py"
    # Every route the server documents has its section, and every answer its status line.
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            section = page.split(f"## `{method.upper()} {path}`", 1)[1].split("\n## ", 1)[0]
            for status in operation["responses"]:
                assert f"\n| {status} |" in section, (method, path, status)


def test_the_docs_build_strictly(tmp_path):
    import os
    import subprocess
    import sys

    import pytest

    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        pytest.skip('the docs extra is not installed: pip install -e ".[docs]"')
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", tmp_path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "index.html").exists() and (
        tmp_path / "commands" / "train" / "index.html"
    ).exists()


def test_no_lab_diary_where_users_read():
    import subprocess

    pattern = r"stops? [0-9]+|issue [0-9]+|\bagent of\b|the next shift"
    found = subprocess.run(
        ["grep", "-rniE", pattern, "README.md", "docs", "bench/README.md", "mkdocs.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert found == "", found


def test_the_layout_page_names_every_module():
    layout = (ROOT / "docs" / "layout.md").read_text()
    package = ROOT / "src" / "mnistlab"
    modules = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    modules |= {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()}
    missing = sorted(name for name in modules if f"`{name}`" not in layout)
    assert not missing, f"docs/layout.md does not name {missing}"
