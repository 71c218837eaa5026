"""Payer policy overlays (``mappings/payers/*.yaml``) over the default CPT policy.

Each payer file carries only what is sourced for that payer (coding-rules.md §7); its
``settings`` overlay the default policy key by key, and a site's file of the same name
overlays the shipped one the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connector.policy.cms import MAI_LINE, MAI_NAMES
from connector.policy.model import MueLimit, PayerPolicy
from connector.policy.yamlfile import KEY_LINES, LINE, MappingFile, Problems, read

KEYS: dict[str, type | tuple[type, ...]] = {
    "same_drug_min_interval_minutes": int,
    "facility_only_codes": list,
    "allow_second_site_initial": bool,
    "second_site_modifier": str,
    "separate_encounter_modifier": (str, type(None)),
    "professional_suppressed_pos": list,
    "professional_suppressed_codes": (list, str),
    "professional_suppression_action": str,
    "mue": list,
}
ACTIONS = ("write_off", "suppress")


def expand_codes(value: Any) -> frozenset[str]:
    """Codes from a list or from ranges such as ``"96360-96379"``."""
    items = value if isinstance(value, list) else [value]
    codes: set[str] = set()
    for item in items:
        text = str(item).strip()
        low, _, high = text.partition("-")
        if high and low.isdigit() and high.isdigit():
            codes.update(str(n) for n in range(int(low), int(high) + 1))
        elif text:
            codes.add(text)
    return frozenset(codes)


def load_payers(dirs: list[Path], problems: Problems, shipped_root: Path) -> dict[str, PayerPolicy]:
    """Read every payer file of every layer and build one policy per payer."""
    layers: dict[str, list[MappingFile]] = {}
    for directory in dirs:
        folder = directory / "payers"
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            file = read(path, problems, shipped_root)
            if file is not None:
                layers.setdefault(path.stem.lower(), []).append(file)
    if "default" not in layers:
        problems.add(str(dirs[0] / "payers"), "payers/default.yaml is required")
        return {}
    base = _settings(layers["default"], problems)
    payers: dict[str, PayerPolicy] = {}
    for name, files in layers.items():
        settings = dict(base)
        settings.update(_settings(files, problems) if name != "default" else {})
        meta = files[-1].data.get("meta", {})
        payers[name] = _build(name, str(meta.get("version") or name), settings, files, problems)
    return payers


def _settings(files: list[MappingFile], problems: Problems) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for file in files:
        raw = file.data.get("settings") or {}
        if not isinstance(raw, Mapping):
            problems.add(file.where(file.data), "settings must be a mapping")
            continue
        for key, value in raw.items():
            if key in (LINE, KEY_LINES):
                continue
            expected = KEYS.get(key)
            if expected is None:
                problems.add(file.where(raw, key), f"unknown policy key '{key}' (known: {', '.join(KEYS)})")
            elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                problems.add(file.where(raw, key), f"policy key '{key}' has the wrong type: {value!r}")
            else:
                merged[key] = (value, file)
    return merged


def _build(
    name: str, version: str, settings: dict[str, Any], files: list[MappingFile], problems: Problems
) -> PayerPolicy:
    values = {key: value for key, (value, _file) in settings.items()}
    action = values.get("professional_suppression_action", "write_off")
    if action not in ACTIONS:
        _, file = settings["professional_suppression_action"]
        problems.add(
            file.where(file.data.get("settings"), "professional_suppression_action"),
            f"professional_suppression_action must be one of {ACTIONS}",
        )
    mue: dict[str, MueLimit] = {}
    mue_file = settings["mue"][1] if "mue" in settings else files[-1]  # the file that set it
    for row in values.get("mue") or []:
        reference = str(row.get("reference") or "") if isinstance(row, Mapping) else ""
        if not isinstance(row, Mapping) or not row.get("code") or "CMS" not in reference:
            problems.add(
                mue_file.where(row if isinstance(row, Mapping) else None),
                "an MUE value needs code, units and a reference naming its quarterly CMS file",
            )
            continue
        units = [row.get(key) for key in ("facility_units", "professional_units")]
        mai = row.get("mai", MAI_LINE)
        if any(u is not None and (not isinstance(u, int) or isinstance(u, bool) or u < 0) for u in units):
            problems.add(mue_file.where(row), "facility_units and professional_units must be whole numbers ≥ 0")
            continue
        if mai not in MAI_NAMES or isinstance(mai, bool):
            problems.add(mue_file.where(row, "mai"), f"mai must be 1, 2 or 3 (MUE adjudication indicator): {mai!r}")
            continue
        mue[str(row["code"])] = MueLimit(str(row["code"]), units[0], units[1], reference, int(mai))
    return PayerPolicy(
        name=name,
        version=version,
        same_drug_min_interval_minutes=int(values.get("same_drug_min_interval_minutes", 30)),
        facility_only_codes=expand_codes(values.get("facility_only_codes", ["96376"])),
        allow_second_site_initial=bool(values.get("allow_second_site_initial", False)),
        second_site_modifier=str(values.get("second_site_modifier", "59")),
        separate_encounter_modifier=values.get("separate_encounter_modifier"),
        professional_suppressed_pos=frozenset(str(p) for p in values.get("professional_suppressed_pos", [])),
        professional_suppressed_codes=expand_codes(values.get("professional_suppressed_codes", [])),
        professional_suppression_action=str(action),
        mue=mue,
        references=tuple(str(f.data.get("meta", {}).get("reference", "")) for f in files),
    )
