"""Loading YAML is bounded: alias bombs, merge bombs, huge and deeply nested files are refused fast."""

import time
import tracemalloc

import pytest

from behavior_memory.config.loader import MAX_CONFIG_CHARS, MAX_CONFIG_VALUES
from behavior_memory.config.settings import load_config, load_config_text
from behavior_memory.errors import ConfigError


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each level a list of ``width`` aliases of the one before (9^9 values)."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join([*lines, f"namespace: *a{levels}"]) + "\n"


def merge_bomb(levels: int = 12) -> str:
    """Each mapping merges the one before twice: merging copies pairs, so it doubles per level."""
    lines = ["m0: &m0 {x: 1, y: 2}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: {i}}}" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def bounded(load):
    """Run ``load`` expecting a ConfigError; return it with the seconds and peak bytes it took."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as caught:
            load()
        return caught.value, time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_alias_bomb_is_refused_within_a_second_and_a_few_megabytes(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    error, seconds, peak = bounded(lambda: load_config(path, env={}))
    assert "alias" in str(error) and error.line is not None and str(path) in str(error)
    # Generous bounds (CI machines vary); bench/bench_yaml_bomb.py prints the real figures.
    assert seconds < 1.0 and peak < 100 * 2**20


def test_a_merge_bomb_is_refused_before_merging():
    error, seconds, peak = bounded(lambda: load_config_text(merge_bomb(40), env={}))
    assert "expands" in str(error) and seconds < 1.0 and peak < 100 * 2**20


def test_a_file_of_too_many_values_or_characters_is_refused(tmp_path):
    many = "x:\n" + "".join(f"  - {i}\n" for i in range(MAX_CONFIG_VALUES + 10))
    error, seconds, peak = bounded(lambda: load_config_text(many, env={}))
    assert "more than" in str(error) and seconds < 5 and peak < 100 * 2**20
    with pytest.raises(ConfigError, match="characters"):
        load_config_text("#" * (MAX_CONFIG_CHARS + 1), env={})
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (4 * MAX_CONFIG_CHARS + 10))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(huge, env={})


def test_deep_nesting_is_a_clean_error():
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config_text("x: " + "[" * 5000 + "]" * 5000 + "\n", env={})


def test_ordinary_aliases_and_merges_still_work():
    text = (
        "llm:\n  model: &model my-model\n  extra_body: &body {top_k: 20, min_p: 0.1}\n"
        "reflection:\n  model: *model\n  extra_body:\n    <<: *body\n    repetition_penalty: 1.2\n"
    )
    config = load_config_text(text, env={})
    assert config.reflection.model == "my-model"
    assert config.reflection.extra_body == {"top_k": 20, "min_p": 0.1, "repetition_penalty": 1.2}
    with pytest.raises(ConfigError, match="recursive"):
        load_config_text("llm:\n  extra_body: &b {x: *b}\n", env={})
