"""Command-line flags generated from the config dataclasses, so every field can be overridden."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from tf3dgan import config as config_lib


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, received {text!r}")


def _first_docstring_line(section_type: type, name: str) -> str:
    doc = section_type.__doc__ or ""
    lines = doc.splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith(f"{name}:"):
            text = [line.strip()[len(name) + 1:].strip()]
            for following in lines[index + 1:]:
                if not following.startswith(" " * 12):
                    break
                text.append(following.strip())
            return " ".join(text)
    return ""


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Adds --<field> for every field of every config section (default: the preset's)."""
    for section, section_type in config_lib.SECTION_TYPES.items():
        group = parser.add_argument_group(f"{section} settings (override the preset)")
        hints = typing.get_type_hints(section_type)
        for field in dataclasses.fields(section_type):
            field_type = hints[field.name]
            parse = _parse_bool if field_type is bool else field_type
            choices = {"resolution": config_lib.SUPPORTED_RESOLUTIONS, "prior": config_lib.PRIORS,
                       "strategy": config_lib.STRATEGIES, "precision": config_lib.PRECISIONS
                       }.get(field.name)
            group.add_argument(f"--{field.name}", type=parse, default=None, choices=choices,
                               help=f"{_first_docstring_line(section_type, field.name)} "
                                    f"(preset paper64: {getattr(getattr(config_lib.PAPER64, section), field.name)!r})")


def config_from_flags(args: argparse.Namespace) -> config_lib.ExperimentConfig:
    """The preset named by --preset with every flag that was given applied on top."""
    base = config_lib.get_preset(args.preset)
    overrides = {name: getattr(args, name) for name in config_lib.field_owners()
                 if getattr(args, name, None) is not None}
    return base.replace(**overrides)
