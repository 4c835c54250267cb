"""README.md stays true: its configuration tables are the config table, row for row."""

from __future__ import annotations

from pathlib import Path

from eventstore.config import SERVER_KEYS, TOPIC_KEYS, ConfigKey

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
