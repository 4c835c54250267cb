"""README.md stays true: every configuration key the code accepts is documented there."""

from __future__ import annotations

from pathlib import Path

from eventstore.config import SERVER_KEYS, TOPIC_KEYS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_config_key_is_documented_with_its_default() -> None:
    for key in [*SERVER_KEYS.values(), *TOPIC_KEYS.values()]:
        default = str(key.default).lower() if key.kind is bool else str(key.default)
        assert f"| `{key.name}` | {default} |" in README, key.name
