"""The configuration: one YAML file, validated, with every section's defaults (see ``settings``)."""

from __future__ import annotations

from .settings import (
    DEFAULT_CONFIG_NAME,
    BehaviorMemoryConfig,
    CurationConfig,
    InjectionConfig,
    ReflectionConfig,
    StoreConfig,
    config_schema,
    default_data_dir,
    load_config,
    load_config_text,
)

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "BehaviorMemoryConfig",
    "CurationConfig",
    "InjectionConfig",
    "ReflectionConfig",
    "StoreConfig",
    "config_schema",
    "default_data_dir",
    "load_config",
    "load_config_text",
]
