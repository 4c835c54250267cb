"""README.md stays true: its configuration tables are the config table, row for row, and
its table of Kafka APIs is the registry's; its examples (the embedded quick start, the SQL)
print what it says, and the data directory is where it says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support import ServerProcess, eventstore_command

from eventstore.config import SERVER_KEYS, TOPIC_KEYS, ConfigKey
from eventstore.kafka.registry import api_table

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def config_tables() -> list[list[tuple[str, str, str]]]:
    """The (key, default, meaning) rows of each table under "Configuration keys", in order."""
    section = README.split("### Configuration keys", 1)[1].split("\n## ", 1)[0]
    tables: list[list[tuple[str, str, str]]] = []
    in_table = False
    for line in section.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        if not in_table:
            tables.append([])
            in_table = True
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        if cells[0].startswith("`"):  # not the header or the |---| line
            tables[-1].append((cells[0].strip("`"), cells[1], cells[2]))
    return tables


def row(key: ConfigKey) -> tuple[str, str, str]:
    """How the README writes a key: booleans in lower case, as in a config file."""
    default = str(key.default).lower() if key.kind is bool else str(key.default)
    return key.name, default, key.doc


def test_the_readme_has_a_server_and_a_topic_table() -> None:
    assert len(config_tables()) == 2


def test_server_keys_are_documented_with_their_default_and_meaning() -> None:
    server, _ = config_tables()
    assert {name for name, _, _ in server} == set(SERVER_KEYS)
    assert server == [row(key) for key in SERVER_KEYS.values()]


def test_topic_keys_are_documented_with_their_default_and_meaning() -> None:
    _, topic = config_tables()
    assert {name for name, _, _ in topic} == set(TOPIC_KEYS)
    assert topic == [row(key) for key in TOPIC_KEYS.values()]


def test_the_last_event_of_each_key_example_picks_the_last_record(tmp_path: Path) -> None:
    """Records of one key written in the same millisecond: the example must still pick the
    last one (it once took max(timestamp), which ties)."""
    query = README.split("The last event of each key", 1)[1].split("```sql\n", 1)[1]
    query = query.split("```", 1)[0]
    data = str(tmp_path / "data")

    def run(*argv: str, stdin: str | None = None) -> str:
        done = subprocess.run([*eventstore_command(), *argv, "--data-dir", data], input=stdin,
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout

    run("topics", "create", "clicks", "--partitions", "2")
    pages = [("user-0", "/a"), ("user-1", "/b")] + [("user-0", f"/p{i}") for i in range(20)]
    run("produce", "clicks", "-K", ":",
        stdin="".join(f'{user}:{{"page": "{page}"}}\n' for user, page in pages))
    rows = json.loads(run("sql", query, "--json"))
    assert {row["user"]: row["last_page"] for row in rows} == {"user-0": "/p19", "user-1": "/b"}


def test_the_api_table_is_what_the_registry_prints() -> None:
    """The "Kafka APIs served" table is the output of ``python -m eventstore.kafka.registry``:
    an API or version added to the registry is added to README by running it again."""
    section = README.split("### Kafka APIs served", 1)[1].split("\n#", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    printed = subprocess.run([sys.executable, "-m", "eventstore.kafka.registry"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    assert printed == api_table() + "\n"
    assert table == api_table(), "README's API table is stale: run python -m " \
                                 "eventstore.kafka.registry and put its output in README.md"


def fenced(section: str, language: str) -> str:
    """The first ``language`` code block of the README section titled ``section``."""
    text = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return text.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_the_embedded_quick_start_prints_what_the_readme_says(tmp_path: Path) -> None:
    """The quick start, run as it is in a fresh directory: a producer, then a consumer in a
    group that reads the records and commits them."""
    section = "Quick start: the embedded API"
    done = subprocess.run([sys.executable, "-c", fenced(section, "python")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == fenced(section, "text")
    assert (tmp_path / "quickstart-data" / "clicks-0").is_dir()


def test_the_data_dir_flag_beats_the_environment_which_beats_the_config_file(
        tmp_path: Path) -> None:
    """What "Where the data lives" states, for ``serve`` and for an offline command."""
    assert "highest first: `--data-dir`, then the environment variable\n`EVENTSTORE_DATA_DIR`," \
        " then `data-dir` in the `--config` file, then `./data`" in README
    config = tmp_path / "eventstore.toml"
    config.write_text(f'data-dir = "{tmp_path / "from-file"}"\n')
    env = {"EVENTSTORE_DATA_DIR": str(tmp_path / "from-env")}
    flag = str(tmp_path / "from-flag")
    with ServerProcess.start(flag, config_file=str(config), env=env) as server:
        assert server.ready["data_dir"] == flag
    assert not (tmp_path / "from-env").exists() and not (tmp_path / "from-file").exists()

    def offline(*argv: str) -> None:
        subprocess.run([*eventstore_command(), "topics", "create", *argv], cwd=tmp_path,
                       env={**os.environ, **env}, capture_output=True, timeout=60, check=True)

    offline("from-env-topic")
    offline("from-flag-topic", "--data-dir", flag)
    assert (tmp_path / "from-env" / "from-env-topic-0").is_dir()
    assert (Path(flag) / "from-flag-topic-0").is_dir()
    assert not (tmp_path / "data").exists()
