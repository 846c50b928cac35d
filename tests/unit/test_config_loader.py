"""The YAML -> pydantic loader: errors name the file, the key and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, model_validator

from behavior_memory.config.loader import json_schema, load_model, load_model_from_text
from behavior_memory.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tls(_Strict):
    verify: bool = True
    ca_file: str | None = None


class Llm(_Strict):
    base_url: str = "http://localhost:8000/v1"
    model: str = "qwen"
    api_key: str | None = None
    timeout_s: float = 30.0
    tls: Tls = Tls()


class Retrieval(_Strict):
    strategy: Literal["embedding", "bm25"] = "embedding"
    k: int = 4


class Namespace(_Strict):
    description: str


class Settings(_Strict):
    llm: Llm = Llm()
    retrieval: Retrieval = Retrieval()
    namespaces: dict[str, Namespace] = {}
    tags: list[str] = []


class NeedsName(_Strict):
    name: str
    retrieval: Retrieval = Retrieval()


VALID = """\
llm:
  base_url: http://gpu:8000/v1
  tls:
    verify: false
retrieval:
  strategy: bm25
  k: 8
namespaces:
  math:
    description: algebra tricks
tags: [a, b]
"""


def write(tmp_path: Path, text: str | bytes, name: str = "bmem.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load(text: str, env: dict[str, str] | None = None) -> Settings:
    return load_model_from_text(Settings, text, source="bmem.yaml", env=env or {})


def test_valid_file(tmp_path: Path) -> None:
    settings = load_model(Settings, write(tmp_path, VALID), env={})
    assert settings.llm.base_url == "http://gpu:8000/v1"
    assert settings.llm.tls.verify is False
    assert settings.retrieval == Retrieval(strategy="bm25", k=8)
    assert settings.namespaces["math"].description == "algebra tricks"
    assert settings.tags == ["a", "b"]


def test_unknown_key_names_key_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        load("llm:\n  model: m\n  bse_url: http://x\n")
    assert "bmem.yaml:3: key 'llm.bse_url': Extra inputs are not permitted" in str(info.value)
    assert (info.value.key, info.value.line, info.value.path) == ("llm.bse_url", 3, "bmem.yaml")


def test_wrong_type_names_key_line_and_input() -> None:
    with pytest.raises(ConfigError) as info:
        load("retrieval:\n  strategy: bm25\n  k: lots\n")
    assert "bmem.yaml:3: key 'retrieval.k': Input should be a valid integer" in str(info.value)
    assert "(got 'lots')" in str(info.value)


def test_bad_literal() -> None:
    with pytest.raises(ConfigError, match=r"bmem.yaml:2: key 'retrieval.strategy': Input should be 'embedding'"):
        load("retrieval:\n  strategy: grep\n")


def test_secret_values_are_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        load("llm:\n  api_key: [sk-abc123]\n")
    assert "llm.api_key" in str(info.value)
    assert "sk-abc123" not in str(info.value)


class Window(_Strict):
    low: int = 1
    high: int = 2

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


def test_model_level_error_points_at_the_section_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_model_from_text(Window, "# window\nlow: 5\n", source="bmem.yaml", env={})
    assert "\n  bmem.yaml:2: Value error, low must not exceed high" in str(info.value)
    assert "got" not in str(info.value)


def test_nested_unknown_key_at_depth_three() -> None:
    text = "llm:\n  tls:\n    verify: true\n    cert: x.pem\n"
    with pytest.raises(ConfigError, match=r"bmem.yaml:4: key 'llm.tls.cert': Extra inputs"):
        load(text)


def test_all_problems_in_one_error() -> None:
    with pytest.raises(ConfigError) as info:
        load("llm:\n  nope: 1\nretrieval:\n  k: x\ntags: [a, [b]]\n")
    message = str(info.value)
    assert "(3 problems)" in message
    assert "bmem.yaml:2: key 'llm.nope'" in message
    assert "bmem.yaml:4: key 'retrieval.k'" in message
    assert "bmem.yaml:5: key 'tags[1]'" in message


def test_missing_required_key_points_at_parent() -> None:
    with pytest.raises(ConfigError, match=r"bmem.yaml:2: key 'namespaces.math.description': Field required"):
        load("namespaces:\n  math:\n    summary: x\n")
    with pytest.raises(ConfigError, match=r"bmem.yaml:1: key 'name': Field required"):
        load_model_from_text(NeedsName, "retrieval:\n  k: 2\n", source="bmem.yaml", env={})


def test_malformed_yaml_gives_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        load("llm:\n  model: m\n   base_url: x\n")
    assert info.value.line == 3
    assert str(info.value).startswith("bmem.yaml:3: invalid YAML:")
    assert "column" in str(info.value)


def test_unclosed_quote() -> None:
    with pytest.raises(ConfigError, match=r"bmem.yaml:\d+: invalid YAML: .*quoted"):
        load('llm:\n  model: "m\n')


def test_non_utf8_file(tmp_path: Path) -> None:
    path = write(tmp_path, b"llm:\n  model: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"bmem.yaml:2: not UTF-8") as info:
        load_model(Settings, path, env={})
    assert info.value.path == str(path)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffretrieval:\n  k: 2\n")
    assert load_model(Settings, path, env={}).retrieval.k == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found") as info:
        load_model(Settings, tmp_path / "nope.yaml", env={})
    assert info.value.path == str(tmp_path / "nope.yaml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory") as info:
        load_model(Settings, tmp_path, env={})
    assert info.value.path == str(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, VALID)

    def deny(self: Path, *args: object, **kwargs: object) -> bytes:  # chmod 0 is no obstacle when tests run as root
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", deny)  # the loader reads a bounded number of bytes through open()
    with pytest.raises(ConfigError, match="permission denied") as info:
        load_model(Settings, path, env={})
    assert info.value.path == str(path)


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file_means_defaults(tmp_path: Path, text: str) -> None:
    assert load_model(Settings, write(tmp_path, text), env={}) == Settings()


def test_empty_file_still_reports_required_keys() -> None:
    with pytest.raises(ConfigError, match=r"bmem.yaml: key 'name': Field required"):
        load_model_from_text(NeedsName, "", source="bmem.yaml", env={})


@pytest.mark.parametrize(
    ("text", "kind"), [("- llm\n- retrieval\n", "a list"), ("just text\n", "a str scalar"), ("42\n", "int")]
)
def test_top_level_must_be_a_mapping(text: str, kind: str) -> None:
    with pytest.raises(ConfigError, match=f"bmem.yaml:1: the top level must be a mapping, not .*{kind}"):
        load(text)


def test_interpolation_from_env() -> None:
    settings = load("llm:\n  base_url: http://${HOST}:8000/v1\n  api_key: ${KEY}\n", {"HOST": "gpu", "KEY": "sk"})
    assert settings.llm.base_url == "http://gpu:8000/v1"
    assert settings.llm.api_key == "sk"


def test_interpolation_unset_variable_names_variable_key_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        load("llm:\n  model: m\n  api_key: ${OPENAI_API_KEY}\n", {})
    message = str(info.value)
    assert message.startswith("bmem.yaml:3, key 'llm.api_key': environment variable 'OPENAI_API_KEY' is not set")
    assert (info.value.key, info.value.line) == ("llm.api_key", 3)


def test_interpolation_default_and_empty_default() -> None:
    settings = load("llm:\n  model: ${MODEL:-qwen-7b}\n  api_key: x${NONE:-}y\n", {})
    assert (settings.llm.model, settings.llm.api_key) == ("qwen-7b", "xy")
    assert load("llm:\n  model: ${MODEL:-qwen-7b}\n", {"MODEL": "llama"}).llm.model == "llama"


def test_interpolation_escape_is_literal() -> None:
    settings = load("llm:\n  model: $${NOT_A_VAR} and $${X:-y}\n", {})
    assert settings.llm.model == "${NOT_A_VAR} and ${X:-y}"


def test_interpolated_plain_scalar_is_typed_but_quoted_stays_text() -> None:
    settings = load("retrieval:\n  k: ${K}\ntags: ['${K}']\n", {"K": "8"})
    assert settings.retrieval.k == 8
    assert settings.tags == ["8"]


def test_interpolation_in_sequences() -> None:
    # In flow style (`[...]`) YAML ends a plain scalar at `{`, so `${A}` must be quoted there.
    assert load("tags:\n  - ${A}\n  - b\n", {"A": "x"}).tags == ["x", "b"]
    assert load("tags: ['${A}', b]\n", {"A": "x"}).tags == ["x", "b"]


def test_env_override_nested_and_int_parsing() -> None:
    env = {
        "BMEM_LLM__BASE_URL": "http://other/v1",
        "BMEM_RETRIEVAL__K": "8",
        "BMEM_LLM__TLS__VERIFY": "false",
    }
    settings = load(VALID, env)
    assert settings.llm.base_url == "http://other/v1"
    assert settings.retrieval.k == 8
    assert settings.llm.tls.verify is False
    assert settings.retrieval.strategy == "bm25"  # the rest of the file is kept


def test_env_override_is_case_insensitive_and_creates_sections() -> None:
    settings = load("", {"BMEM_retrieval__Strategy": "bm25", "BMEM_NAMESPACES__MATH__DESCRIPTION": "x"})
    assert settings.retrieval.strategy == "bm25"
    assert settings.namespaces["math"].description == "x"


def test_env_override_into_existing_dict_key_keeps_its_spelling() -> None:
    settings = load("namespaces:\n  Math:\n    description: a\n", {"BMEM_NAMESPACES__MATH__DESCRIPTION": "b"})
    assert settings.namespaces == {"Math": Namespace(description="b")}


def test_env_override_unknown_key_names_env_var() -> None:
    with pytest.raises(ConfigError, match="BMEM_LLM__BSE_URL") as info:
        load(VALID, {"BMEM_LLM__BSE_URL": "x"})
    assert info.value.key == "llm.bse_url"
    assert "base_url" in str(info.value)  # lists what is known there
    with pytest.raises(ConfigError, match="BMEM_RETRIEVAL__K__X"):
        load(VALID, {"BMEM_RETRIEVAL__K__X": "1"})
    with pytest.raises(ConfigError, match="BMEM_LLM____MODEL"):
        load(VALID, {"BMEM_LLM____MODEL": "1"})


def test_env_override_bad_value_says_it_came_from_env() -> None:
    with pytest.raises(ConfigError, match=r"env BMEM_RETRIEVAL__K: key 'retrieval.k': Input should be a valid integer"):
        load(VALID, {"BMEM_RETRIEVAL__K": "many"})


def test_env_prefix_can_be_changed_or_disabled() -> None:
    env = {"APP_RETRIEVAL__K": "3", "BMEM_RETRIEVAL__K": "5"}
    assert load_model_from_text(Settings, "", env=env, env_prefix="APP_").retrieval.k == 3
    assert load_model_from_text(Settings, "", env=env, env_prefix="").retrieval.k == 4


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BMEM_TEST_HOST", "from-os")
    monkeypatch.setenv("BMEMTEST_RETRIEVAL__K", "6")
    settings = load_model_from_text(Settings, "llm:\n  model: ${BMEM_TEST_HOST}\n", env_prefix="BMEMTEST_")
    assert (settings.llm.model, settings.retrieval.k) == ("from-os", 6)


def test_duplicate_key_names_both_lines() -> None:
    with pytest.raises(ConfigError) as info:
        load("llm:\n  model: a\n  base_url: x\n  model: b\n")
    assert "duplicate key (first at line 2, again at line 4)" in str(info.value)
    assert (info.value.key, info.value.line) == ("llm.model", 4)


def test_merge_keys_are_not_duplicates() -> None:
    text = "base: &b\n  description: shared\nnamespaces:\n  math:\n    <<: *b\n    description: own\n"
    with pytest.raises(ConfigError, match="key 'base'"):  # `base` itself is unknown, but the merge is fine
        load(text)


def test_recursive_alias_is_an_error() -> None:
    with pytest.raises(ConfigError, match="recursive"):
        load("tags: &a [*a]\n")


def test_text_variant_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^<stdin>: invalid configuration \(1 problem\):\n  <stdin>:1: key 'x'"):
        load_model_from_text(Settings, "x: 1\n", source="<stdin>", env={})
    assert load_model_from_text(Settings, "retrieval: {k: 2}\n", env={}).retrieval.k == 2


def test_json_schema_for_editors() -> None:
    schema = json_schema(Settings)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Settings"
    assert list(schema)[:2] == ["$schema", "title"]
    assert schema["additionalProperties"] is False
    assert "retrieval" in schema["properties"]
    assert schema["$defs"]["Retrieval"]["properties"]["strategy"]["enum"] == ["embedding", "bm25"]


def test_other_prefixed_variables_are_not_overrides():
    # BMEM_CACHE_DIR, BMEM_API_KEY and test settings share the prefix but name no key.
    from behavior_memory.config.settings import load_config_text

    cfg = load_config_text(
        "",
        env={
            "BMEM_CACHE_DIR": "/tmp/x",
            "BMEM_TEST_BASE_URL": "http://h/v1",
            "BMEM_NAMESPACE": "team-a",
            "BMEM_LLM__MODEL": "m",
        },
    )
    assert cfg.namespace == "team-a" and cfg.llm.model == "m"
