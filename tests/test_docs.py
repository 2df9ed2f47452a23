"""The README stays true: its set-up commands are what CI runs, and every command it documents exists."""

import re
from pathlib import Path

from tests.test_cli import run_cli

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
    assert '-e ".[all,test]"' in install_and_test and install_and_test.endswith(".venv/bin/pytest")


def test_the_all_extra_holds_every_optional_part():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    optional = {name for name in extras if name not in ("all", "test", "jax")}  # jax is core now
    assert extras["all"] == [f"mnistlab[{','.join(sorted(optional))}]"]


def test_every_documented_command_exists(capsys):
    documented = set(re.findall(r"^mnistlab (\w+)", README, flags=re.M)) - {"--debug"}
    assert {"train", "evaluate", "report", "compare", "predict", "export", "data"} <= documented
    for command in documented:
        code, out, _ = run_cli(capsys, command, "--help")
        assert code == 0 and "Usage" in out, command


def test_readme_speed_table_is_the_rendering_of_the_committed_bench_results():
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("speed_table", ROOT / "bench" / "speed_table.py")
    speed_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed_table)
    results = json.loads((ROOT / "bench" / "results" / "train.json").read_text())
    block = re.search(r"<!-- speed-table: generated[^\n]*-->\n(.*?)\n<!-- speed-table: end -->", README, re.S)
    assert block, "README has no generated speed table"
    assert block.group(1) == speed_table.render(results)
    assert results["machine"] in block.group(1)  # every timing says where it was measured
